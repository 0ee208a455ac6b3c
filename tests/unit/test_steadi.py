"""STEADI tests on simulated recordings with known answers: stands counted (slow and
incomplete stands included), Timed Up and Go duration and phases, 4-Stage hold times with a
loss of balance detected in the signal."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import steadi
from collector.virtual import L5_AP_AXIS, StandSpec, chair_stand_trace, stance_trace, tug_trace

FULL = StandSpec()
SLOW = StandSpec(rise_s=3.0, sit_s=3.0)
HALF = StandSpec(rise_fraction=0.45)  # rises, fails to stand, sits back


@pytest.mark.parametrize(
    ("seed", "stands", "expected"),
    [
        (1, [FULL] * 8, 8),
        (2, [FULL, SLOW, FULL, SLOW, FULL], 5),
        (3, [FULL, HALF, FULL, HALF, FULL, FULL], 4),
        (4, [SLOW, HALF, SLOW, FULL, HALF, FULL], 4),
        (5, [HALF, HALF], 0),
    ],
)
def test_chair_stand_counts_full_stands_only(seed, stands, expected):
    rng = np.random.default_rng(seed)
    tr = chair_stand_trace(rng, stands, lead_s=1.0)
    assert tr.time_s[-1] < 31  # every simulated attempt lies inside the 30 s test
    res = steadi.chair_stand(tr.time_s, tr.acc, tr.gyr)
    assert res["stands"] == expected == int(tr.truth["full_stands"][0])
    for got, truth in zip(res["stand_times_s"], tr.truth["stand_times_s"], strict=True):
        assert abs(got - truth) < 1.0  # the height peak lies within the stand


def test_chair_stand_counts_only_the_first_30_s():
    rng = np.random.default_rng(6)
    tr = chair_stand_trace(rng, [FULL] * 11, lead_s=1.0)  # ~3.5 s each: the last ones are late
    res = steadi.chair_stand(tr.time_s, tr.acc, tr.gyr)
    in_time = int(np.sum(tr.truth["stand_times_s"] <= 30.0))
    assert 0 < in_time < 11
    # the 9th stand is reached at 30.3 s; at 30 s its rise (from 29.0 s) is ~80 % up, and the
    # CDC counts a stand more than halfway up at the end
    assert res["halfway_stand_at_end"] is True
    assert res["stands"] == in_time + 1


def test_chair_stand_norms():
    assert steadi.chair_stand_norm(72, "female") == 10
    assert steadi.chair_stand_norm(72, "male") == 12
    assert steadi.chair_stand_norm(91, "female") == 4
    assert steadi.chair_stand_norm(50, "male") is None
    rng = np.random.default_rng(7)
    tr = chair_stand_trace(rng, [FULL] * 8, lead_s=1.0)
    res = steadi.chair_stand(tr.time_s, tr.acc, tr.gyr, age_years=66, sex="male")
    assert res["flags"] == {"below_norm": True, "recording_shorter_than_test": False}
    res = steadi.chair_stand(tr.time_s, tr.acc, tr.gyr, age_years=88, sex="male")
    assert res["flags"] == {"below_norm": False, "recording_shorter_than_test": False}
    with pytest.raises(ValueError, match="sex must be"):
        steadi.chair_stand_norm(70, "x")


@pytest.mark.parametrize(("seed", "speed", "turn_s"), [(1, 1.0, 2.0), (2, 0.6, 3.0), (3, 1.3, 1.5)])
def test_tug_duration_and_phases(seed, speed, turn_s):
    rng = np.random.default_rng(seed)
    tr = tug_trace(rng, speed_m_s=speed, turn_s=turn_s)
    res = steadi.tug(tr.time_s, tr.acc, tr.gyr)
    truth = float(tr.truth["duration_s"][0])
    assert res["duration_s"] == pytest.approx(truth, abs=0.3)
    assert res["flags"]["tug_12s_or_more"] == (truth >= 12)
    e = tr.truth["phases_s"]
    expected = {
        "sit_to_stand": e[1] - e[0],
        "walk_out": e[2] - e[1],
        "turn": e[3] - e[2],
        "walk_back": e[4] - e[3],
        "turn_to_sit": e[5] - e[4],
    }
    for phase, value in expected.items():
        assert res["phases_s"][phase] == pytest.approx(value, abs=0.7), phase
    assert res["turn_angles_deg"][0] == pytest.approx(180, abs=15)


def _four_stage_recording(rng, step_in: str | None, step_at: float):
    """Four 12 s stages with 3 s breaks; sway grows stage by stage."""
    parts, stages, t0 = [], [], 0.0
    for name, rms in zip(steadi.FOUR_STAGES, (0.03, 0.05, 0.09, 0.15), strict=True):
        tr = stance_trace(rng, 12.0, rms, step_at_s=step_at if name == step_in else None)
        parts.append((tr.time_s + t0, tr.acc, tr.gyr))
        stages.append(steadi.Stage(name, t0, t0 + 12.0))
        t0 += 15.0
    t = np.concatenate([p[0] for p in parts])
    return t, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]), stages


def test_four_stage_all_held():
    rng = np.random.default_rng(11)
    t, acc, gyr, stages = _four_stage_recording(rng, None, 0)
    res = steadi.four_stage(t, acc, gyr, stages)
    assert [s["passed"] for s in res["stages"]] == [True] * 4
    assert all(s["hold_s"] == pytest.approx(12.0, abs=0.02) for s in res["stages"])
    assert res["flags"] == {"tandem_under_10s": False}
    rms = [s["sway"]["rms"] for s in res["stages"]]
    assert rms == sorted(rms)  # sway grows with difficulty


def test_four_stage_loss_of_balance_in_tandem_stops_the_test():
    rng = np.random.default_rng(12)
    t, acc, gyr, stages = _four_stage_recording(rng, "tandem", 6.0)
    res = steadi.four_stage(t, acc, gyr, stages)
    tandem = res["stages"][2]
    assert tandem["loss_of_balance_s"] == pytest.approx(6.0, abs=0.3)
    assert tandem["hold_s"] == pytest.approx(6.0, abs=0.3)
    assert tandem["passed"] is False
    assert res["stages"][3] == {"stage": "single_leg", "attempted": False}
    assert res["flags"] == {"tandem_under_10s": True}
    assert res["stages"][0]["loss_of_balance_s"] is None


def test_four_stage_failing_early_flags_tandem_too():
    rng = np.random.default_rng(13)
    t, acc, gyr, stages = _four_stage_recording(rng, "semi_tandem", 3.0)
    res = steadi.four_stage(t, acc, gyr, stages)
    assert [s.get("passed") for s in res["stages"]] == [True, False, None, None]
    assert res["flags"] == {"tandem_under_10s": True}
    assert L5_AP_AXIS == "-z"
