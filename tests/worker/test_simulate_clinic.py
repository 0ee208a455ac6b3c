"""``poise simulate --protocol clinic`` on a real broker: the scripted session's frames and
events reach it, and the JSON says what was played with its truth."""

from __future__ import annotations

import json

import pytest

from poise.cli import main

pytestmark = pytest.mark.integration


def test_clinic_protocol_cli(stack, capsys, tmp_path, monkeypatch):
    info = stack.info()
    user, _pw = stack.mqtt_login("gateway", "clinic")
    monkeypatch.setenv("POISE_GATEWAY_MQTT_USER", user)
    monkeypatch.setenv(
        "POISE_GATEWAY_MQTT_PASSWORD_FILE", str(stack.credentials.file("mqtt", user))
    )
    argv = ["simulate", "--protocol", "clinic", "--mqtt", f"{info.mqtt_host}:{info.mqtt_port}"]
    argv += ["--site", "clinic", "--patients", "2", "--speed", "0"]
    argv += ["--spool", str(tmp_path / "spool.db")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["all_acknowledged_by_broker"] is True
    assert out["samples_published"] > 2 * 3 * 100 * 150  # two patients, ~2.5 min each
    # events: a start and a stop per trial, and the session's start and stop
    assert out["events_published"] == sum(2 * len(p["trials"]) + 2 for p in out["patients"])
    exercises = [t["exercise"] for t in out["trials"] if t["patient"] == "p001"]
    assert exercises == [
        "quiet_stance",
        "quiet_stance",
        "steadi_4stage/feet_together",
        "steadi_4stage/semi_tandem",
        "steadi_4stage/tandem",
        "steadi_4stage/single_leg",
        "rom/knee_flexion",
        "chair_stand_30s",
        "tug",
    ]
    p2 = [t for t in out["trials"] if t["patient"] == "p002"]
    tandem = next(t for t in p2 if t["exercise"] == "steadi_4stage/tandem")
    assert tandem["truth"] == {"held_s": 6.0, "passed": False}
    assert "steadi_4stage/single_leg" not in [t["exercise"] for t in p2]  # the test stopped
    assert out["patients"][1]["expected_alerts"]
