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
    # the simulated stance barely tilts, so the gyroscope's unit cannot be confirmed: said so
    assert "quality: gyroscope scale unverified" in table.stdout


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
            + "".join(f"{i / 100},0,{i % 3 / 100},9.8,0,0,0\n" for i in range(20)),
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
    f = save(tmp_path / "cs.csv", chair_stand_trace(rng, [StandSpec()] * 7, lead_s=1, tail_s=5))
    res = run("analyze", "chair-stand", str(f), "--age", "72", "--sex", "female", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stands"] == 7
    assert out["flags"]["below_norm"] is True  # below 10 at 70-74 for women
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


# --- plausibility: wrong units and dead signals are refused, naming the likely cause ---


def poise_main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (the same ``main`` the console script runs): exit code, out, err."""
    from poise.cli import main

    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _corrupt(trace, how: str):
    t, acc, gyr = trace.time_s.copy(), trace.acc.copy(), trace.gyr.copy()
    if how == "gyr_deg_s":
        gyr = np.degrees(gyr)
    elif how == "acc_g":
        acc = acc / 9.80665
    elif how == "acc_mg":
        acc = acc / 9.80665 * 1000
    elif how == "time_ms":
        t = t * 1000
    elif how == "acc_constant":
        acc[:] = [0.0, 9.81, 0.0]
    elif how == "gyr_zero":
        gyr[:] = 0.0
    elif how == "huge":
        acc[100:110] = 3e38
    elif how == "raw_counts":
        acc = acc / 9.80665 * 4096
    return type(trace)(t, acc, gyr, trace.quat_wxyz, trace.truth)


REFUSALS = {
    "gyr_deg_s": "gyroscope values look like deg/s",
    "acc_g": "accelerometer values look like g",
    "acc_mg": "accelerometer values look like mg",
    "time_ms": "time values look like ms",
    "acc_constant": "the accelerometer never changes",
    "gyr_zero": "the gyroscope is zero throughout",
    "huge": "beyond any IMU's range",
    "raw_counts": "raw sensor counts",
}


@pytest.fixture(scope="module")
def traces():
    rng = np.random.default_rng(11)
    return {
        "chair-stand": chair_stand_trace(rng, [StandSpec()] * 4),
        "tug": tug_trace(rng),
        "orientation": tug_trace(rng),
        "sway": stance_trace(rng, 20, 0.1),
        "four-stage": stance_trace(rng, 25, 0.1),
        "rom": hinge_traces(rng, HingeMotion(kind="squat", reps=3, rom_deg=70.0)),
    }


def _argv(command: str, files: list[Path], tmp_path: Path) -> list[str]:
    if command == "rom":
        return ["analyze", "rom", "--proximal", str(files[0]), "--distal", str(files[1]),
                "--joint", "knee"]  # fmt: skip
    argv = ["analyze", command, str(files[0])]
    if command == "orientation":
        argv += ["-o", str(tmp_path / "q.csv")]
    if command == "four-stage":
        argv += ["--stage", "feet_together:0-11", "--stage", "semi_tandem:12-23"]
    return argv


def _files(traces, command: str, how: str, tmp_path: Path) -> list[Path]:
    tr = traces[command]
    pair = tr if isinstance(tr, tuple) else (tr,)
    return [save(tmp_path / f"{i}.csv", _corrupt(x, how)) for i, x in enumerate(pair)]


CASES = [
    (cmd, how)
    for cmd in ("sway", "four-stage", "chair-stand", "tug", "orientation", "rom")
    for how in REFUSALS
    # sway and the 4-stage test need no gyroscope: a zero one is a flag there, not a refusal
    if not (how == "gyr_zero" and cmd in ("sway", "four-stage"))
    # quiet standing barely tilts: the gyro's unit can be judged only by its range there
    and not (how == "gyr_deg_s" and cmd in ("sway", "four-stage"))
]


@pytest.mark.parametrize(("command", "how"), CASES)
def test_implausible_input_is_refused(capsys, tmp_path, traces, command, how):
    files = _files(traces, command, how, tmp_path)
    code, out, err = poise_main(capsys, *_argv(command, files, tmp_path))
    assert code == 2, (out, err)
    assert REFUSALS[how] in err
    assert out == ""  # no numbers printed
    assert "np.float64" not in err


@pytest.mark.parametrize(
    ("how", "override"),
    [
        ("gyr_deg_s", ["--gyr-unit", "deg/s"]),
        ("acc_g", ["--acc-unit", "g"]),
        ("acc_mg", ["--acc-unit", "mg"]),
        ("time_ms", ["--time-unit", "ms"]),
    ],
)
def test_unit_override_gives_the_si_answer(capsys, tmp_path, traces, how, override):
    (tmp_path / "good").mkdir()
    good = _files(traces, "chair-stand", "none", tmp_path / "good")
    bad = _files(traces, "chair-stand", how, tmp_path)
    code, out, err = poise_main(capsys, "analyze", "chair-stand", str(bad[0]), "--json", *override)
    assert code == 0, err
    ref_code, ref, _ = poise_main(capsys, "analyze", "chair-stand", str(good[0]), "--json")
    assert ref_code == 0
    assert json.loads(out)["stands"] == json.loads(ref)["stands"] == 4
    # the message names the override that would fix it
    code, _out, err = poise_main(capsys, "analyze", "chair-stand", str(bad[0]))
    assert code == 2
    assert " ".join(override) in err


def test_sway_without_gyroscope_is_flagged_not_refused(capsys, tmp_path, traces):
    files = _files(traces, "sway", "gyr_zero", tmp_path)
    code, out, err = poise_main(capsys, "analyze", "sway", str(files[0]), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert "no_gyroscope" in res["quality"]["flags"]
    assert res["rms"] > 0


def test_refusal_as_a_user_sees_it(tmp_path, traces):
    """One refusal through the installed console entry point: exit 2, no traceback."""
    files = _files(traces, "rom", "gyr_deg_s", tmp_path)
    res = run(*_argv("rom", files, tmp_path))
    assert res.returncode == 2
    assert "gyroscope values look like deg/s; poise expects rad/s" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""


def test_outputs_that_would_destroy_or_cannot_be_written(capsys, tmp_path, traces):
    f = save(tmp_path / "rec.csv", traces["orientation"])
    before = f.read_bytes()
    for out in (str(f), str(tmp_path / "." / "rec.csv")):
        code, _out, err = poise_main(capsys, "analyze", "orientation", str(f), "-o", out)
        assert code == 2
        assert "is the input file" in err
    assert f.read_bytes() == before
    code, _out, err = poise_main(capsys, "analyze", "orientation", str(f), "-o", str(tmp_path))
    assert code == 2
    assert "is a folder" in err
    code, _out, err = poise_main(
        capsys, "analyze", "orientation", str(f), "-o", str(tmp_path / "no" / "q.csv")
    )
    assert code == 2
    assert "cannot write" in err


@pytest.mark.parametrize("command", ["sway", "tug", "chair-stand"])
def test_header_only_and_folder_inputs(capsys, tmp_path, command):
    f = tmp_path / "empty.csv"
    f.write_text("time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n")
    code, _out, err = poise_main(capsys, "analyze", command, str(f))
    assert code == 2
    assert "no data rows" in err
    code, _out, err = poise_main(capsys, "analyze", command, str(tmp_path))
    assert code == 2
    assert "is a folder" in err


def test_four_stage_without_tandem_gets_no_verdict(capsys, tmp_path, traces):
    f = save(tmp_path / "st.csv", traces["four-stage"])
    code, out, err = poise_main(
        capsys, "analyze", "four-stage", str(f), "--stage", "feet_together:0-11",
        "--stage", "semi_tandem:12-23",
    )  # fmt: skip
    assert code == 2
    assert "no verdict" in err
    assert "tandem stance under 10 s" not in out
    code, _out, err = poise_main(
        capsys, "analyze", "four-stage", str(f), "--stage", "tandem:0-11",
        "--stage", "feet_together:12-23",
    )  # fmt: skip
    assert code == 2
    assert "out of order" in err
    code, out, err = poise_main(
        capsys, "analyze", "four-stage", str(f), "--stage", "feet_together:0-11"
    )
    assert code == 2
    assert "not a 4-stage test: no verdict" in err
