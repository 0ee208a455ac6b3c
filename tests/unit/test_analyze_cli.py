"""``poise analyze`` as a user runs it: files in, JSON or a table out, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.orientation import Orientation
from collector.virtual import (
    HingeMotion,
    StandSpec,
    chair_stand_trace,
    hinge_traces,
    stance_trace,
    tug_trace,
)
from poise.core.csvio import read_imu_csv, write_csv
from tests.conftest import SHARED

POISE = [sys.executable, "-m", "poise.cli"]
SWAY_KEYS = {
    "rms_ap",
    "rms_ml",
    "rms",
    "mean_distance",
    "range_ap",
    "range_ml",
    "path_length",
    "path_rate",
    "jerk",
    "ellipse_area_95",
    "centroidal_frequency_ap",
    "centroidal_frequency_ml",
    "frequency_dispersion_ap",
    "frequency_dispersion_ml",
    "f50_ap",
    "f50_ml",
    "f95_ap",
    "f95_ml",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POISE, *args], capture_output=True, text=True, timeout=120, check=False)


def save(path: Path, trace) -> Path:
    cols = {"time_s": trace.time_s}
    for i, a in enumerate("xyz"):
        cols[f"acc_{a}"] = trace.acc[:, i]
    for i, a in enumerate("xyz"):
        cols[f"gyr_{a}"] = trace.gyr[:, i]
    cols["note"] = np.zeros(len(trace.time_s))  # an extra column: ignored
    write_csv(path, cols)
    return path


def test_sway_json_and_table(tmp_path):
    f = save(tmp_path / "stance.csv", stance_trace(np.random.default_rng(1), 30, 0.05))
    res = run("analyze", "sway", str(f), "--ap-axis", "-z", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) >= SWAY_KEYS
    assert out["algorithm_version"].startswith("sway-")
    assert out["quality"]["too_short"] is False
    assert 0.02 < out["rms"] < 0.1
    table = run("analyze", "sway", str(f))
    assert table.returncode == 0
    assert "ellipse_area_95" in table.stdout
    assert "quality: no flags" in table.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y\n0,0,0,9.8,0,0\n", "missing column 'gyr_z'"),
        ("time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n", "1 samples; at least 2"),
        (
            "time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.01,0,nan,9.8,0,0,0\n",
            "NaN or infinite value in acc at data row 2",
        ),
        (
            "time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.02,0,0,9.8,0,0,0\n0.01,0,0,9.8,0,0,0\n",
            "time_s must increase; data row 3",
        ),
        ("time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,zero\n", "not a number"),
        (
            "time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n"
            + "".join(f"{i / 100},0,0,9.8,0,0,0\n" for i in range(20)),
            "too few",
        ),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, content, message):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    res = run("analyze", "sway", str(f))
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_orientation_writes_one_row_per_input_row(tmp_path):
    rng = np.random.default_rng(2)
    p, _d = hinge_traces(rng, HingeMotion(kind="squat", reps=2))
    f = save(tmp_path / "thigh.csv", p)
    out = tmp_path / "q.csv"
    res = run("analyze", "orientation", str(f), "-o", str(out))
    assert res.returncode == 0, res.stderr
    header = out.read_text().splitlines()[0]
    assert header == "time_s,qw,qx,qy,qz"
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert data.shape == (len(p.time_s), 5)
    np.testing.assert_allclose(data[:, 0], p.time_s, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(data[:, 1:], axis=1), 1.0, atol=1e-6)
    rec = read_imu_csv(f)
    expected = Orientation(mode="offline").update(rec.time_s, rec.acc, rec.gyr)
    np.testing.assert_allclose(data[:, 1:], expected, atol=1e-8)
    no_mag = run("analyze", "orientation", str(f), "-o", str(out), "--mag")
    assert no_mag.returncode == 2
    assert "no mag_x, mag_y, mag_z columns" in no_mag.stderr


def test_orientation_9d_on_broad(tmp_path):
    path = SHARED / "data" / "broad" / "02_undisturbed_slow_rotation_B.csv"
    if not path.exists():
        pytest.skip(f"BROAD data not found at {path} (it lives in ../shared beside the clone)")
    out = tmp_path / "q.csv"
    res = run("analyze", "orientation", str(path), "-o", str(out), "--mag")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mode"] == "9D"
    assert np.loadtxt(out, delimiter=",", skiprows=1).shape[0] == read_imu_csv(path).n_samples


def test_rom_two_sensors_json(tmp_path):
    rng = np.random.default_rng(3)
    p, d = hinge_traces(rng, HingeMotion(kind="seated_knee", reps=4, rom_deg=[60, 90, 75, 95]))
    fp, fd = save(tmp_path / "thigh.csv", p), save(tmp_path / "shank.csv", d)
    res = run(
        "analyze",
        "rom",
        "--proximal",
        str(fp),
        "--distal",
        str(fd),
        "--joint",
        "knee",
        "--json",
        "--target-rom",
        "70",
        "--max-rom",
        "92",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rom_deg"] == pytest.approx(95, abs=3)
    assert out["peak_deg"] == pytest.approx(95, abs=3)
    assert out["rep_count"] == 4
    assert [r["correct"] for r in out["repetitions"]] == [False, True, True, False]
    assert {"start_s", "end_s", "peak_deg", "rom_deg", "correct"} <= set(out["repetitions"][0])
    assert out["algorithm_version"].startswith("joint-")
    assert out["quality"]["samples"] == len(p.time_s)


def test_rom_one_sensor_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    p, _d = hinge_traces(rng, HingeMotion(kind="squat", reps=3, rom_deg=100.0))
    fp = save(tmp_path / "thigh.csv", p)
    res = run(
        "analyze", "rom", "--segment", str(fp), "--joint", "hip", "--motion", "flexion", "--json"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rep_count"] == 3
    assert out["rom_deg"] == pytest.approx(55, abs=3)  # the thigh tilts 55 % of the knee angle here
    missing = run("analyze", "rom", "--segment", str(fp), "--joint", "knee")
    assert missing.returncode == 2
    assert "needs --proximal and --distal" in missing.stderr


def test_steadi_commands(tmp_path):
    rng = np.random.default_rng(5)
    f = save(tmp_path / "cs.csv", chair_stand_trace(rng, [StandSpec()] * 7, lead_s=1.0))
    res = run("analyze", "chair-stand", str(f), "--age", "72", "--sex", "female", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stands"] == 7
    assert out["flags"] == {"below_norm": True}  # below 10 at 70-74 for women
    f2 = save(tmp_path / "tug.csv", tug_trace(rng))
    res = run("analyze", "tug", str(f2))
    assert res.returncode == 0, res.stderr
    assert "Timed Up and Go: 11." in res.stdout
    stance = save(tmp_path / "st.csv", stance_trace(rng, 40, 0.05, step_at_s=30))
    res = run(
        "analyze",
        "four-stage",
        str(stance),
        "--stage",
        "feet_together:0-12",
        "--stage",
        "semi_tandem:14-26",
        "--stage",
        "tandem:28-39",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    stages = json.loads(res.stdout)["stages"]
    assert [s["passed"] for s in stages] == [True, True, False]
    assert stages[2]["hold_s"] == pytest.approx(2.0, abs=0.3)
    bad = run("analyze", "four-stage", str(stance), "--stage", "tandem-10")
    assert bad.returncode == 2
    assert "expected NAME:START-END" in bad.stderr
