"""The wheel is complete: built from the repository, installed (not editable) into a fresh
virtualenv and run from ``/``, it lists every firmware profile, decodes a shipped test vector
and analyses a CSV.

To stay fast and offline the fresh venv borrows its third-party dependencies (numpy, scipy,
...) from the running interpreter's site-packages through a ``.pth`` line; poise itself, with
its data files, comes only from the wheel: the test checks that nothing is imported from the
source tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import numpy as np
import pytest

from collector.profiles import load_all
from collector.virtual import stance_trace
from poise.core.csvio import write_csv

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("poise", "collector", "analysis", "firmware_profiles")
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md")


def _copy_sources(dest: Path) -> None:
    """A clean copy of what the build reads, so the build leaves nothing in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, dest / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv holding poise from its wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, env = tmp / "src", tmp / "dist", tmp / "venv"
    _copy_sources(src)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    wheels = list(dist.glob("poise-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # dependencies from this interpreter, after the venv's own site-packages
    (site / "zz-borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            str(wheels[0]),
        ],
        check=True,
        capture_output=True,
    )
    return env / "bin"


def _run(bindir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bindir / "poise"), *args],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


def test_imports_come_from_the_wheel(installed: Path) -> None:
    out = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import collector.profiles as p, poise, analysis;"
            "print(p.__file__); print(poise.__file__); print(analysis.__file__);"
            "print(p.PROFILE_DIR)",
        ],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    venv_dir = str(installed.parent)
    assert all(line.startswith(venv_dir) for line in out), out
    assert not any(line.startswith(str(REPO)) for line in out), out


def test_profiles_lists_every_sensor(installed: Path) -> None:
    res = _run(installed, "profiles")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip() and not ln.startswith(" ")]
    assert sorted(ln.split()[0] for ln in lines) == sorted(load_all()), res.stdout
    assert len(lines) == 8  # the seven first profiles and the Movella DOT


def test_decode_a_shipped_vector(installed: Path) -> None:
    site = next((installed.parent / "lib").glob("python3*/site-packages"))
    vectors = site / "collector" / "firmware_profiles" / "vectors" / "witmotion-wt901ble.toml"
    vec = tomllib.loads(vectors.read_text())["vector"][0]
    res = _run(installed, "decode", "--profile", "witmotion-wt901ble", *vec["notifications"])
    assert res.returncode == 0, res.stderr
    samples = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(samples) == len(vec["expect"])
    g = 9.80665
    for got, want in zip(samples, vec["expect"], strict=True):
        assert np.allclose(got["acc"], np.array(want["acc"]) * g, atol=1e-6)


def test_analyze_sway_on_a_csv(installed: Path, tmp_path: Path) -> None:
    trace = stance_trace(np.random.default_rng(3), 30.0, 0.08)
    cols = {"time_s": trace.time_s}
    for group, arr in (("acc", trace.acc), ("gyr", trace.gyr)):
        for i, a in enumerate("xyz"):
            cols[f"{group}_{a}"] = arr[:, i]
    csv_path = tmp_path / "stance.csv"
    write_csv(csv_path, cols)
    res = _run(installed, "analyze", "sway", str(csv_path), "--json")
    assert res.returncode == 0, res.stderr
    assert '"rms_ap"' in json.dumps(json.loads(res.stdout))
