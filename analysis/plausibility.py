"""Plausibility of an IMU recording before any analysis: units and signal sanity.

A recording in the wrong units does not fail an analysis, it gives confident wrong numbers
(a gyroscope in deg/s makes every angle 57× too large; acceleration in g shrinks every sway
measure ~9.8×). So every analysis first asks ``check_imu`` whether the data can be what
poise expects (time in s, acceleration in m/s², angular rate in rad/s) and refuses, naming
the likely cause, when it cannot.

Checks (``PlausibilityParams`` holds every limit):

- finite values only;
- time: the median sample interval gives a rate within ``rate_hz`` (a file in ms, µs or ns
  shows as a rate 10³, 10⁶, 10⁹ times too low);
- acceleration: the median of |a| is gravity (about 9.81 m/s²) whatever the motion, since
  the sensor spends most of any clinical test near rest; near 1 it is in g, near 1000 in mg,
  near a power of two times 256 in raw counts; no sample beyond any IMU's full scale;
- angular rate: the gravity direction seen by the accelerometer turns as the gyroscope
  says, ``du/dt = u × ω`` for the unit gravity vector u in the sensor frame. A least-squares
  fit of that scale is 1 for rad/s and π/180 ≈ 0.0175 for deg/s. When the recording holds
  too little tilting for the fit, the range decides: no IMU reports more than ~35 rad/s
  (2000 °/s full scale), which deg/s values exceed in any brisk movement;
- constant signals: a channel that never changes is a stuck or absent sensor.

Pure: arrays in, a report out. ``require_plausible`` raises ``ImplausibleInputError`` with every
problem found, for callers (the CLI, the worker) that refuse on the first look.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from poise.core.channels import UNIT_TO_SI, G

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "plausibility-1.0"

ACC_UNITS = ("m/s2", "g", "mg")
GYR_UNITS = ("rad/s", "deg/s", "mdeg/s")
TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
RAW_COUNTS_PER_G = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class ImplausibleInputError(ValueError):
    """The recording cannot be in poise's units, or holds no usable signal."""

    def __init__(self, report: PlausibilityReport) -> None:
        super().__init__(report.message())
        self.report = report


@dataclass(frozen=True)
class PlausibilityParams:
    rate_hz: tuple[float, float] = (10.0, 2000.0)  # plausible sampling rates
    gravity_m_s2: tuple[float, float] = (7.5, 12.5)  # plausible median |a|
    max_acc_m_s2: float = 2000.0  # ~200 g: beyond any IMU's full scale
    max_gyr_rad_s: float = 70.0  # ~4000 °/s: beyond any IMU's full scale
    deg_s_range_rad_s: float = 35.0  # 2000 °/s: a rad/s IMU never reports more
    fit_lowpass_hz: float = 2.0  # the gravity-direction fit uses slow motion only
    fit_quasi_static_m_s2: float = 1.5  # ... and samples with | |a| - g | below this
    fit_min_correlation: float = 0.6  # below: too little tilting to judge the scale
    fit_scale_ok: tuple[float, float] = (0.5, 2.0)  # accepted gyro scale (1 = rad/s) ...
    fit_wide_tilt_deg: float = 15.0  # ... when the gravity direction swings this far; less
    fit_scale_ok_small_tilt: tuple[float, float] = (0.25, 4.0)  # (sway): a wider band, as the
    # trunk's own acceleration, in phase with its tilt, biases the fit (an inverted pendulum
    # at L5 reads ~2.5 × in quiet standing)


@dataclass(frozen=True)
class Finding:
    code: str  # machine-readable: "gyr_unit_deg_s", "acc_unit_g", "time_unit_ms", ...
    message: str
    channel: str = ""  # "time", "acc" or "gyr": the override that would fix it
    likely_unit: str = ""  # the unit the values look like, when one fits


@dataclass(frozen=True)
class PlausibilityReport:
    sampling_rate_hz: float
    acc_median_norm_m_s2: float
    gyr_scale: float | None  # fitted gyro scale (1 = rad/s), None when not measurable
    gyr_scale_correlation: float | None
    gyr_fit_tilt_range_deg: float | None = None
    problems: tuple[Finding, ...] = ()  # any of these: refuse to analyse
    flags: tuple[str, ...] = ()  # analysable, with a caveat (e.g. "no_gyroscope")
    algorithm_version: str = ALGORITHM_VERSION

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        return "; ".join(f.message for f in self.problems)


@dataclass(frozen=True)
class Units:
    """The units a recording is in; ``to_si`` converts it to poise's."""

    time: str = "s"
    acc: str = "m/s2"
    gyr: str = "rad/s"

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.time, tuple(TIME_UNITS), "time"),
            (self.acc, ACC_UNITS, "acceleration"),
            (self.gyr, GYR_UNITS, "angular rate"),
        ):
            if value not in allowed:
                raise ValueError(
                    f"{what} unit must be one of {', '.join(allowed)}; found {value!r}"
                )

    def to_si(
        self, time_s: Array, acc: Array, gyr: Array | None
    ) -> tuple[Array, Array, Array | None]:
        t = time_s * TIME_UNITS[self.time] if self.time != "s" else time_s
        a = acc * UNIT_TO_SI[self.acc] if self.acc != "m/s2" else acc
        g = gyr * UNIT_TO_SI[self.gyr] if gyr is not None and self.gyr != "rad/s" else gyr
        return t, a, g


def _fmt(x: float) -> str:
    """A number as a person writes it (never np.float64(...))."""
    return f"{float(x):.4g}"


def _time_findings(time_s: Array, p: PlausibilityParams) -> tuple[float, list[Finding]]:
    dt = np.diff(time_s)
    if len(dt) == 0:
        return math.nan, [Finding("too_few_samples", "one sample is not a recording", "time")]
    if not np.all(dt > 0):
        i = int(np.flatnonzero(dt <= 0)[0])
        return math.nan, [
            Finding(
                "time_not_increasing",
                f"time does not increase at sample {i + 2} ({_fmt(time_s[i + 1])} after "
                f"{_fmt(time_s[i])})",
                "time",
            )
        ]
    fs = 1.0 / float(np.median(dt))
    lo, hi = p.rate_hz
    if lo <= fs <= hi:
        return fs, []
    for unit, factor in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if lo <= fs / factor <= hi:
            return fs, [
                Finding(
                    f"time_unit_{unit}",
                    f"time values look like {unit}; poise expects seconds (the sampling rate "
                    f"would be {_fmt(fs)} Hz in seconds, {_fmt(fs / factor)} Hz in {unit})",
                    "time",
                    unit,
                )
            ]
    return fs, [
        Finding(
            "sampling_rate",
            f"the sampling rate from the timestamps is {_fmt(fs)} Hz, outside the plausible "
            f"{_fmt(lo)}-{_fmt(hi)} Hz",
            "time",
        )
    ]


def _acc_findings(acc: Array, p: PlausibilityParams) -> tuple[float, list[Finding]]:
    norm = np.linalg.norm(acc, axis=1)
    med = float(np.median(norm))
    if np.all(np.ptp(acc, axis=0) == 0):
        return med, [
            Finding(
                "acc_constant",
                "the accelerometer never changes (stuck sensor, or a column filled in)",
                "acc",
            )
        ]
    lo, hi = p.gravity_m_s2
    if lo <= med <= hi:
        peak = float(norm.max())
        if peak > p.max_acc_m_s2:
            return med, [
                Finding(
                    "acc_out_of_range",
                    f"an acceleration of {_fmt(peak)} m/s² is beyond any IMU's range",
                    "acc",
                )
            ]
        return med, []
    for unit in ("g", "mg"):
        if lo <= med * UNIT_TO_SI[unit] <= hi:
            return med, [
                Finding(
                    f"acc_unit_{unit}",
                    f"accelerometer values look like {unit}; poise expects m/s² (median |a| "
                    f"{_fmt(med)}, and gravity is {_fmt(G / UNIT_TO_SI[unit])} {unit})",
                    "acc",
                    unit,
                )
            ]
    for counts in RAW_COUNTS_PER_G:
        if abs(med / counts - 1.0) < 0.2:
            return med, [
                Finding(
                    "acc_raw_counts",
                    f"accelerometer values look like raw sensor counts; poise expects m/s² "
                    f"(median |a| {_fmt(med)}, about {counts} per g: the device profile's "
                    "scale factor is missing or wrong)",
                    "acc",
                )
            ]
    return med, [
        Finding(
            "acc_not_gravity",
            f"the median acceleration magnitude is {_fmt(med)} where gravity is {_fmt(G)} m/s²: "
            "wrong unit or scale factor",
            "acc",
        )
    ]


@functools.lru_cache(maxsize=16)
def _lowpass_sos(cutoff_hz: float, fs_hz: float) -> Array:
    from scipy import signal

    sos: Array = signal.butter(2, cutoff_hz, btype="low", fs=fs_hz, output="sos")
    return sos


@dataclass(frozen=True)
class GyroFit:
    scale: float  # k in du/dt = k · (u × ω): 1 for rad/s, π/180 for deg/s
    correlation: float
    tilt_range_deg: float  # how far the gravity direction swings over the fitted samples


def gyro_scale(
    time_s: Array, acc: Array, gyr: Array, params: PlausibilityParams | None = None
) -> GyroFit | None:
    """The factor k that best explains the accelerometer's gravity direction u turning as
    ``du/dt = k · (u × ω)`` (1 for a gyroscope in rad/s), the correlation of the fit and
    the tilt range it saw; None when too few quasi-static samples or no tilting at all."""
    from scipy import signal  # here, so that importing the checks (as the CLI does) stays light

    p = params or PlausibilityParams()
    fs = 1.0 / float(np.median(np.diff(time_s)))
    if len(time_s) < 2 * round(fs) or fs <= 2 * p.fit_lowpass_hz:
        return None
    sos = _lowpass_sos(p.fit_lowpass_hz, round(fs, 6))
    both = signal.sosfiltfilt(sos, np.hstack([acc, gyr]), axis=0)
    step = max(1, int(fs // (10 * p.fit_lowpass_hz)))  # the slow signals need ~20 Hz only
    both, time_s = both[::step], time_s[::step]
    fs /= step
    a, w = both[:, :3], both[:, 3:]
    norm = np.linalg.norm(a, axis=1)
    still = np.abs(norm - G) < p.fit_quasi_static_m_s2
    if still.sum() < fs:
        return None
    u = a / np.maximum(norm, 1e-9)[:, None]
    du = np.gradient(u, time_s, axis=0)
    pred = np.cross(u, w)
    us = u[still]
    mean_u = us.mean(axis=0)
    mean_u /= max(float(np.linalg.norm(mean_u)), 1e-12)
    tilt = float(np.degrees(np.arccos(np.clip(us @ mean_u, -1.0, 1.0))).max())
    du, pred = du[still].ravel(), pred[still].ravel()
    pp = float(pred @ pred)
    dd = float(du @ du)
    if pp <= 0 or dd <= 0:
        return None
    k = float(du @ pred) / pp
    r = float(du @ pred) / math.sqrt(pp * dd)
    return GyroFit(k, r, tilt)


def _gyr_findings(
    time_s: Array, acc: Array, gyr: Array | None, needs_gyr: bool, p: PlausibilityParams
) -> tuple[GyroFit | None, list[Finding], list[str]]:
    if gyr is None or np.all(gyr == 0) or np.all(np.ptp(gyr, axis=0) == 0):
        what = (
            "no gyroscope"
            if gyr is None
            else (
                "the gyroscope is zero throughout"
                if np.all(gyr == 0)
                else "the gyroscope never changes"
            )
        )
        if needs_gyr:
            return (
                None,
                [
                    Finding(
                        "gyr_missing",
                        f"{what} (a device without one, or a stuck sensor); this analysis "
                        "needs angular rate",
                        "gyr",
                    )
                ],
                [],
            )
        return None, [], ["no_gyroscope"]
    peak = float(np.max(np.abs(gyr)))
    fit = gyro_scale(time_s, acc, gyr, p)
    deg = UNIT_TO_SI["deg/s"]
    if fit is not None and fit.correlation >= p.fit_min_correlation:
        k, r = fit.scale, fit.correlation
        wide = fit.tilt_range_deg >= p.fit_wide_tilt_deg
        lo, hi = p.fit_scale_ok if wide else p.fit_scale_ok_small_tilt
        if lo <= k <= hi and peak <= p.max_gyr_rad_s:
            return fit, [], []
        for unit in ("deg/s", "mdeg/s"):
            if lo * UNIT_TO_SI[unit] <= k <= hi * UNIT_TO_SI[unit]:
                return (
                    fit,
                    [
                        Finding(
                            "gyr_unit_" + unit.replace("/", "_"),
                            f"gyroscope values look like {unit}; poise expects rad/s (the "
                            f"accelerometer's tilt changes match them at {_fmt(k)} × rad/s)",
                            "gyr",
                            unit,
                        )
                    ],
                    [],
                )
        if lo <= k <= hi:  # the scale fits, but some sample is beyond any sensor
            return (
                fit,
                [
                    Finding(
                        "gyr_out_of_range",
                        f"an angular rate of {_fmt(peak)} rad/s is beyond any IMU's range",
                        "gyr",
                    )
                ],
                [],
            )
        if not wide:  # too little tilting to blame the scale: judge by the range below
            fit = None
    if fit is not None and fit.correlation >= p.fit_min_correlation:
        k, r = fit.scale, fit.correlation
        return (
            fit,
            [
                Finding(
                    "gyr_scale",
                    f"the gyroscope disagrees with the accelerometer's tilt changes by a factor "
                    f"of {_fmt(k)} (correlation {r:.2f}): wrong unit or scale factor",
                    "gyr",
                )
            ],
            [],
        )
    # too little tilting to fit: judge by the range alone, and say the scale is unverified
    if peak > p.deg_s_range_rad_s:
        unit = "deg/s" if peak * deg <= p.max_gyr_rad_s else "mdeg/s"
        return (
            fit,
            [
                Finding(
                    "gyr_unit_" + unit.replace("/", "_"),
                    f"gyroscope values look like {unit}; poise expects rad/s (peak "
                    f"{_fmt(peak)}, beyond any IMU's range in rad/s)",
                    "gyr",
                    unit,
                )
            ],
            [],
        )
    return fit, [], ["gyroscope_scale_unverified"]


def check_imu(
    time_s: Array,
    acc: Array,
    gyr: Array | None = None,
    *,
    needs_gyr: bool = True,
    params: PlausibilityParams | None = None,
) -> PlausibilityReport:
    """Every plausibility check on one sensor's recording, in poise's units."""
    p = params or PlausibilityParams()
    problems: list[Finding] = []
    flags: list[str] = []
    for name, arr in (("time", time_s), ("acc", acc), ("gyr", gyr)):
        if arr is not None and not np.all(np.isfinite(arr)):
            bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
            problems.append(
                Finding(
                    "non_finite",
                    f"{name} holds NaN or infinite values ({len(bad)} samples, the first at "
                    f"sample {int(bad[0]) + 1})",
                    name,
                )
            )
    if problems:
        return PlausibilityReport(math.nan, math.nan, None, None, problems=tuple(problems))
    fs, found = _time_findings(time_s, p)
    problems += found
    med, found = _acc_findings(acc, p)
    problems += found
    fit: GyroFit | None = None
    if not problems:  # the gyro check leans on good time and acceleration
        fit, found, more = _gyr_findings(time_s, acc, gyr, needs_gyr, p)
        problems += found
        flags += more
    else:
        flags.append("gyroscope_not_checked")
    for name, arr in (("acc", acc), ("gyr", gyr)):
        if arr is None:
            continue
        spans = np.ptp(arr, axis=0)
        if np.any(spans != 0):
            flags += [
                f"{name}_{axis}_constant" for axis, w in zip("xyz", spans, strict=True) if w == 0
            ]
    return PlausibilityReport(
        sampling_rate_hz=fs,
        acc_median_norm_m_s2=med,
        gyr_scale=None if fit is None else fit.scale,
        gyr_scale_correlation=None if fit is None else fit.correlation,
        gyr_fit_tilt_range_deg=None if fit is None else fit.tilt_range_deg,
        problems=tuple(problems),
        flags=tuple(flags),
    )


def require_plausible(
    time_s: Array,
    acc: Array,
    gyr: Array | None = None,
    *,
    needs_gyr: bool = True,
    params: PlausibilityParams | None = None,
) -> PlausibilityReport:
    """``check_imu``, raising ``ImplausibleInputError`` (its ``report`` attached) on any problem."""
    report = check_imu(time_s, acc, gyr, needs_gyr=needs_gyr, params=params)
    if not report.ok:
        raise ImplausibleInputError(report)
    return report
