"""Every ``poise analyze`` command on generated recordings: a result (exit 0) or a clear
refusal (exit 2), never a traceback, whatever plausible-looking or odd data it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poise.cli import main
from poise.core.csvio import write_csv

COMMANDS = {
    "sway": [],
    "tug": [],
    "chair-stand": ["--age", "70", "--sex", "female"],
    "four-stage": [
        *("--stage", "feet_together:0-3"),
        *("--stage", "semi_tandem:3-6"),
        *("--stage", "tandem:6-9"),
    ],
    "orientation": None,  # -o added per example
}


@st.composite
def recordings(draw):
    n = draw(st.integers(2, 1200))
    rate = draw(st.sampled_from([25.0, 50.0, 100.0, 200.0, 1000.0, 0.1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.cumsum(np.full(n, 1.0 / rate) * draw(st.sampled_from([1.0, 1.0, 1e3])))
    if draw(st.booleans()):  # jitter and gaps
        t = np.cumsum(np.abs(rng.normal(1.0 / rate, 0.3 / rate, n)) + 1e-6)
    gravity = draw(st.sampled_from([9.81, 1.0, 1000.0, 0.0, 4096.0]))
    acc = rng.normal(0, draw(st.sampled_from([0.0, 0.01, 0.5, 5.0, 1e6])), (n, 3))
    acc[:, draw(st.integers(0, 2))] += gravity
    gyr = rng.normal(0, draw(st.sampled_from([0.0, 0.01, 1.0, 50.0, 1e9])), (n, 3))
    if draw(st.booleans()):
        k = draw(st.integers(0, n - 1))
        acc[k:, :] *= draw(st.sampled_from([0.0, -1.0, 1e30]))
    return t, acc, gyr


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rec=recordings(), command=st.sampled_from(sorted(COMMANDS)))
def test_any_recording_gets_a_result_or_a_clear_refusal(tmp_path: Path, capsys, rec, command):
    t, acc, gyr = rec
    f = tmp_path / "rec.csv"
    cols = {"time_s": t}
    cols.update({f"acc_{a}": acc[:, i] for i, a in enumerate("xyz")})
    cols.update({f"gyr_{a}": gyr[:, i] for i, a in enumerate("xyz")})
    write_csv(f, cols)
    extra = COMMANDS[command]
    if extra is None:
        extra = ["-o", str(tmp_path / "q.csv")]
    with np.errstate(all="ignore"):
        code = main(["analyze", command, str(f), *extra])
    out, err = capsys.readouterr()
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("poise analyze: ")
        assert "np.float64" not in err
        assert "Traceback" not in err
    else:
        assert "nan" not in out.lower().replace("not computable", "")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_file_is_refused(capsys, tmp_path, command):
    extra = COMMANDS[command]
    if extra is None:
        extra = ["-o", str(tmp_path / "q.csv")]
    assert main(["analyze", command, str(tmp_path / "absent.csv"), *extra]) == 2
    assert "cannot read" in capsys.readouterr().err
