"""The clock model on sensors whose oscillators run far off nominal, and on a host whose
wall clock is stepped by NTP mid-stream."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from collector import profiles
from collector.clock import ClockParams, HostClock, HostTime
from collector.pipeline import SensorPipeline
from collector.virtual import simulate_patient


def _records(profile, rows) -> bytes:
    """Sample records of a fixed-layout profile, written out from its field table."""
    rec = next(r for r in profile.records if r.kind == "sample")
    out = b""
    for row in rows:
        buf = bytearray(rec.length)
        buf[: len(rec.header)] = rec.header
        for f in rec.fields:
            if f.name in profile.channels:
                raw = row[profile.channels.index(f.name)] / (f.scale * f.to_si)
                struct.pack_into(f.fmt, buf, f.offset, int(np.clip(round(raw), -32768, 32767)))
        out += bytes(buf)
    return out


def _stream(rate_hz: float, drift: float, seconds: float, seed: int):
    """True sample times of a device whose clock runs ``drift`` fast (negative: slow), and
    arrival times in bursts of 1-4 samples with 8 ms minimum and ~24 ms typical latency."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz * (1 + drift))
    true_t = np.arange(n) / (rate_hz * (1 + drift))
    bursts = []
    i = 0
    while i < n:
        j = min(n, i + int(rng.integers(1, 5)))
        bursts.append((i, j, true_t[j - 1] + 0.008 + abs(rng.normal(0, 0.03))))
        i = j
    return true_t, bursts


@pytest.mark.parametrize("drift", [0.005, -0.005, 0.01, -0.01, 0.03, -0.03])
def test_rc_oscillator_drift_invents_no_losses(drift):
    """0.5, 1 and 3 % fast and slow over 120 s at 100 Hz: no phantom lost samples, and once
    the drift is learnt (5 s) every sample is timed within 15 ms of the line the others
    share (true time + minimum latency)."""
    rate = 100.0
    true_t, bursts = _stream(rate, drift, 120.0, seed=7)
    clock = HostClock(ClockParams(nominal_rate_hz=rate))
    stamped = np.concatenate([clock.stamp(j - i, int(t * 1e9)) for i, j, t in bursts])
    assert clock.lost_samples == 0
    err = stamped / 1e9 - true_t
    assert np.all(np.diff(stamped) > 0)
    settled = err[true_t > 5.0]
    assert np.max(np.abs(settled - 0.008)) < 0.015
    assert np.max(np.abs(err)) < 0.1  # even while the drift is being learnt


def test_ntp_step_is_not_a_gap():
    """The host's wall clock is stepped 2 s forward, then 1 s back, mid-stream: arrivals come
    from HostTime (monotonic), so no samples are counted lost and time runs on evenly."""
    rate = 100.0
    true_t, bursts = _stream(rate, 0.0, 60.0, seed=5)
    now = {"mono": 0, "wall": 1_700_000_000 * 10**9}

    def wall() -> int:
        return now["wall"]

    def mono() -> int:
        return now["mono"]

    host = HostTime(wall, mono)
    wit = profiles.get("witmotion-wt901ble")
    pipe = SensorPipeline(wit, "s1", rate)
    naive = SensorPipeline(wit, "s2", rate)  # the same stream stamped by the wall clock
    trace = simulate_patient(np.random.default_rng(0), 61.0)["lower_back"]
    rows = np.column_stack([trace.acc, trace.gyr])
    frames, naive_frames = [], []
    for i, j, t in bursts:
        step = 2 * 10**9 if t > 20 else 0
        step -= 10**9 if t > 40 else 0
        now["mono"] = int(t * 1e9)
        now["wall"] = 1_700_000_000 * 10**9 + int(t * 1e9) + step
        data = _records(wit, rows[i:j])
        frames += pipe.feed(data, host.now_ns())
        naive_frames += naive.feed(data, now["wall"])
    frames += pipe.flush()
    naive_frames += naive.flush()
    assert pipe.lost_samples == 0
    assert sum(f.n_samples for f in frames) == len(true_t)
    t0 = np.array([(f.t0_ns - 1_700_000_000 * 10**9) / 1e9 for f in frames])
    # after the first seconds, the true timeline plus a constant latency: no 2 s jump
    firsts = np.array([true_t[f.first_sample_seq] for f in frames])
    assert np.ptp((t0 - firsts)[firsts > 5.0]) < 0.02
    assert naive.lost_samples > 150  # what the wall clock would have claimed
