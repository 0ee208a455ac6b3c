"""``poise patient forget`` on the real stack: a forgotten patient leaves no point behind,
others keep every point, and a second run removes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from poise.core.influx import point_line
from poise.forget import ForgetError, forget_influx

pytestmark = pytest.mark.integration


def _seed(stack) -> None:
    t0 = time.time_ns() - 60 * 10**9
    raw = [
        f"imu,patient={p},sensor={p}-s{k},site=t acc_x={i}.5,acc_y=1 {t0 + i * 10**7}"
        for p in ("p1", "p2")
        for k in (1, 2)
        for i in range(50)
    ]
    with stack.influx_client("ingest") as ingest:
        ingest.write(raw)
    derived = [
        point_line(m, {"site": "t", "patient": p, "algorithm_version": "1"}, {"v": 1.0}, t0 + i)
        for p in ("p1", "p2")
        for m in ("sway_live", "trial_summary")
        for i in range(3)
    ]
    with stack.influx_client("worker") as worker:
        worker.write(derived, rp="derived")


def _forget(stack, *args: str) -> subprocess.CompletedProcess[str]:
    info = stack.info()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "poise.cli",
            "patient",
            "forget",
            *args,
            "--influx",
            info.influx_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )


def _everything_of(influx, patient: str) -> int:
    n = 0
    for rp in ("raw", "derived", "autogen"):
        for s in influx.query(f"SELECT count(*) FROM \"{rp}\"./.*/ WHERE patient = '{patient}'"):
            n += max(v for v in s["values"][0][1:] if isinstance(v, int))
    return n


def test_forget_removes_every_point_of_the_patient_and_only_theirs(stack, influx):
    _seed(stack)
    dry = _forget(stack, "p1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["influx"]["points_total"] == 106
    assert _everything_of(influx, "p1") == 106
    res = _forget(stack, "p1")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["influx"] == {
        "series": 4,
        "points": {"raw.imu": 100, "derived.sway_live": 3, "derived.trial_summary": 3},
        "points_total": 106,
        "removed": True,
    }
    assert report["clinical"]["store"] in (None, "console")
    assert _everything_of(influx, "p1") == 0
    assert influx.query("SHOW SERIES WHERE patient = 'p1'") == []
    assert _everything_of(influx, "p2") == 106
    again = _forget(stack, "p1")
    assert again.returncode == 0
    assert json.loads(again.stdout)["influx"] == {
        "series": 0,
        "points": {},
        "points_total": 0,
        "removed": False,
    }


def test_forget_needs_the_admin_login_and_a_valid_id(stack):
    _seed(stack)
    with stack.influx_client("reader") as reader, pytest.raises(ForgetError, match="admin"):
        forget_influx(reader, "p1")
    res = _forget(stack, "p 1")
    assert res.returncode == 2
    assert "must match" in res.stderr
    assert "Traceback" not in res.stderr
