"""Real recordings with an optical reference: the BROAD excerpts in tests/data/broad
(CC BY 4.0, provenance in that folder's README). No skip: the data ships with the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vqf import offlineVQF

from analysis.orientation import Orientation, inclination_error_deg
from analysis.plausibility import check_imu
from poise.core.csvio import read_imu_csv

DATA = Path(__file__).resolve().parents[1] / "data" / "broad"
# inclination RMSE (deg) against the optical reference over the excerpt's movement, as
# measured with `python -m pytest tests/science/test_broad.py`: offline VQF 6D, online VQF 6D
EXPECTED_DEG = {
    "02_undisturbed_slow_rotation_B": (0.316, 0.443),
    "15_undisturbed_fast_translation_A": (0.328, 0.303),
    "24_disturbed_tapping_A": (0.466, 0.489),
}


def load(trial: str):
    return read_imu_csv(DATA / f"{trial}.csv.xz")


def scored_rmse_deg(rec, q) -> float:
    ref = np.column_stack([rec.extra[k] for k in ("ref_qw", "ref_qx", "ref_qy", "ref_qz")])
    scored = (rec.extra["movement"] == 1) & np.isfinite(ref).all(axis=1)
    assert scored.sum() > 2000  # most of the 10 s of movement has a reference
    return float(np.sqrt(np.mean(inclination_error_deg(q[scored], ref[scored]) ** 2)))


def test_the_excerpts_are_present():
    assert sorted(p.name for p in DATA.glob("*.csv.xz")) == sorted(
        f"{t}.csv.xz" for t in EXPECTED_DEG
    )


@pytest.mark.parametrize("trial", sorted(EXPECTED_DEG))
def test_orientation_against_optical_reference(trial):
    rec = load(trial)
    assert rec.sampling_rate_hz == pytest.approx(285.714, abs=0.01)  # from the timestamps
    q = Orientation(mode="offline").update(rec.time_s, rec.acc, rec.gyr)
    # the wrapper is the plain library: same quaternions as vqf's own offline call
    plain = offlineVQF(
        np.ascontiguousarray(rec.gyr),
        np.ascontiguousarray(rec.acc),
        None,
        float(np.median(np.diff(rec.time_s))),
    )["quat6D"]
    np.testing.assert_allclose(q, plain, atol=1e-9)
    offline, online = EXPECTED_DEG[trial]
    got = scored_rmse_deg(rec, q)
    assert got == pytest.approx(offline, abs=0.1)
    assert got <= 1.5  # the bar for a correctly wired pipeline on BROAD
    q_online = Orientation(mode="online").update(rec.time_s, rec.acc, rec.gyr)
    assert scored_rmse_deg(rec, q_online) == pytest.approx(online, abs=0.1)


def test_a_unit_slip_shows_against_the_reference():
    """What the reference catches when nothing else does: gyro scaled by 1.1."""
    rec = load("02_undisturbed_slow_rotation_B")
    q = Orientation(mode="offline").update(rec.time_s, rec.acc, rec.gyr * 1.1)
    assert scored_rmse_deg(rec, q) > 2 * EXPECTED_DEG["02_undisturbed_slow_rotation_B"][0]


@pytest.mark.parametrize("trial", sorted(EXPECTED_DEG))
def test_plausibility_on_real_recordings(trial):
    rec = load(trial)
    report = check_imu(rec.time_s, rec.acc, rec.gyr)
    assert report.ok, report.message()
    assert report.acc_median_norm_m_s2 == pytest.approx(9.81, abs=0.3)
    if trial != "15_undisturbed_fast_translation_A":  # translations hide the tilt there
        assert report.gyr_scale == pytest.approx(1.0, abs=0.1)
    else:
        assert "gyroscope_scale_unverified" in report.flags
    deg = check_imu(rec.time_s, rec.acc, np.degrees(rec.gyr))
    assert [f.code for f in deg.problems] == ["gyr_unit_deg_s"]
    in_g = check_imu(rec.time_s, rec.acc / 9.80665, rec.gyr)
    assert [f.code for f in in_g.problems] == ["acc_unit_g"]
    in_ms = check_imu(rec.time_s * 1000, rec.acc, rec.gyr)
    assert [f.code for f in in_ms.problems] == ["time_unit_ms"]


def test_cli_9d_orientation_on_a_compressed_recording(tmp_path):
    path = DATA / "02_undisturbed_slow_rotation_B.csv.xz"
    out = tmp_path / "q.csv"
    res = subprocess.run(
        [sys.executable, "-m", "poise.cli", "analyze", "orientation", str(path), "-o", str(out),
         "--mag"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mode"] == "9D"
    q = np.loadtxt(out, delimiter=",", skiprows=1)
    assert q.shape[0] == read_imu_csv(path).n_samples
    np.testing.assert_allclose(np.linalg.norm(q[:, 1:], axis=1), 1.0, atol=1e-6)
