"""Bad input at every entry that takes outside data: random bytes and random documents end in
the entry's own error (a clear message), never in another exception."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import GatewayConfigError, load_gateway_config
from poise.core import derived, events, topics
from poise.core.prescription import PrescriptionError, parse_prescription

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
EVENT_KEYS = ["v", "type", "id", "t_ns", "session", "trial", "exercise", "condition", "side",
              "placement", "prescription", "pain_0_10", "fatigue_borg", "text"]  # fmt: skip
event_docs = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(EVENT_KEYS, json_values)
) | st.fixed_dictionaries(
    {"v": st.just(1), "type": st.sampled_from(["session_start", "trial_start", "trial_stop",
                                                "note", "session_stop", "x"]),
     "id": st.text(max_size=10), "t_ns": st.integers(), "session": st.text(max_size=10)},
    optional=dict.fromkeys(EVENT_KEYS[5:], json_values),
)  # fmt: skip


@FUZZ
@given(st.binary(max_size=300))
def test_session_event_bytes(payload):
    with pytest.raises(events.EventError):
        events.parse_event(payload, "clinic", "p001")


@FUZZ
@given(event_docs)
def test_session_event_documents(doc):
    with contextlib.suppress(events.EventError):
        events.parse_event(json.dumps(doc).encode(), "clinic", "p001")


@FUZZ
@given(st.binary(max_size=300))
def test_metrics_messages(payload):
    with contextlib.suppress(ValueError):
        derived.parse_message(payload)


@FUZZ
@given(st.text(alphabet=string.printable, max_size=60))
def test_raw_topics(topic):
    with contextlib.suppress(topics.TopicError):
        topics.parse_raw(topic)


toml_lines = st.lists(
    st.sampled_from([
        "[[exercise]]", "[[sensor]]", "[supervision]", 'id = "x"', "id = 3", 'site = "demo"',
        'site = "Jane_Doe_1950-03-02"', 'gateway_id = "gw1"', "version = 1", 'version = "1"',
        'exercise = "rom/knee_flexion"', "target_rom_deg = 60", "max_rom_deg = -5",
        "reps = 0", "reps = 1e9", "sets = 3", 'side = "left"', 'side = "up"',
        'mqtt = "127.0.0.1:1883"', 'mqtt = "nowhere"', 'profile = "witmotion-wt901ble"',
        'profile = "nope"', 'address = "AA:BB:CC:DD:EE:FF"', 'address = "zz"',
        'patient = "p001"', 'channels = ["acc_x"]', 'channels = ["bogus"]', 'spool = "/"',
        "reconnect_initial_s = -1", "sessions_per_week = 3", "pain_limit = 11", "= broken",
        '"unterminated', "[table", "x = [1, 2", "tempo_s = nan", "hold_s = inf",
    ]),
    max_size=14,
).map("\n".join)


@FUZZ
@given(toml_lines)
def test_prescriptions(text):
    with contextlib.suppress(PrescriptionError):
        parse_prescription(text)


@FUZZ
@given(toml_lines)
def test_gateway_configs(tmp_path_factory, text):
    path = Path(tmp_path_factory.mktemp("cfg")) / "gateway.toml"
    path.write_text(text)
    with contextlib.suppress(GatewayConfigError):
        load_gateway_config(path)
