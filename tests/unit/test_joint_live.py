"""The live joint scores under the analysis contract: registered, streaming equals batch
in any chunking with the state handed over through JSON (as the worker checkpoints it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import joint
from analysis.contract import REGISTRY, ImuChunk, LiveScore
from poise.core.derived import MEASUREMENTS
from tests.simulators.hinge import Scenario, simulate


@pytest.fixture(scope="module")
def recording():
    sc = Scenario(joint="knee", proximal="sway", roms_deg=(60.0, 80.0, 70.0))
    return simulate(sc, np.random.default_rng(2))


def _chunk(r, sl):
    return {
        "proximal": ImuChunk(r.time_s[sl], r.acc_p[sl], r.gyr_p[sl]),
        "distal": ImuChunk(r.time_s[sl], r.acc_d[sl], r.gyr_d[sl]),
    }


def _batch(name, r, overrides):
    score = REGISTRY[name].factory(overrides)
    return score.update(_chunk(r, slice(None))) + score.finish()


@pytest.mark.parametrize("name", ["joint_angle", "joint_repetitions"])
def test_registered_with_fields_from_the_derived_tables(name, recording):
    spec = REGISTRY[name]
    assert spec.roles == ("proximal", "distal")
    overrides = {"period_s": 0.01, "target_rom_deg": 65.0}
    score = spec.factory(overrides)
    assert isinstance(score, LiveScore)
    records = _batch(name, recording, overrides)
    assert records
    table = MEASUREMENTS[spec.measurement]
    allowed = {f.name for f in table.fields}
    for rec in records:
        assert rec.measurement == spec.measurement
        assert set(rec.fields) <= allowed
        assert rec.tags == {"joint": "knee"}


@pytest.mark.parametrize("name", ["joint_angle", "joint_repetitions"])
def test_streaming_equals_batch_through_json_state(name, recording):
    overrides = {"period_s": 0.01, "target_rom_deg": 65.0, "max_rom_deg": 85.0}
    want = _batch(name, recording, overrides)
    rng = np.random.default_rng(4)
    score = REGISTRY[name].factory(overrides)
    got = []
    i, n = 0, len(recording.time_s)
    while i < n:
        k = int(rng.integers(1, 400))
        got += score.update(_chunk(recording, slice(i, i + k)))
        state = json.loads(json.dumps(score.get_state()))
        score = REGISTRY[name].factory(overrides)  # a restarted worker
        score.set_state(state)
        i += k
    got += score.finish()
    assert [r.measurement for r in got] == [r.measurement for r in want]
    assert [r.t_s for r in got] == pytest.approx([r.t_s for r in want], abs=1e-9)
    for a, b in zip(got, want, strict=True):
        assert a.fields.keys() == b.fields.keys()
        for key, value in a.fields.items():
            if isinstance(value, float):
                assert value == pytest.approx(b.fields[key], abs=1e-3)
            else:
                assert value == b.fields[key]


def test_live_points_and_repetitions_carry_the_numbers(recording):
    pts = _batch("joint_angle", recording, {"period_s": 0.01})
    # 20 Hz from 100 Hz samples: every fifth
    assert len(pts) == (len(recording.time_s) + 4) // 5
    # the last repetition ends only when the trial does (its trough is confirmed by a rise
    # that never comes): joint_repetitions reports it at finish
    assert pts[-1].fields["rep_count"] == 2
    assert pts[-1].fields["axis_confidence"] > 0.8
    reps = _batch("joint_repetitions", recording, {"period_s": 0.01, "target_rom_deg": 65.0})
    assert [r.fields["index"] for r in reps] == [1, 2, 3]
    assert [r.fields["correct"] for r in reps] == [False, True, True]
    assert [r.fields["rom_deg"] for r in reps] == pytest.approx([60, 80, 70], abs=4.0)


def test_unknown_parameters_and_missing_gyro_are_refused(recording):
    with pytest.raises(ValueError, match="unknown joint score parameter"):
        REGISTRY["joint_angle"].factory({"period_s": 0.01, "target": 3})
    score = joint.LiveJointAngle(joint.LiveJointParams(), 0.01)
    chunk = _chunk(recording, slice(0, 10))
    chunk["distal"] = ImuChunk(recording.time_s[:10], recording.acc_d[:10], None)
    with pytest.raises(ValueError, match="gyroscope on both sensors"):
        score.update(chunk)
