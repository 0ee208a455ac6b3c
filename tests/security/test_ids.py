"""Ids are pseudonymous by rule: a name- or date-like id is refused at every entry, and the
rule is the clinic's to adjust (POISE_ID_DENY)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collector.ble import ConfigError, load_gateway_config
from poise.core import events, ids, topics, wire
from poise.core.events import EventError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy"
REFUSED = [
    "Jane_Doe_1950-03-02",
    "Jane_Doe",
    "Doe-Jane",
    "p_1950-03-02",
    "1950_03_02",
    "19500302",
    "p-19500302",
    "02-03-1950",
    "02_03_50",
]
ACCEPTED = [
    "P0042",
    "p001-lowerback",
    "s-0001",
    "clinic-a",
    "gw-room-1",
    "WT901BLE1",
    "p-7",
    "P-2024-0042",
    "e-4f19500302ab",
    "t",
]


@pytest.fixture(autouse=True)
def _default_rule():
    ids.set_deny_pattern(None)
    yield
    ids.set_deny_pattern(None)


@pytest.mark.parametrize("value", REFUSED)
def test_name_and_date_like_ids_are_refused(value):
    assert not ids.is_id(value)
    with pytest.raises(ids.IdError, match="looks like a name or a date"):
        ids.check_id("patient", value)


@pytest.mark.parametrize("value", ACCEPTED)
def test_pseudonymous_codes_pass(value):
    assert ids.check_id("patient", value) == value


def test_random_ids_of_the_event_contract_always_pass():
    assert all(ids.is_id(events.new_id("t")) for _ in range(20_000))


def test_the_rule_is_adjustable_and_can_be_turned_off():
    ids.set_deny_pattern(r"^(?!P[0-9]{4}$)")  # a clinic that only uses P + 4 digits
    assert ids.is_id("P0042")
    assert not ids.is_id("p001")
    ids.set_deny_pattern("")
    assert ids.is_id("Jane_Doe")
    with pytest.raises(ids.IdError, match="POISE_ID_DENY"):
        ids.set_deny_pattern("(")


def test_every_entry_refuses_a_name_like_id(tmp_path):
    name = "Jane_Doe_1950-03-02"
    with pytest.raises(topics.TopicError):
        topics.raw("t", name, "s1")
    with pytest.raises(topics.TopicError):
        topics.parse_raw(f"poise/v1/raw/t/{name}/s1")
    # a frame of such a sensor cannot be published nor stored: its topic is refused
    payload = wire.encode(
        wire.Frame(name, 0, 0, 10_000_000, wire.IMU6, np.ones((1, 6), np.float32))
    )
    with pytest.raises(topics.TopicError):
        topics.raw("t", "p1", wire.decode(payload).sensor_id)
    doc = {
        "v": 1,
        "type": "session_start",
        "id": "e-1",
        "t_ns": time.time_ns(),
        "session": "s-1",
        "placement": [],
    }
    with pytest.raises(EventError, match="looks like a name or a date"):
        events.from_json(doc, "t", name)
    with pytest.raises(EventError, match="looks like a name or a date"):
        events.from_json({**doc, "session": "Jane_Doe"}, "t", "p1")
    cfg = tmp_path / "gw.toml"
    cfg.write_text((DOCS / "gateway.example.toml").read_text().replace('"p-0042"', f'"{name}"'))
    with pytest.raises(ConfigError, match="looks like a name or a date"):
        load_gateway_config(cfg)


def _poise(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poise.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_the_command_line_refuses_with_exit_2_and_follows_poise_id_deny(tmp_path):
    res = _poise("simulate", "--mqtt", "127.0.0.1:1", "--site", "Jane_Doe", "--duration", "1")
    assert res.returncode == 2, res.stderr
    assert "looks like a name or a date" in res.stderr
    assert "Traceback" not in res.stderr
    res = _poise("stack", "up", "--dir", str(tmp_path / "s"), "--site", "P1", POISE_ID_DENY="^P")
    assert res.returncode == 2, res.stderr
    assert "site id 'P1' looks like" in res.stderr
    assert not (tmp_path / "s" / "stack.json").exists()
    res = _poise("stack", "up", "--dir", str(tmp_path / "s"), POISE_ID_DENY="(")
    assert res.returncode == 2
    assert "not a regular expression" in res.stderr
