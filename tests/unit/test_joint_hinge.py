"""The heading-free hinge angle against an independent simulation (tests/simulators/hinge.py:
SciPy rotations, signals differentiated from 1 kHz poses): knee, elbow and ankle, the
proximal segment still, swaying or moving, sensors at random orientations 0.2 m from the
joint, noise and a 1 °/s gyro bias on each sensor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import hinge, joint
from tests.simulators.hinge import Scenario, simulate

ROMS = {"knee_seated": 70.0, "knee": 70.0, "elbow": 110.0, "ankle": 25.0}
CASES = [(j, p) for j in ROMS for p in ("still", "sway", "move")]


def _run(jn: str, prox: str, seed: int):
    sc = Scenario(joint=jn, proximal=prox, roms_deg=(ROMS[jn],) * 5)
    r = simulate(sc, np.random.default_rng(seed))
    t, a, ha = hinge.hinge_angle(r.time_s, r.acc_p, r.gyr_p, r.acc_d, r.gyr_d)
    return sc, r, t, a, ha


@pytest.mark.parametrize(("jn", "prox"), CASES)
@pytest.mark.parametrize("seed", [0])
def test_angle_and_per_rep_rom_against_truth(jn, prox, seed):
    sc, r, t, a, ha = _run(jn, prox, seed)
    assert np.array_equal(t, r.time_s)  # every sample gets its angle
    rmse = float(np.sqrt(np.mean((a - r.angle_deg) ** 2)))
    assert rmse <= 3.0
    reps = joint.count_reps(t, a)
    assert len(reps) == len(sc.roms_deg)  # exact
    errs = [rep.rom_deg - rom for rep, rom in zip(reps, sc.roms_deg, strict=True)]
    # the first repetition's trough lies in the neutral pose, while VQF is still learning a
    # gyro bias that a swaying segment never lets it see at rest: allowed 4° (docs/metrics.md)
    assert abs(errs[0]) <= (4.0 if prox == "sway" else 3.0)
    assert max(abs(e) for e in errs[1:]) <= 3.0
    for rep, peak_s in zip(reps, r.rep_peak_s, strict=True):
        assert rep.peak_s == pytest.approx(peak_s, abs=0.4)
    assert ha.fit_ is not None


def test_axes_are_found_in_each_sensor_frame():
    # arbitrary mounting: the fitted axes are the hinge's y axis seen from each sensor
    for jn, prox in (("knee", "move"), ("elbow", "sway")):
        _sc, r, _t, _a, ha = _run(jn, prox, 3)
        assert ha.fit_ is not None
        j1 = r.mount_p.inv().apply([0.0, 1.0, 0.0])
        j2 = r.mount_d.inv().apply([0.0, 1.0, 0.0])
        assert np.degrees(np.arccos(abs(ha.fit_.j1 @ j1))) < 3.0
        assert np.degrees(np.arccos(abs(ha.fit_.j2 @ j2))) < 3.0
        assert ha.axis_confidence > 0.8


def test_a_joint_that_never_moves_gets_no_angle():
    sc = Scenario(joint="knee", proximal="still", roms_deg=())
    r = simulate(sc, np.random.default_rng(0))
    t, a, ha = hinge.hinge_angle(r.time_s, r.acc_p, r.gyr_p, r.acc_d, r.gyr_d)
    assert len(t) == 0
    assert len(a) == 0
    assert ha.fit_ is None
    assert ha.axis_confidence == 0.0


def test_streaming_equals_batch_with_state_handed_over():
    _sc, r, t_b, a_b, _ha = _run("knee", "move", 5)
    rng = np.random.default_rng(9)
    ha = hinge.HingeAngle()
    ts, angs = [], []
    i, n = 0, len(r.time_s)
    while i < n:
        k = int(rng.integers(1, 300))
        sl = slice(i, i + k)
        tt, aa = ha.update(r.time_s[sl], r.acc_p[sl], r.gyr_p[sl], r.acc_d[sl], r.gyr_d[sl])
        ts.append(tt)
        angs.append(aa)
        # a worker checkpoint: the state through JSON, into a fresh object
        state = json.loads(json.dumps(ha.get_state()))
        ha = hinge.HingeAngle()
        ha.set_state(state)
        i += k
    tt, aa = ha.finish()
    ts.append(tt)
    angs.append(aa)
    assert np.array_equal(np.concatenate(ts), t_b)
    np.testing.assert_allclose(np.concatenate(angs), a_b, rtol=0, atol=1e-9)
