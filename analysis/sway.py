"""Balance sway from one sensor on the lower back (L5): the ISway-style measures.

After Mancini et al. 2012 (J NeuroEng Rehabil 9:59, "ISway") and Prieto et al. 1996 (IEEE
TBME 43:956-966), applied to trunk acceleration rather than centre of pressure.

Preprocessing (``SwayParams``):

1. V (up) is the direction of the trial's mean acceleration (gravity).
2. AP (forward) is the sensor axis normal to the device face as mounted (``ap_axis``, e.g.
   ``"-z"``), made orthogonal to V; ML (left) = V x AP.
3. a_AP, a_ML are the acceleration projected on AP and ML (gravity drops out).
4. Each has its mean removed and is low-passed zero-phase (filtfilt), 4th-order
   Butterworth, 3.5 Hz.

Metrics (names and units as docs/metrics.md): RMS, mean distance, range, path length and
rate, jerk, the 95 % prediction-ellipse area (Schubert & Kirchner 2014, Gait Posture
39:518), and from a Welch PSD over 0.15-5 Hz the centroidal frequency, frequency dispersion,
f50 and f95. Pure functions of arrays: no files, clocks or configuration.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import signal

from analysis.contract import (
    REGISTRY,
    FieldValue,
    ImuChunk,
    Record,
    ScoreSpec,
    pack,
    register,
    unpack,
)
from analysis.plausibility import require_plausible
from poise.core.channels import G
from poise.core.clinical import CONDITIONS
from poise.core.derived import SWAY_METRIC_FIELDS

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "sway-1.0"
AXES = {"x": 0, "y": 1, "z": 2}
CHI2_95_2DOF = 5.991  # chi-square quantile, 2 degrees of freedom, p = 0.95


@dataclass(frozen=True)
class SwayParams:
    ap_axis: str = "-z"  # sensor axis pointing forward (the device face normal as mounted)
    lowpass_hz: float = 3.5
    filter_order: int = 4
    band_hz: tuple[float, float] = (0.15, 5.0)  # spectral measures use this band
    welch_segment_s: float = 10.0
    min_duration_s: float = 10.0  # shorter trials are flagged too_short


def parse_axis(text: str) -> Array:
    """'+x', 'x', '-z' ... -> a unit vector in the sensor frame."""
    t = text.strip().lower()
    sign = -1.0 if t.startswith("-") else 1.0
    name = t.lstrip("+-")
    if name not in AXES:
        raise ValueError(f"axis must be one of +x, -x, +y, -y, +z, -z; found {text!r}")
    v = np.zeros(3)
    v[AXES[name]] = sign
    return v


@dataclass(frozen=True)
class BodyAxes:
    """Unit vectors of the body frame expressed in the sensor frame."""

    ap: Array
    ml: Array
    v: Array


def body_axes(acc: Array, ap_axis: str) -> BodyAxes:
    v = acc.mean(axis=0)
    norm = np.linalg.norm(v)
    if norm < 1e-6:
        raise ValueError("the mean acceleration is zero: no gravity to find vertical from")
    v = v / norm
    a = parse_axis(ap_axis)
    ap = a - np.dot(a, v) * v
    if np.linalg.norm(ap) < 0.3:
        raise ValueError(
            f"the AP axis {ap_axis} is nearly vertical as mounted; choose the axis that points "
            "forward out of the patient's back"
        )
    ap = ap / np.linalg.norm(ap)
    ml = np.cross(v, ap)
    return BodyAxes(ap, ml, v)


@functools.lru_cache(maxsize=32)
def _lowpass_sos(order: int, cutoff_hz: float, fs_hz: float) -> Array:
    """The filter design, cached: the live path scores a window every second."""
    sos: Array = signal.butter(order, cutoff_hz, btype="low", fs=fs_hz, output="sos")
    return sos


def preprocess(acc: Array, fs_hz: float, params: SwayParams) -> tuple[Array, Array]:
    """Filtered a_AP, a_ML (m/s²) from sensor-frame acceleration."""
    axes = body_axes(acc, params.ap_axis)
    a_ap = acc @ axes.ap
    a_ml = acc @ axes.ml
    sos = _lowpass_sos(params.filter_order, params.lowpass_hz, round(fs_hz, 6))
    # pad by a second (odd extension) so the filter's start-up transient stays off the trial
    pad = min(len(acc) - 1, round(fs_hz))
    both = np.vstack([a_ap - a_ap.mean(), a_ml - a_ml.mean()])
    filtered = signal.sosfiltfilt(sos, both, axis=-1, padlen=pad)  # both axes in one call
    return filtered[0], filtered[1]


def _spectral(x: Array, fs_hz: float, params: SwayParams) -> list[dict[str, float]]:
    """Spectral measures of each row of ``x`` (one Welch call for all rows)."""
    nperseg = min(x.shape[-1], round(params.welch_segment_s * fs_hz))
    f, pxx = signal.welch(
        x, fs=fs_hz, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend=False, axis=-1
    )
    band = (f >= params.band_hz[0]) & (f <= params.band_hz[1])
    fb = f[band]
    out = []
    for gb in pxx[..., band].reshape(-1, band.sum()):
        mu0, mu1, mu2 = gb.sum(), (fb * gb).sum(), (fb**2 * gb).sum()
        if mu0 <= 0:
            nan = float("nan")
            out.append(
                {"centroidal_frequency": nan, "frequency_dispersion": nan, "f50": nan, "f95": nan}
            )
            continue
        cum = np.cumsum(gb) / mu0
        out.append(
            {
                "centroidal_frequency": math.sqrt(mu2 / mu0),
                "frequency_dispersion": math.sqrt(max(0.0, 1.0 - mu1**2 / (mu0 * mu2))),
                "f50": float(fb[np.searchsorted(cum, 0.5)]),
                "f95": float(fb[min(np.searchsorted(cum, 0.95), len(fb) - 1)]),
            }
        )
    return out


def sway_metrics(
    a_ap: Array, a_ml: Array, fs_hz: float, params: SwayParams | None = None
) -> dict[str, float]:
    """Every sway measure of filtered AP/ML acceleration (m/s²) sampled at ``fs_hz``.

    The trial duration T is n / fs."""
    p = params or SwayParams()
    n = len(a_ap)
    duration_s = n / fs_hz
    dist = np.hypot(a_ap, a_ml)
    path = float(np.sum(np.hypot(np.diff(a_ap), np.diff(a_ml))))
    d_ap = np.gradient(a_ap, 1.0 / fs_hz)
    d_ml = np.gradient(a_ml, 1.0 / fs_hz)
    cov = np.cov(np.vstack([a_ap, a_ml]), ddof=1)
    out = {
        "rms_ap": float(np.sqrt(np.mean(a_ap**2))),
        "rms_ml": float(np.sqrt(np.mean(a_ml**2))),
        "rms": float(np.sqrt(np.mean(a_ap**2 + a_ml**2))),
        "mean_distance": float(dist.mean()),
        "range_ap": float(np.ptp(a_ap)),
        "range_ml": float(np.ptp(a_ml)),
        "path_length": path,
        "path_rate": path / duration_s,
        "jerk": float(0.5 * np.mean(d_ap**2 + d_ml**2)),
        "ellipse_area_95": float(math.pi * CHI2_95_2DOF * math.sqrt(max(0.0, np.linalg.det(cov)))),
    }
    for suffix, spectral in zip(
        ("ap", "ml"), _spectral(np.vstack([a_ap, a_ml]), fs_hz, p), strict=True
    ):
        for name, value in spectral.items():
            out[f"{name}_{suffix}"] = value
    return out


UNITS = {
    "rms_ap": "m/s²",
    "rms_ml": "m/s²",
    "rms": "m/s²",
    "mean_distance": "m/s²",
    "range_ap": "m/s²",
    "range_ml": "m/s²",
    "path_length": "m/s²",
    "path_rate": "m/s³",
    "jerk": "m²/s⁶",
    "ellipse_area_95": "(m/s²)²",
    "centroidal_frequency_ap": "Hz",
    "centroidal_frequency_ml": "Hz",
    "frequency_dispersion_ap": "-",
    "frequency_dispersion_ml": "-",
    "f50_ap": "Hz",
    "f50_ml": "Hz",
    "f95_ap": "Hz",
    "f95_ml": "Hz",
}


@dataclass(frozen=True)
class LossOfBalanceParams:
    """A step or a grab shows as horizontal trunk acceleration or trunk angular rate far above
    the trial's quiet level. Levels are RMS over short windows; the quiet level is their
    median over the trial, so a short event does not raise it."""

    window_s: float = 0.25
    factor: float = 6.0  # event: a window's RMS above factor x the quiet level ...
    min_acc_m_s2: float = 1.0  # ... and above these absolute floors, so quiet noise
    min_gyr_rad_s: float = 0.6  # never counts (tandem on foam sways ~0.9 m/s² RMS at most)


def _moving_rms(x: Array, n: int) -> Array:
    k = np.ones(n) / n
    return np.sqrt(np.convolve(x**2, k, mode="same"))


def loss_of_balance(
    time_s: Array,
    acc: Array,
    gyr: Array | None,
    ap_axis: str,
    params: LossOfBalanceParams | None = None,
) -> float | None:
    """Time (s, on ``time_s``) of the first loss-of-balance event, or None. Without a
    gyroscope (``gyr`` None) only the acceleration is looked at."""
    p = params or LossOfBalanceParams()
    fs = 1.0 / float(np.median(np.diff(time_s)))
    n = max(1, round(p.window_s * fs))
    axes = body_axes(acc, ap_axis)
    h = np.column_stack([acc @ axes.ap, acc @ axes.ml])
    h = h - np.median(h, axis=0)
    acc_level = _moving_rms(np.hypot(h[:, 0], h[:, 1]), n)
    acc_thr = max(p.factor * float(np.median(acc_level)), p.min_acc_m_s2)
    if gyr is None:
        w = np.zeros(len(time_s))
    else:
        w = np.linalg.norm(gyr - np.median(gyr, axis=0), axis=1)
    gyr_level = _moving_rms(w, n)
    gyr_thr = max(p.factor * float(np.median(gyr_level)), p.min_gyr_rad_s)
    hits = np.flatnonzero((acc_level > acc_thr) | (gyr_level > gyr_thr))
    if not hits.size:
        return None
    # The window is centred on its sample: the event's first sample above the threshold lies
    # within half a window of the first window that sees it.
    c = int(hits[0])
    lo, hi = max(0, c - n // 2), min(len(time_s), c + n // 2 + 1)
    inst = (np.hypot(h[lo:hi, 0], h[lo:hi, 1]) > acc_thr) | (w[lo:hi] > gyr_thr)
    first = lo + int(np.argmax(inst)) if inst.any() else c
    return float(time_s[first])


@dataclass(frozen=True)
class Quality:
    """Per-trial quality. ``duration_s`` is the elapsed time the samples cover (last minus
    first timestamp, plus one sample period), so lost samples do not shorten it."""

    duration_s: float
    sample_loss_pct: float
    clipping: bool
    too_short: bool
    loss_of_balance_s: float | None  # time from the trial start, or None
    not_computed: tuple[str, ...] = ()  # metrics the trial cannot give (reported as null)
    flags: tuple[str, ...] = ()  # every flag that applies, as ids

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["not_computed"] = list(self.not_computed)
        d["flags"] = list(self.flags)
        return d


def elapsed_s(time_s: Array) -> float:
    """The time the samples cover: last minus first timestamp plus one (median) period."""
    return float(time_s[-1] - time_s[0]) + float(np.median(np.diff(time_s)))


def quality(
    time_s: Array,
    acc: Array,
    gyr: Array | None,
    params: SwayParams,
    lob: LossOfBalanceParams | None = None,
    *,
    metrics: dict[str, float] | None = None,
    input_flags: tuple[str, ...] = (),
) -> Quality:
    fs = 1.0 / float(np.median(np.diff(time_s)))
    span = time_s[-1] - time_s[0]
    expected = round(span * fs) + 1
    loss = max(0.0, 100.0 * (1.0 - len(time_s) / expected))
    lob_t = loss_of_balance(time_s, acc, gyr, params.ap_axis, lob)
    duration = elapsed_s(time_s)
    clipping = _clipped(acc) or (gyr is not None and _clipped(gyr, floor=3.0))
    too_short = duration < params.min_duration_s - 1e-9
    not_computed = tuple(k for k, v in (metrics or {}).items() if not math.isfinite(v))
    flags = [
        f
        for f, on in (
            ("too_short", too_short),
            ("clipping", clipping),
            ("sample_loss", loss > 0),
            ("loss_of_balance", lob_t is not None),
            ("not_computed", bool(not_computed)),
            ("no_gyroscope", gyr is None),
        )
        if on
    ]
    flags += [f for f in input_flags if f not in flags]
    return Quality(
        duration_s=round(duration, 6),
        sample_loss_pct=round(loss, 3),
        clipping=clipping,
        too_short=too_short,
        loss_of_balance_s=None if lob_t is None else lob_t - float(time_s[0]),
        not_computed=not_computed,
        flags=tuple(flags),
    )


def _clipped(x: Array, floor: float = 1.5 * G, run: int = 3) -> bool:
    """A sensor at full scale repeats its extreme value: a run of ``run`` identical samples at
    an axis' maximum or minimum, beyond ``floor`` (so a quantized signal at rest is not it)."""
    for axis in range(x.shape[1]):
        col = x[:, axis]
        for extreme in (col.max(), col.min()):
            if abs(extreme) < floor:
                continue
            at = np.concatenate([[0], (col == extreme).astype(np.int8), [0]])
            starts = np.flatnonzero(np.diff(at) == 1)
            ends = np.flatnonzero(np.diff(at) == -1)
            if np.any(ends - starts >= run):
                return True
    return False


SWAY_CONDITION_KEYS: dict[str, tuple[str, ...]] = {
    **CONDITIONS,
    "stance": ("feet_together", "semi_tandem", "tandem", "single_leg", "feet_apart"),
}


def check_condition(condition: Mapping[str, str] | None) -> dict[str, str]:
    """A sway condition (eyes, surface, stance) checked against the clinical vocabulary."""
    out: dict[str, str] = {}
    for key, value in (condition or {}).items():
        allowed = SWAY_CONDITION_KEYS.get(key)
        if allowed is None:
            raise ValueError(
                f"condition {key!r} is not one of {', '.join(sorted(SWAY_CONDITION_KEYS))}"
            )
        if value not in allowed:
            raise ValueError(
                f"condition {key} must be one of {', '.join(allowed)}; found {value!r}"
            )
        out[key] = value
    return out


@dataclass
class SwayResult:
    metrics: dict[str, float]
    quality: Quality
    fs_hz: float
    params: SwayParams
    algorithm_version: str = ALGORITHM_VERSION
    condition: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Metrics by their plain names (non-finite as None), with the context to read them:
        algorithm version, rate, quality, parameters and the trial's condition."""
        return {
            **{k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "algorithm_version": self.algorithm_version,
            "sampling_rate_hz": self.fs_hz,
            "quality": self.quality.as_dict(),
            "params": {**asdict(self.params), "band_hz": list(self.params.band_hz)},
            "condition": dict(self.condition),
        }

    def fields(self) -> dict[str, float | None]:
        """The metrics under their stored names, units in the names (``rms_m_s2``...)."""
        return {
            SWAY_METRIC_FIELDS[k]: (v if math.isfinite(v) else None)
            for k, v in self.metrics.items()
        }


def analyze_trial(
    time_s: Array,
    acc: Array,
    gyr: Array | None,
    params: SwayParams | None = None,
    *,
    condition: Mapping[str, str] | None = None,
    input_flags: tuple[str, ...] = (),
    check: bool = True,
) -> SwayResult:
    """The whole per-trial analysis: preprocessing, every metric, quality flags. ``gyr`` may
    be None (an accelerometer-only device): loss of balance then uses acceleration only and
    the result is flagged ``no_gyroscope``. ``input_flags`` (e.g. from
    ``analysis.plausibility``) are carried into the quality flags. With ``check`` (the
    default) the recording must first pass ``analysis.plausibility``; callers that checked
    it already (``poise analyze``) pass ``check=False``."""
    p = params or SwayParams()
    cond = check_condition(condition)
    if check:  # refuse data that cannot be in poise's units (``ImplausibleInputError``)
        report = require_plausible(time_s, acc, gyr, needs_gyr=False)
        input_flags = (*input_flags, *(f for f in report.flags if f not in input_flags))
    if len(time_s) < 4:
        raise ValueError(f"{len(time_s)} samples are too few for a sway trial")
    fs = 1.0 / float(np.median(np.diff(time_s)))
    min_len = 3 * (2 * p.filter_order + 1)  # a minimum for filtfilt to mean anything
    if len(time_s) <= min_len:
        raise ValueError(
            f"{len(time_s)} samples are too few for the {p.lowpass_hz} Hz filter "
            f"(need more than {min_len})"
        )
    if fs <= 2 * p.lowpass_hz:
        raise ValueError(
            f"the sampling rate {fs:.4g} Hz is too low for the {p.lowpass_hz} Hz low-pass"
        )
    a_ap, a_ml = preprocess(acc, fs, p)
    metrics = sway_metrics(a_ap, a_ml, fs, p)
    q = quality(time_s, acc, gyr, p, metrics=metrics, input_flags=input_flags)
    return SwayResult(metrics, q, fs, p, condition=cond)


class LiveSway:
    """Sway over a sliding window (10 s, updated every 1 s by default), fed in chunks.

    Each result is exactly the metrics of ``analyze_trial`` on the window's samples, so
    chunking the input in any way gives the same sequence of results (streaming equals
    batch). Quality flags belong to whole trials and are not computed per window."""

    def __init__(
        self,
        fs_hz: float,
        params: SwayParams | None = None,
        window_s: float = 10.0,
        hop_s: float = 1.0,
    ) -> None:
        self.fs_hz = fs_hz
        self.params = params or SwayParams()
        self.window = round(window_s * fs_hz)
        self.hop = round(hop_s * fs_hz)
        self._t = np.empty(0)
        self._acc = np.empty((0, 3))
        self._seen = 0  # samples seen
        self._next_end = self.window  # sample count at which the next window closes

    def update(self, time_s: Array, acc: Array, gyr: Array) -> list[tuple[float, dict[str, float]]]:
        """Feed a chunk; returns (window end time, metrics) for every window it completed."""
        out = []
        self._t = np.concatenate([self._t, time_s])
        self._acc = np.concatenate([self._acc, acc])
        self._seen += len(time_s)
        while self._seen >= self._next_end:
            offset = self._seen - len(self._t)  # the buffer holds samples [offset, seen)
            lo, hi = self._next_end - self.window - offset, self._next_end - offset
            t = self._t[lo:hi]
            fs = 1.0 / float(np.median(np.diff(t)))
            a_ap, a_ml = preprocess(self._acc[lo:hi], fs, self.params)
            out.append((float(t[-1]), sway_metrics(a_ap, a_ml, fs, self.params)))
            self._next_end += self.hop
        # keep only what the next window needs
        drop = (self._next_end - self.window) - (self._seen - len(self._t))
        if drop > 0:
            self._t, self._acc = self._t[drop:], self._acc[drop:]
        return out

    # --- state as plain data (the analysis contract's get_state/set_state) ---

    def get_state(self) -> dict[str, Any]:
        return {
            "fs_hz": self.fs_hz,
            "window": self.window,
            "hop": self.hop,
            "t": self._t.copy(),
            "acc": self._acc.copy(),
            "seen": self._seen,
            "next_end": self._next_end,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.fs_hz = float(state["fs_hz"])
        self.window, self.hop = int(state["window"]), int(state["hop"])
        self._t = np.asarray(state["t"], dtype=np.float64).reshape(-1)
        self._acc = np.asarray(state["acc"], dtype=np.float64).reshape(-1, 3)
        self._seen, self._next_end = int(state["seen"]), int(state["next_end"])


@dataclass(frozen=True)
class SwayLiveParams:
    """Parameters of the live sway score: the sway method, the window and its hop, and how
    many first samples fix the sampling rate (their median interval)."""

    sway: SwayParams = field(default_factory=SwayParams)
    window_s: float = 10.0
    hop_s: float = 1.0
    rate_from_samples: int = 64


class SwayScore:
    """Live sway in the analysis contract (``analysis.contract``): fed ``{"trunk": ImuChunk}``
    chunks, it returns one ``sway_live`` record per completed window, its fields named with
    their units (``rms_m_s2`` ...), ``window_s`` and the quality flag ``not_computed`` when
    a metric has no value. The sampling rate is the median interval of the first
    ``rate_from_samples`` samples, so any chunking gives the same records."""

    roles: ClassVar[tuple[str, ...]] = ("trunk",)

    def __init__(self, params: SwayLiveParams | None = None) -> None:
        self.params = params or SwayLiveParams()
        self._live: LiveSway | None = None
        self._pending_t = np.empty(0)
        self._pending_acc = np.empty((0, 3))

    def _records(self, windows: list[tuple[float, dict[str, float]]]) -> list[Record]:
        out = []
        for t_end, metrics in windows:
            fields: dict[str, FieldValue] = {
                SWAY_METRIC_FIELDS[k]: (v if math.isfinite(v) else None) for k, v in metrics.items()
            }
            fields["window_s"] = self.params.window_s
            flags = ("not_computed",) if any(not math.isfinite(v) for v in metrics.values()) else ()
            out.append(Record("sway_live", t_end, fields, ALGORITHM_VERSION, flags))
        return out

    def update(self, chunk: Mapping[str, ImuChunk]) -> list[Record]:
        c = chunk["trunk"]
        if self._live is None:
            self._pending_t = np.concatenate([self._pending_t, c.time_s])
            self._pending_acc = np.concatenate([self._pending_acc, c.acc])
            if len(self._pending_t) < self.params.rate_from_samples:
                return []
            first = self._pending_t[: self.params.rate_from_samples]
            fs = 1.0 / round(float(np.median(np.diff(first))), 12)
            p = self.params
            self._live = LiveSway(fs, p.sway, p.window_s, p.hop_s)
            t, acc = self._pending_t, self._pending_acc
            self._pending_t, self._pending_acc = np.empty(0), np.empty((0, 3))
            return self._records(self._live.update(t, acc, np.zeros_like(acc)))
        return self._records(self._live.update(c.time_s, c.acc, np.zeros_like(c.acc)))

    def finish(self) -> list[Record]:
        return []  # a window that never filled is not scored

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = pack(
            {
                "live": None if self._live is None else self._live.get_state(),
                "pending_t": self._pending_t,
                "pending_acc": self._pending_acc,
            }
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        s = unpack(state)
        self._pending_t = np.asarray(s["pending_t"], dtype=np.float64).reshape(-1)
        self._pending_acc = np.asarray(s["pending_acc"], dtype=np.float64).reshape(-1, 3)
        if s["live"] is None:
            self._live = None
        else:
            p = self.params
            self._live = LiveSway(float(s["live"]["fs_hz"]), p.sway, p.window_s, p.hop_s)
            self._live.set_state(s["live"])


def _sway_factory(overrides: Mapping[str, Any]) -> SwayScore:
    sway_keys = set(SwayParams.__dataclass_fields__)
    sp = SwayParams(**{k: v for k, v in overrides.items() if k in sway_keys})
    # the sampling rate comes from the samples' own times, so an fs_hz override is moot
    rest = {k: v for k, v in overrides.items() if k not in sway_keys and k != "fs_hz"}
    return SwayScore(SwayLiveParams(sway=sp, **rest))


def _register() -> None:
    if "sway" not in REGISTRY:
        register(
            ScoreSpec(
                name="sway",
                factory=_sway_factory,
                roles=SwayScore.roles,
                measurement="sway_live",
                applies_to=("quiet_stance", "steadi_4stage/"),
                needs_gyr=False,
            )
        )


_register()
