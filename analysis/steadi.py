"""The CDC STEADI tests, instrumented with one lower-back (L5) sensor.

- 4-Stage Balance Test: feet together, semi-tandem, tandem, single leg, each held 10 s; the
  test stops at the first failed stage. Hold time per stage runs from the stage's start
  (a trial event) to its end or to a loss of balance detected in the signal, whichever is
  first. Flag: tandem stance held < 10 s.
- 30-Second Chair Stand: full stands counted from the trunk's vertical motion; compared with
  the age/sex norms (CDC STEADI, after Rikli & Jones).
- Timed Up and Go: rise onset to seated again, and its phases (after Salarian et al. 2010,
  IEEE TNSRE 18:303). Flag: >= 12 s.

Vertical motion comes from VQF orientation (earth-frame acceleration), integrated twice with
a gentle high-pass against drift. Pure: arrays in, results out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import integrate, signal

from analysis.orientation import Orientation, quat_to_matrix
from analysis.sway import LossOfBalanceParams, SwayParams, analyze_trial, loss_of_balance
from poise.core.channels import G

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "steadi-1.0"
FOUR_STAGES = ("feet_together", "semi_tandem", "tandem", "single_leg")

# 30-Second Chair Stand: below-average scores are below these (CDC STEADI, Rikli & Jones).
# (age from, age to inclusive) -> (men, women)
CHAIR_STAND_NORMS: dict[tuple[int, int], tuple[int, int]] = {
    (60, 64): (14, 12),
    (65, 69): (12, 11),
    (70, 74): (12, 10),
    (75, 79): (11, 10),
    (80, 84): (10, 9),
    (85, 89): (8, 8),
    (90, 94): (7, 4),
}
TUG_FLAG_S = 12.0


def chair_stand_norm(age_years: int, sex: str) -> int | None:
    """The score below which a 30 s chair stand is below average; None outside 60-94."""
    if sex not in ("male", "female"):
        raise ValueError(f"sex must be 'male' or 'female' for the norm table, not {sex!r}")
    for (lo, hi), (men, women) in CHAIR_STAND_NORMS.items():
        if lo <= age_years <= hi:
            return men if sex == "male" else women
    return None


# --- 4-Stage Balance Test ---


@dataclass(frozen=True)
class Stage:
    name: str  # one of FOUR_STAGES
    start_s: float  # on the recording's time axis
    end_s: float


@dataclass(frozen=True)
class FourStageParams:
    hold_s: float = 10.0
    sway: SwayParams = field(default_factory=SwayParams)
    loss_of_balance: LossOfBalanceParams = field(default_factory=LossOfBalanceParams)


def four_stage(
    time_s: Array,
    acc: Array,
    gyr: Array,
    stages: list[Stage],
    params: FourStageParams | None = None,
) -> dict[str, Any]:
    p = params or FourStageParams()
    results: list[dict[str, Any]] = []
    failed = False
    for st in stages:
        if st.name not in FOUR_STAGES:
            raise ValueError(f"stage {st.name!r} is not one of {FOUR_STAGES}")
        if failed:
            results.append({"stage": st.name, "attempted": False})
            continue
        sel = (time_s >= st.start_s) & (time_s < st.end_s)
        t, a, g = time_s[sel], acc[sel], gyr[sel]
        if len(t) < 10:
            raise ValueError(f"stage {st.name}: no data between {st.start_s} and {st.end_s} s")
        lob = loss_of_balance(t, a, g, p.sway.ap_axis, p.loss_of_balance)
        end = min(st.end_s, lob) if lob is not None else min(st.end_s, float(t[-1]) + (t[1] - t[0]))
        hold = end - st.start_s
        passed = hold >= p.hold_s - 1e-9
        held = t < end
        sway = None
        if held.sum() > 30:
            res = analyze_trial(t[held], a[held], g[held], p.sway)
            sway = res.metrics
        results.append(
            {
                "stage": st.name,
                "attempted": True,
                "hold_s": round(hold, 3),
                "passed": passed,
                "loss_of_balance_s": None if lob is None else round(lob - st.start_s, 3),
                "sway": sway,
            }
        )
        failed = not passed
    tandem = next((r for r in results if r["stage"] == "tandem"), None)
    tandem_short = (
        tandem is None or not tandem.get("attempted") or float(tandem["hold_s"]) < p.hold_s
    )
    return {
        "test": "steadi_4stage",
        "stages": results,
        "flags": {"tandem_under_10s": bool(tandem_short)},
        "algorithm_version": ALGORITHM_VERSION,
    }


# --- vertical trunk motion, shared by the chair stand and TUG ---


@dataclass(frozen=True)
class VerticalParams:
    """Vertical trunk motion by double integration with zero-velocity updates: whenever the
    trunk is at rest (seated, or standing still) its velocity is zero, so the integration
    restarts there and the drift of each movement is removed linearly between rests."""

    smooth_hz: float = 3.0
    rest_window_s: float = 0.4  # rest: over this window, ...
    rest_gyr_rad_s: float = 0.1  # ... the mean angular rate is below this,
    rest_acc_std_m_s2: float = 0.08  # ... |a| barely varies (a slow rise changes it),
    rest_acc_m_s2: float = 0.3  # ... and |a| is near g


@dataclass(frozen=True)
class TrunkMotion:
    time_s: Array
    vertical_velocity_m_s: Array
    vertical_position_m: Array  # relative to the start
    yaw_rate_rad_s: Array  # about earth's vertical
    gyr_norm_rad_s: Array
    rest: npt.NDArray[np.bool_]  # the trunk is still


def _moving_mean(x: Array, n: int) -> Array:
    half = n // 2
    return np.convolve(np.pad(x, (half, n - 1 - half), mode="edge"), np.ones(n) / n, mode="valid")


def trunk_motion(
    time_s: Array, acc: Array, gyr: Array, params: VerticalParams | None = None
) -> TrunkMotion:
    p = params or VerticalParams()
    fs = 1.0 / float(np.median(np.diff(time_s)))
    q = Orientation(mode="offline").update(time_s, acc, gyr)
    r = quat_to_matrix(q)  # sensor -> earth
    acc_e = np.einsum("nij,nj->ni", r, acc)
    gyr_e = np.einsum("nij,nj->ni", r, gyr)
    lp = signal.butter(2, p.smooth_hz, btype="low", fs=fs, output="sos")
    pad = min(len(time_s) - 1, round(fs))
    a_v = signal.sosfiltfilt(lp, acc_e[:, 2] - G, padlen=pad)
    gn = signal.sosfiltfilt(lp, np.linalg.norm(gyr, axis=1), padlen=pad)
    w = max(2, round(p.rest_window_s * fs))
    anorm = np.linalg.norm(acc, axis=1)
    mean_a = _moving_mean(anorm, w)
    std_a = np.sqrt(np.maximum(_moving_mean(anorm**2, w) - mean_a**2, 0.0))
    rest = (
        (_moving_mean(np.linalg.norm(gyr, axis=1), w) < p.rest_gyr_rad_s)
        & (std_a < p.rest_acc_std_m_s2)
        & (np.abs(mean_a - G) < p.rest_acc_m_s2)
    )
    v = integrate.cumulative_trapezoid(a_v, time_s, initial=0.0)
    vel = np.zeros_like(v)
    # each movement runs from the last rest sample before it to the first rest sample after
    for a, b in _segments(~rest):
        lo, hi = max(a - 1, 0), min(b, len(v) - 1)
        seg = v[lo : hi + 1] - v[lo]
        if hi > lo and (rest[hi] or hi == len(v) - 1) and rest[lo]:
            seg = seg - seg[-1] * (time_s[lo : hi + 1] - time_s[lo]) / (time_s[hi] - time_s[lo])
        vel[lo : hi + 1] = seg
    vel[rest] = 0.0
    z = integrate.cumulative_trapezoid(vel, time_s, initial=0.0)
    yaw = signal.sosfiltfilt(lp, gyr_e[:, 2], padlen=pad)
    return TrunkMotion(time_s, vel, z, yaw, gn, rest)


@dataclass(frozen=True)
class RiseParams:
    min_rise_m: float = 0.22  # a full stand lifts L5 by ~0.35-0.45 m
    relative_rise: float = 0.6  # ... and by at least this share of the trial's typical rise
    min_separation_s: float = 1.0


def stand_peaks(motion: TrunkMotion, params: RiseParams | None = None) -> tuple[Array, Array]:
    """Indices of full stands (peaks of trunk height) and every rise's height (m)."""
    p = params or RiseParams()
    fs = 1.0 / float(np.median(np.diff(motion.time_s)))
    z = motion.vertical_position_m
    peaks, _props = signal.find_peaks(
        z, prominence=p.min_rise_m * 0.5, distance=max(1, round(p.min_separation_s * fs))
    )
    # rise = peak height above the lowest point since the previous peak (the seat)
    rises = []
    prev = 0
    for pk in peaks:
        rises.append(float(z[pk] - z[prev : pk + 1].min()))
        prev = pk
    rises_a = np.array(rises)
    if not len(rises_a):
        return peaks, rises_a
    big = rises_a[rises_a >= p.min_rise_m]
    typical = float(np.median(big)) if len(big) else 0.0
    full = (rises_a >= p.min_rise_m) & (rises_a >= p.relative_rise * typical)
    return peaks[full], rises_a


@dataclass(frozen=True)
class ChairStandParams:
    test_s: float = 30.0
    rise: RiseParams = field(default_factory=RiseParams)
    vertical: VerticalParams = field(default_factory=VerticalParams)


def chair_stand(
    time_s: Array,
    acc: Array,
    gyr: Array,
    params: ChairStandParams | None = None,
    *,
    start_s: float | None = None,
    age_years: int | None = None,
    sex: str | None = None,
) -> dict[str, Any]:
    """Full stands reached within ``test_s`` of ``start_s`` (default: the recording start)."""
    p = params or ChairStandParams()
    motion = trunk_motion(time_s, acc, gyr, p.vertical)
    peaks, rises = stand_peaks(motion, p.rise)
    t0 = float(time_s[0]) if start_s is None else start_s
    times = [float(time_s[i]) - t0 for i in peaks if 0 <= time_s[i] - t0 <= p.test_s]
    out: dict[str, Any] = {
        "test": "chair_stand_30s",
        "stands": len(times),
        "stand_times_s": [round(t, 2) for t in times],
        "rises_m": [round(float(r), 3) for r in rises],
        "algorithm_version": ALGORITHM_VERSION,
        "params": asdict(p),
    }
    if age_years is not None and sex is not None:
        norm = chair_stand_norm(age_years, sex)
        out["norm_below"] = norm
        out["flags"] = {"below_norm": norm is not None and len(times) < norm}
    return out


# --- Timed Up and Go ---


@dataclass(frozen=True)
class TugParams:
    turn_rate_rad_s: float = 0.6
    min_turn_rad: float = np.pi / 2
    turn_edge_fraction: float = 0.1
    rise: RiseParams = field(default_factory=RiseParams)
    vertical: VerticalParams = field(default_factory=VerticalParams)


def _segments(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    return [
        (int(a), int(b))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True)
    ]


def tug(time_s: Array, acc: Array, gyr: Array, params: TugParams | None = None) -> dict[str, Any]:
    p = params or TugParams()
    m = trunk_motion(time_s, acc, gyr, p.vertical)
    # A TUG starts and ends seated at rest: the rise begins where the first rest ends and
    # the test is over where the last rest begins.
    rests = _segments(m.rest)
    onset = int(rests[0][1]) if rests and rests[0][0] == 0 else 0
    end = int(rests[-1][0]) if rests and rests[-1][1] == len(time_s) else len(time_s) - 1
    if end <= onset:
        raise ValueError("no movement between the seated rests: is this a Timed Up and Go?")
    # The rest test looks at a centred window, so its edges sit up to half a window off the
    # movement: refine them to where the trunk's rotation crosses the rest threshold.
    fs = 1.0 / float(np.median(np.diff(time_s)))
    half = round(p.vertical.rest_window_s * fs / 2)
    moving = m.gyr_norm_rad_s > p.vertical.rest_gyr_rad_s
    lo, hi = max(onset - half, 0), min(onset + half, len(time_s))
    if moving[lo:hi].any():
        onset = lo + int(np.argmax(moving[lo:hi]))
    lo, hi = max(end - half, 0), min(end + half, len(time_s))
    if moving[lo:hi].any():
        end = lo + int(np.flatnonzero(moving[lo:hi])[-1]) + 1
    v = m.vertical_velocity_m_s
    # turns: sustained yaw rate, at least min_turn_rad in all
    turns: list[tuple[int, int, float]] = []
    rate = np.abs(m.yaw_rate_rad_s)
    for seg_a, seg_b in _segments(rate > p.turn_rate_rad_s):
        # a turn starts and ends where its rate falls below a small share of its peak
        low = p.turn_edge_fraction * float(rate[seg_a:seg_b].max())
        a, b = seg_a, seg_b
        while a > 0 and rate[a - 1] > low:
            a -= 1
        while b < len(rate) and rate[b] > low:
            b += 1
        angle = abs(float(integrate.trapezoid(m.yaw_rate_rad_s[a:b], time_s[a:b])))
        if angle >= p.min_turn_rad and not (turns and a <= turns[-1][1]):
            turns.append((a, b, angle))
    t = time_s
    duration = float(t[end] - t[onset])
    out: dict[str, Any] = {
        "test": "tug",
        "duration_s": round(duration, 2),
        "onset_s": round(float(t[onset] - t[0]), 2),
        "end_s": round(float(t[end] - t[0]), 2),
        "flags": {"tug_12s_or_more": duration >= TUG_FLAG_S},
        "algorithm_version": ALGORITHM_VERSION,
    }
    # rise complete: the upward velocity of the first rise has died down
    up = onset + int(np.argmax(v[onset:end] > 0.2))
    risen = up + int(np.argmax(v[up:end] < 0.05))
    if len(turns) >= 2:
        (t1a, t1b, a1), (t2a, _t2b, a2) = turns[0], turns[-1]
        out["phases_s"] = {
            "sit_to_stand": round(float(t[risen] - t[onset]), 2),
            "walk_out": round(float(t[t1a] - t[risen]), 2),
            "turn": round(float(t[t1b] - t[t1a]), 2),
            "walk_back": round(float(t[t2a] - t[t1b]), 2),
            "turn_to_sit": round(float(t[end] - t[t2a]), 2),
        }
        out["turn_angles_deg"] = [round(float(np.degrees(a1)), 1), round(float(np.degrees(a2)), 1)]
    return out
