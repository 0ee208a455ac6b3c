"""Raw samples back from InfluxDB (``raw.imu``), for summaries and recomputation."""

from __future__ import annotations

import time

import numpy as np

from poise.core.ids import check_id
from poise.core.influx import RAW_MEASUREMENT, RAW_RP, InfluxV1
from poise.core.wire import IMU6
from poise.worker.trials import Samples


def _where(site: str, patient: str, sensor: str) -> str:
    # ids are checked (pseudonymous, [A-Za-z0-9_-]) so they cannot break out of the quotes
    return (
        f"site='{check_id('site', site)}' AND patient='{check_id('patient', patient)}' "
        f"AND sensor='{check_id('sensor', sensor)}'"
    )


def read_samples(
    influx: InfluxV1, site: str, patient: str, sensor: str, lo_ns: int, hi_ns: int
) -> Samples:
    """The sensor's samples with lo_ns <= t < hi_ns, in time order."""
    cols = ",".join(f'"{c}"' for c in IMU6)
    series = influx.query(
        f'SELECT {cols} FROM "{RAW_RP}"."{RAW_MEASUREMENT}" WHERE {_where(site, patient, sensor)} '
        f"AND time >= {int(lo_ns)} AND time < {int(hi_ns)}"
    )
    rows = [r for s in series for r in s.get("values", [])]
    if not rows:
        return Samples(np.empty(0), np.empty((0, 3)), np.empty((0, 3)))
    arr = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=np.float64)
    arr = arr[np.all(np.isfinite(arr), axis=1)]
    t = arr[:, 0] / 1e9
    return Samples(t, arr[:, 1:4], arr[:, 4:7])


def last_sample_ns(influx: InfluxV1, site: str, patient: str, sensor: str) -> int | None:
    series = influx.query(
        f'SELECT last("acc_x") FROM "{RAW_RP}"."{RAW_MEASUREMENT}" '
        f"WHERE {_where(site, patient, sensor)}"
    )
    if not series or not series[0].get("values"):
        return None
    return int(series[0]["values"][0][0])


def wait_stored(
    influx: InfluxV1,
    site: str,
    patient: str,
    sensors: list[str],
    until_ns: int,
    *,
    timeout_s: float = 30.0,
    settle_s: float = 3.0,
    poll_s: float = 0.2,
    seen: dict[str, tuple[int, int, int]] | None = None,
) -> bool:
    """Wait until InfluxDB holds every sensor's samples up to ``until_ns`` (the ingest runs
    beside us and may lag). A sensor whose stored data stops growing for ``settle_s`` has
    stopped streaming: waiting longer would not help. False on the timeout.

    ``seen`` (sensor -> (lo_ns, hi_ns, n)) are the samples the worker itself received in a
    window: until InfluxDB holds at least that many there, a stretch is still owed (an ingest
    that restarted gets the frames its predecessor had not acknowledged redelivered later,
    after newer ones), however recent the last stored sample."""
    if seen and not wait_counts(influx, site, patient, seen, timeout_s=timeout_s, poll_s=poll_s):
        return False
    deadline = time.monotonic() + timeout_s
    last: dict[str, tuple[int | None, float]] = {}
    while True:
        done = True
        now = time.monotonic()
        for s in sensors:
            t = last_sample_ns(influx, site, patient, s)
            prev = last.get(s)
            if prev is None or prev[0] != t:
                last[s] = (t, now)
            if t is not None and t >= until_ns - 50_000_000:
                continue
            if now - last[s][1] >= settle_s:
                continue
            done = False
        if done:
            return True
        if now >= deadline:
            return False
        time.sleep(poll_s)


def count_samples(
    influx: InfluxV1, site: str, patient: str, sensor: str, lo_ns: int, hi_ns: int
) -> int:
    series = influx.query(
        f'SELECT count("acc_x") FROM "{RAW_RP}"."{RAW_MEASUREMENT}" WHERE '
        f"{_where(site, patient, sensor)} AND time >= {int(lo_ns)} AND time < {int(hi_ns)}"
    )
    if not series or not series[0].get("values"):
        return 0
    return int(series[0]["values"][0][1] or 0)


# samples exactly on a window's edge may fall on either side once times are in seconds
EDGE_SAMPLES = 2


def wait_counts(
    influx: InfluxV1,
    site: str,
    patient: str,
    seen: dict[str, tuple[int, int, int]],
    *,
    timeout_s: float,
    poll_s: float = 0.2,
) -> bool:
    """Wait until InfluxDB holds, per sensor, at least the samples seen in its window."""
    deadline = time.monotonic() + timeout_s
    todo = dict(seen)
    while todo:
        for sensor, (lo, hi, n) in list(todo.items()):
            if count_samples(influx, site, patient, sensor, lo, hi) >= n - EDGE_SAMPLES:
                del todo[sensor]
        if not todo:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
