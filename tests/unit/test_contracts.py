"""The shared contracts in poise.core: prescriptions, session events, derived data."""

import json

import numpy as np
import pytest

from analysis.contract import pack, unpack
from poise.core import derived, events
from poise.core import prescription as rx

RX = """
version = 1
id = "rx-knee-1"
sessions_per_week = 3
pain_limit = 5
progression = "to 100 deg when pain <= 3"

[[exercise]]
id = "rom/knee_flexion"
side = "right"
target_rom_deg = 90
max_rom_deg = 110
reps = 10
sets = 3
tempo_s = 2.0

[[exercise]]
id = "quiet_stance"
condition = { eyes = "closed" }
hold_s = 30
"""


def test_prescription_round_trips_through_toml_and_json():
    p = rx.parse_prescription(RX, "rx.toml")
    assert p.find("rom/knee_flexion", "right").target_rom_deg == 90.0
    assert rx.parse_prescription(rx.to_toml(p)) == p
    assert rx.from_dict(json.loads(json.dumps(rx.to_dict(p)))) == p
    assert p.public().progression == ""


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            ("reps = 10", "reps = 0"),
            "field 'exercise[0].reps': expected a whole number from 1 to 100, found 0",
        ),
        (('id = "rom/knee_flexion"', 'id = "rom/knee"'), "field 'exercise[0].id': expected one of"),
        (("max_rom_deg = 110", "max_rom_deg = 80"), "expected at least target_rom_deg (90)"),
        (("tempo_s = 2.0", "tempo = 2.0"), "field 'exercise[0].tempo': expected one of the fields"),
        (('eyes = "closed"', 'eyes = "shut"'), "field 'exercise[1].condition.eyes'"),
    ],
)
def test_prescription_errors_name_the_field(patch, message):
    with pytest.raises(rx.PrescriptionError) as exc:
        rx.parse_prescription(RX.replace(*patch), "rx.toml")
    assert str(exc.value).startswith("rx.toml: ")
    assert message in str(exc.value)


def _start():
    return events.Event(
        "session_start",
        events.new_id(),
        1_800_000_000 * 10**9,
        "clinic1",
        "p001",
        "s-1",
        placement=(events.Placement("p001-back", "lower_back"),),
        prescription=rx.parse_prescription(RX),
    )


def test_events_round_trip_without_free_text():
    ev = _start()
    back = events.parse_event(events.encode(ev), "clinic1", "p001")
    assert back.placement == ev.placement
    assert back.prescription == ev.prescription.public()
    assert b"pain <= 3" not in events.encode(ev)
    note = events.Event("note", events.new_id(), ev.t_ns, "clinic1", "p001", "s-1", pain_0_10=3)
    assert events.parse_event(events.encode(note), "clinic1", "p001").pain_0_10 == 3.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "not_an_object"),
        (
            b'{"v":1,"type":"trial_stop","id":"e-1","t_ns":1800000000000000000,"session":"s"}',
            "missing_field",
        ),
        (
            b'{"v":1,"type":"note","id":"e-1","t_ns":1800000000000000000,"session":"s","pain_0_10":11}',
            "out_of_range",
        ),
        (b'{"v":1,"type":"note","id":"e 1","t_ns":1800000000000000000,"session":"s"}', "bad_id"),
        (
            b'{"v":1,"type":"note","id":"e-1","t_ns":1800000000000000000,"session":"s","text":"x"}',
            "free_text",
        ),
        (
            b'{"v":1,"type":"note","id":"e-1","t_ns":7258118400000000000,"session":"s"}',
            "implausible_time",
        ),
        (b'{"v":2,"type":"note"}', "bad_version"),
    ],
)
def test_bad_events_are_refused_with_a_reason(payload, reason):
    with pytest.raises(events.EventError) as exc:
        events.parse_event(payload, "clinic1", "p001")
    assert exc.value.reason == reason


def test_state_packing_round_trips():
    state = {"buf": np.arange(6.0).reshape(2, 3), "n": np.int64(3), "x": float("nan"), "t": (1, 2)}
    back = unpack(json.loads(json.dumps(pack(state))))
    assert np.array_equal(back["buf"], state["buf"])
    assert back["n"] == 3
    assert np.isnan(back["x"])
    assert back["t"] == [1, 2]


def test_derived_tables_are_consistent():
    for m in derived.MEASUREMENTS.values():
        names = [f.name for f in m.fields]
        assert len(names) == len(set(names)), m.name
        assert not set(names) & set(m.all_tags), m.name
    assert set(derived.SWAY_METRIC_FIELDS.values()) == {f.name for f in derived.SWAY_FIELDS}
    assert "## `trial_summary`" in derived.markdown()
