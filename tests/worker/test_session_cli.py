"""``poise session`` / ``poise trial``: events published with QoS 1 on a real Mosquitto, and
refusals (exit 2) before anything is sent."""

from __future__ import annotations

import json
import threading

import pytest

from poise.cli import main
from poise.core import events
from tests.conftest import wait_until

T0 = 1_800_000_000 * 10**9


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["trial", "start", "--session", "s-1", "--exercise", "jumping"], "unknown_exercise"),
        (
            ["trial", "start", "--session", "s-1", "--exercise", "tug", "--condition", "eyes=shut"],
            "bad_condition",
        ),
        (["session", "note", "--session", "s-1", "--pain", "11"], "out_of_range"),
        (["session", "stop", "--session", "s-1", "--fatigue", "4"], "out_of_range"),
        (["session", "stop", "--session", "Jane Doe"], "bad_id"),
        (["session", "start", "--placement", "p1-back=elbow"], "bad_placement"),
        (["trial", "stop", "--session", "s-1", "--trial", "t/1"], "bad_id"),
    ],
)
def test_refused_before_publishing(argv, reason, capsys):
    # port 9 (discard) has no broker: a refusal must come before any connection attempt
    base = ["--mqtt", "127.0.0.1:9", "--site", "c1", "--patient", "p001"]
    assert main([*argv[:2], *base, *argv[2:]]) == 2
    assert reason in capsys.readouterr().err


def test_unreachable_broker_is_a_clear_error(capsys):
    argv = ["session", "note", "--mqtt", "127.0.0.1:9", "--site", "c1", "--patient", "p1"]
    assert main([*argv, "--session", "s-1", "--pain", "2"]) == 2
    assert "cannot reach the MQTT broker" in capsys.readouterr().err


@pytest.mark.integration
def test_events_reach_the_broker(stack, capsys, tmp_path):
    info = stack.info()
    got: list[events.Event] = []
    ready = threading.Event()
    sub = stack.mqtt_client("console")
    sub.on_connect = lambda c, *a: c.subscribe("poise/v1/session/c1/+", qos=1)
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, m: got.append(events.parse_event(m.payload, "c1", "p001"))
    sub.connect(info.mqtt_host, info.mqtt_port)
    sub.loop_start()
    try:
        wait_until(ready.is_set, 10, "the subscription")
        rx = tmp_path / "rx.toml"
        rx.write_text(
            'version = 1\nid = "rx-1"\npain_limit = 5\nprogression = "private words"\n'
            '[[exercise]]\nid = "rom/knee_flexion"\nside = "right"\ntarget_rom_deg = 70\n'
            "max_rom_deg = 100\nreps = 8\n"
        )
        base = ["--mqtt", f"{info.mqtt_host}:{info.mqtt_port}", "--site", "c1"]
        base += ["--patient", "p001"]
        places = ["--placement", "p001-back=lower_back", "--placement", "p001-sh=shank:right"]
        start = ["session", "start", *base, "--t-ns", str(T0), "--prescription", str(rx)]
        assert main([*start, *places]) == 0
        session = json.loads(capsys.readouterr().out)["session"]
        ids = ["--session", session]
        assert main(["trial", "start", *base, *ids, "--exercise", "rom/knee_flexion"]) == 0
        trial = json.loads(capsys.readouterr().out)["trial"]
        assert main(["trial", "stop", *base, *ids, "--trial", trial]) == 0
        assert main(["session", "note", *base, *ids, "--pain", "3"]) == 0
        assert main(["session", "stop", *base, *ids, "--pain", "2", "--fatigue", "13"]) == 0
        wait_until(lambda: len(got) == 5, 10, "five events")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert [e.type for e in got] == [
        "session_start",
        "trial_start",
        "trial_stop",
        "note",
        "session_stop",
    ]
    start = got[0]
    assert start.t_ns == T0
    assert start.placement[1] == events.Placement("p001-sh", "shank", "right")
    assert start.prescription is not None
    assert start.prescription.progression == ""  # free text never travels
    assert got[2].trial == trial
    assert got[4].fatigue_borg == 13
