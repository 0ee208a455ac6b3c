"""Sway: known answers on synthetic signals, an independent re-computation of every metric
on a realistic trial (tilted mounting, noise), quality flags, and streaming == batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal
from scipy.spatial.transform import Rotation

from analysis import sway

G = 9.80665
FS = 100.0


def _trial(a_ap, a_ml, mount: Rotation, fs=FS, noise=0.0, rng=None):
    """Sensor-frame acc/gyr for body-frame horizontal accelerations (AP fwd, ML left, V up).
    ``mount`` rotates body-frame vectors into the sensor frame."""
    n = len(a_ap)
    body = np.column_stack([a_ap, a_ml, np.full(n, G)])
    acc = mount.apply(body)
    if noise:
        acc = acc + rng.normal(0, noise, acc.shape)
    t = np.arange(n) / fs
    return t, acc, np.zeros((n, 3))


# Device face normal points forward: sensor -z is AP, sensor +y is up, so -x is left.
# Columns: where body forward, left and up land in the sensor frame.
UPRIGHT = Rotation.from_matrix(np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], float).T)


def test_mounting_puts_ap_on_minus_z():
    assert np.allclose(UPRIGHT.apply([1, 0, 0]), [0, 0, -1])  # forward -> -z
    assert np.allclose(UPRIGHT.apply([0, 0, 1]), [0, 1, 0])  # up -> +y
    assert np.allclose(UPRIGHT.apply([0, 1, 0]), [-1, 0, 0])  # left -> -x


def test_sine_known_answers():
    a, b, f = 0.2, 0.1, 1.0  # m/s², m/s², Hz: an elliptical sway path
    t = np.arange(int(60 * FS)) / FS
    t_, acc, gyr = _trial(a * np.sin(2 * np.pi * f * t), b * np.cos(2 * np.pi * f * t), UPRIGHT)
    res = sway.analyze_trial(t_, acc, gyr, sway.SwayParams(ap_axis="-z"))
    m = res.metrics
    assert m["rms_ap"] == pytest.approx(a / math.sqrt(2), rel=1e-3)
    assert m["rms_ml"] == pytest.approx(b / math.sqrt(2), rel=1e-3)
    assert m["rms"] == pytest.approx(math.sqrt((a**2 + b**2) / 2), rel=1e-3)
    assert m["range_ap"] == pytest.approx(2 * a, rel=1e-3)
    assert m["range_ml"] == pytest.approx(2 * b, rel=1e-3)
    # covariance diag(a²/2, b²/2): area = π · 5.991 · ab/2
    assert m["ellipse_area_95"] == pytest.approx(math.pi * 5.991 * a * b / 2, rel=2e-3)
    # jerk: derivatives (2πf a cos, -2πf b sin): ½·mean(...) = ½·(2πf)²·(a²+b²)/2
    assert m["jerk"] == pytest.approx(0.5 * (2 * np.pi * f) ** 2 * (a**2 + b**2) / 2, rel=2e-3)
    # path: the ellipse perimeter once per second (Ramanujan's approximation)
    h = ((a - b) / (a + b)) ** 2
    perimeter = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    assert m["path_rate"] == pytest.approx(perimeter * f, rel=2e-3)
    bin_hz = 1 / 10.0  # 10 s Welch segments
    for axis in ("ap", "ml"):
        assert abs(m[f"centroidal_frequency_{axis}"] - f) < bin_hz
        assert m[f"frequency_dispersion_{axis}"] < 0.1  # 0 for a pure sine, but for leakage
        assert abs(m[f"f50_{axis}"] - f) <= bin_hz + 1e-9
        assert abs(m[f"f95_{axis}"] - f) <= bin_hz + 1e-9  # leakage: within one bin
    assert res.quality.too_short is False
    assert res.quality.loss_of_balance_s is None
    assert res.quality.sample_loss_pct == 0


def test_gravity_and_mounting_tilt_drop_out():
    rng = np.random.default_rng(0)
    t = np.arange(int(30 * FS)) / FS
    ap = 0.1 * np.sin(2 * np.pi * 0.5 * t)
    ml = 0.05 * np.sin(2 * np.pi * 0.7 * t)
    ref = sway.analyze_trial(*_trial(ap, ml, UPRIGHT), sway.SwayParams(ap_axis="-z")).metrics
    # the same motion with the sensor rolled and pitched 15° on the back
    tilt = UPRIGHT * Rotation.from_euler("xy", [15, -15], degrees=True)
    tilted = sway.analyze_trial(*_trial(ap, ml, tilt), sway.SwayParams(ap_axis="-z")).metrics
    assert tilted["rms_ap"] == pytest.approx(ref["rms_ap"], rel=0.05)
    assert tilted["rms_ml"] == pytest.approx(ref["rms_ml"], rel=0.05)
    del rng


def _welch_by_hand(x: np.ndarray, fs: float, seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch's PSD written out: Hann window, 50 % overlap, one-sided density, mean of segments."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(seg) / seg)  # periodic Hann, as scipy uses
    step = seg // 2
    spectra = []
    for start in range(0, len(x) - seg + 1, step):
        X = np.fft.rfft(x[start : start + seg] * w)
        p = (np.abs(X) ** 2) / (fs * np.sum(w**2))
        p[1:-1] *= 2 if seg % 2 == 0 else 1
        if seg % 2:
            p[1:] *= 2
        spectra.append(p)
    return np.fft.rfftfreq(seg, 1 / fs), np.mean(spectra, axis=0)


def _oracle(time_s, acc, ap_axis_vec, fs):
    """An independent implementation of docs/metrics.md section 'sway', step by step."""
    v = acc.mean(axis=0)
    v /= np.linalg.norm(v)
    ap = ap_axis_vec - (ap_axis_vec @ v) * v
    ap /= np.linalg.norm(ap)
    ml = np.cross(v, ap)
    b, a = signal.butter(4, 3.5 / (fs / 2))
    x = signal.filtfilt(b, a, acc @ ap - np.mean(acc @ ap), padlen=200)
    y = signal.filtfilt(b, a, acc @ ml - np.mean(acc @ ml), padlen=200)
    T = len(x) / fs
    out = {
        "rms_ap": np.sqrt(np.mean(x * x)),
        "rms_ml": np.sqrt(np.mean(y * y)),
        "rms": np.sqrt(np.mean(x * x + y * y)),
        "mean_distance": np.mean(np.sqrt(x * x + y * y)),
        "range_ap": x.max() - x.min(),
        "range_ml": y.max() - y.min(),
    }
    out["path_length"] = sum(
        math.hypot(x[i + 1] - x[i], y[i + 1] - y[i]) for i in range(len(x) - 1)
    )
    out["path_rate"] = out["path_length"] / T
    dx = np.empty_like(x)
    dy = np.empty_like(y)
    dx[1:-1], dy[1:-1] = (x[2:] - x[:-2]) * fs / 2, (y[2:] - y[:-2]) * fs / 2
    dx[0], dx[-1] = (x[1] - x[0]) * fs, (x[-1] - x[-2]) * fs
    dy[0], dy[-1] = (y[1] - y[0]) * fs, (y[-1] - y[-2]) * fs
    out["jerk"] = 0.5 * np.mean(dx**2 + dy**2)
    sxx = np.sum((x - x.mean()) ** 2) / (len(x) - 1)
    syy = np.sum((y - y.mean()) ** 2) / (len(y) - 1)
    sxy = np.sum((x - x.mean()) * (y - y.mean())) / (len(x) - 1)
    out["ellipse_area_95"] = math.pi * 5.991 * math.sqrt(sxx * syy - sxy**2)
    for name, sig in (("ap", x), ("ml", y)):
        f, p = _welch_by_hand(sig, fs, int(10 * fs))
        band = (f >= 0.15) & (f <= 5.0)
        f, p = f[band], p[band]
        m0, m1, m2 = p.sum(), (f * p).sum(), (f * f * p).sum()
        out[f"centroidal_frequency_{name}"] = math.sqrt(m2 / m0)
        out[f"frequency_dispersion_{name}"] = math.sqrt(1 - m1 * m1 / (m0 * m2))
        c = np.cumsum(p) / m0
        out[f"f50_{name}"] = f[np.argmax(c >= 0.5)]
        out[f"f95_{name}"] = f[np.argmax(c >= 0.95)]
    return out


def test_full_metric_set_matches_an_independent_implementation():
    """A realistic quiet-stance trial: broadband sway, tilted and yawed mounting, sensor noise."""
    rng = np.random.default_rng(42)
    n = int(60 * FS)
    # sway: low-pass filtered noise, ~0.05 m/s² RMS, more power below 1 Hz
    bs, as_ = signal.butter(2, 1.2 / (FS / 2))
    ap = signal.lfilter(bs, as_, rng.normal(0, 1, n))
    ml = signal.lfilter(bs, as_, rng.normal(0, 1, n))
    ap *= 0.05 / ap.std()
    ml *= 0.035 / ml.std()
    mount = UPRIGHT * Rotation.from_euler("xyz", [12, -9, 20], degrees=True)
    t, acc, gyr = _trial(ap, ml, mount, noise=0.01, rng=rng)
    ours = sway.analyze_trial(t, acc, gyr, sway.SwayParams(ap_axis="-z")).metrics
    oracle = _oracle(t, acc, np.array([0.0, 0.0, -1.0]), FS)
    assert set(ours) == set(oracle)
    for name, expected in oracle.items():
        if name.startswith(("f50", "f95", "centroidal")):
            assert abs(ours[name] - expected) <= 0.1, name  # one spectral bin (10 s segments)
        else:
            assert ours[name] == pytest.approx(expected, rel=0.01), name
    assert 0.03 < ours["rms"] < 0.08


def test_quality_flags_short_loss_clipping_and_loss_of_balance():
    rng = np.random.default_rng(5)
    n = int(20 * FS)
    ap = 0.03 * rng.standard_normal(n)
    ml = 0.03 * rng.standard_normal(n)
    t, acc, gyr = _trial(ap, ml, UPRIGHT)
    gyr = gyr + rng.normal(0, 0.01, gyr.shape)
    # a step at 12 s: a burst of horizontal acceleration and trunk rotation for 0.5 s
    k = slice(int(12 * FS), int(12.5 * FS))
    acc[k] += UPRIGHT.apply([3.0, 1.5, 0.0])
    gyr[k] += [0.0, 1.2, 0.0]
    q = sway.analyze_trial(t, acc, gyr).quality
    assert q.loss_of_balance_s == pytest.approx(12.0, abs=0.2)
    assert q.clipping is False
    # quiet trial: no event
    t2, acc2, gyr2 = _trial(ap, ml, UPRIGHT)
    assert sway.analyze_trial(t2, acc2, gyr2).quality.loss_of_balance_s is None
    # short and lossy: 8 s with every 10th sample missing
    keep = np.arange(int(8 * FS)) % 10 != 3
    q2 = sway.analyze_trial(
        t2[: int(8 * FS)][keep], acc2[: int(8 * FS)][keep], gyr2[: int(8 * FS)][keep]
    ).quality
    assert q2.too_short is True
    assert q2.sample_loss_pct == pytest.approx(10.0, abs=0.5)
    # a sensor at full scale (±2 g) repeating its limit
    acc3 = acc2.copy()
    acc3[500:505, 1] = 2 * G
    assert sway.analyze_trial(t2, acc3, gyr2).quality.clipping is True


def test_bad_ap_axis_is_a_clear_error():
    t, acc, gyr = _trial(np.zeros(1000), np.zeros(1000), UPRIGHT)
    with pytest.raises(ValueError, match="nearly vertical"):
        sway.analyze_trial(t, acc, gyr, sway.SwayParams(ap_axis="y"), check=False)
    with pytest.raises(ValueError, match="the accelerometer never changes"):
        sway.analyze_trial(t, acc, gyr)  # perfectly still synthetic data is no recording
    with pytest.raises(ValueError, match="axis must be one of"):
        sway.parse_axis("w")


def test_live_window_streaming_equals_batch():
    rng = np.random.default_rng(9)
    n = int(25 * FS)
    t, acc, gyr = _trial(0.05 * rng.standard_normal(n), 0.05 * rng.standard_normal(n), UPRIGHT)
    whole = sway.LiveSway(FS).update(t, acc, gyr)
    live = sway.LiveSway(FS)
    chunked = []
    i = 0
    while i < n:
        k = int(rng.integers(1, 170))
        chunked += live.update(t[i : i + k], acc[i : i + k], gyr[i : i + k])
        i += k
    assert len(whole) == 16  # windows ending at 10, 11, ..., 25 s
    assert [w[0] for w in chunked] == [w[0] for w in whole]
    for (_, a), (_, b) in zip(chunked, whole, strict=True):
        assert a == pytest.approx(b, rel=1e-12)  # numpy may round differently by memory layout
    # and each window is the batch analysis of exactly its samples
    last = sway.analyze_trial(t[-1000:], acc[-1000:], gyr[-1000:]).metrics
    assert whole[-1][1] == pytest.approx(last, rel=1e-12)


def test_live_score_in_the_contract_streams_with_state_handed_over():
    """The registered live score: any chunking, with its state saved to JSON and restored
    in a fresh object between chunks, gives the records of one batch call."""
    import json

    from analysis.contract import REGISTRY, ImuChunk, LiveScore

    spec = REGISTRY["sway"]
    assert spec.measurement == "sway_live"
    assert spec.roles == ("trunk",)
    rng = np.random.default_rng(10)
    n = int(16 * FS)
    t, acc, gyr = _trial(0.05 * rng.standard_normal(n), 0.05 * rng.standard_normal(n), UPRIGHT)
    batch = spec.factory({})
    assert isinstance(batch, LiveScore)
    whole = batch.update({"trunk": ImuChunk(t, acc, gyr)}) + batch.finish()
    assert len(whole) == 7  # windows ending at 10 ... 16 s
    score = spec.factory({})
    got = []
    i = 0
    while i < n:
        k = int(rng.integers(1, 200))
        got += score.update({"trunk": ImuChunk(t[i : i + k], acc[i : i + k], gyr[i : i + k])})
        state = json.loads(json.dumps(score.get_state()))
        score = spec.factory({})
        score.set_state(state)
        i += k
    got += score.finish()
    assert [r.t_s for r in got] == [r.t_s for r in whole]
    for a, b in zip(got, whole, strict=True):
        assert a.fields == pytest.approx(b.fields, rel=1e-12)
        assert a.algorithm_version == b.algorithm_version == sway.ALGORITHM_VERSION
    assert set(whole[0].fields) >= {"rms_m_s2", "jerk_m2_s6", "f50_ap_hz", "window_s"}
    # the window is the batch analysis of its samples
    last = sway.analyze_trial(t[-1000:], acc[-1000:], gyr[-1000:])
    assert whole[-1].fields["rms_m_s2"] == pytest.approx(last.metrics["rms"], rel=1e-12)
    # parameters are apart from state: overrides reach the method
    other = spec.factory({"lowpass_hz": 2.0, "window_s": 5.0})
    assert other.params.sway.lowpass_hz == 2.0
    assert other.params.window_s == 5.0
