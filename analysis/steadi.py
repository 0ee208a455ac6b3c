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

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import integrate, signal

from analysis.orientation import Orientation, quat_to_matrix
from analysis.plausibility import require_plausible
from analysis.sway import LossOfBalanceParams, SwayParams, analyze_trial, loss_of_balance
from poise.core.channels import G

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "steadi-1.1"
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


def check_stages(stages: list[Stage]) -> None:
    """The stages as the test is run: each named once, in the test's order, starting with
    feet together, none skipped, each after the previous one ends."""
    if not stages:
        raise ValueError("no stages given: the 4-stage test starts with feet_together")
    for st in stages:
        if st.name not in FOUR_STAGES:
            raise ValueError(f"stage {st.name!r} is not one of {', '.join(FOUR_STAGES)}")
        if not st.end_s > st.start_s:
            raise ValueError(f"stage {st.name}: its end ({st.end_s:g} s) is not after its start")
    names = [st.name for st in stages]
    for name in set(names):
        if names.count(name) > 1:
            raise ValueError(f"stage {name} is given {names.count(name)} times; once each")
    expected = list(FOUR_STAGES[: len(names)])
    if names != expected:
        raise ValueError(
            f"stages out of order: the test runs {', '.join(FOUR_STAGES)} and stops at the "
            f"first failure; given {', '.join(names)}"
        )
    for a, b in itertools.pairwise(stages):
        if b.start_s < a.end_s - 1e-9:
            raise ValueError(f"stage {b.name} starts before {a.name} ends")


def score_stage(
    time_s: Array,
    acc: Array,
    gyr: Array | None,
    stage: Stage,
    params: FourStageParams | None = None,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """One stance of the test on its own: hold time, pass (held ``hold_s``), the first loss
    of balance and the sway over the held part, with the stance as its condition. The
    worker scores each stage trial with this; ``four_stage`` adds the test's verdict."""
    p = params or FourStageParams()
    if check:
        require_plausible(time_s, acc, gyr, needs_gyr=False)
    if stage.name not in FOUR_STAGES:
        raise ValueError(f"stage {stage.name!r} is not one of {', '.join(FOUR_STAGES)}")
    sel = (time_s >= stage.start_s) & (time_s < stage.end_s)
    t, a = time_s[sel], acc[sel]
    g = None if gyr is None else gyr[sel]
    if len(t) < 10:
        raise ValueError(
            f"stage {stage.name}: no data between {stage.start_s:g} and {stage.end_s:g} s"
        )
    lob = loss_of_balance(t, a, g, p.sway.ap_axis, p.loss_of_balance)
    end = (
        min(stage.end_s, lob) if lob is not None else min(stage.end_s, float(t[-1]) + (t[1] - t[0]))
    )
    hold = end - stage.start_s
    held = t < end
    sway = None
    sway_quality = None
    if held.sum() > max(30, 3 * (2 * p.sway.filter_order + 1)):
        res = analyze_trial(
            t[held],
            a[held],
            None if g is None else g[held],
            p.sway,
            condition={"stance": stage.name},
            check=False,
        )
        sway = res.metrics
        sway_quality = res.quality.as_dict()
    return {
        "stage": stage.name,
        "attempted": True,
        "hold_s": round(hold, 3),
        "passed": hold >= p.hold_s - 1e-9,
        "loss_of_balance_s": None if lob is None else round(lob - stage.start_s, 3),
        "sway": sway,
        "sway_quality": sway_quality,
        "condition": {"stance": stage.name},
    }


def four_stage(
    time_s: Array,
    acc: Array,
    gyr: Array | None,
    stages: list[Stage],
    params: FourStageParams | None = None,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """Hold time, pass/fail and sway per stage, and the tandem verdict.

    Several stages are one run of the test: they must come in the test's order from feet
    together, each once, and reach the tandem stance or a failure before it; otherwise
    ``ValueError`` (a test not run as the test is gets no verdict). A single stage is scored
    alone (as the worker scores one stage trial): its verdict is known only when it is the
    tandem stance, or an easier stance that failed; else ``tandem_under_10s`` is None."""
    p = params or FourStageParams()
    if check:
        require_plausible(time_s, acc, gyr, needs_gyr=False)
    if len(stages) == 1:
        st = stages[0]
        if not st.end_s > st.start_s:
            raise ValueError(f"stage {st.name}: its end ({st.end_s:g} s) is not after its start")
        r = score_stage(time_s, acc, gyr, st, p, check=False)
        if st.name == "tandem":
            verdict: bool | None = not r["passed"]
        elif FOUR_STAGES.index(st.name) < FOUR_STAGES.index("tandem") and not r["passed"]:
            verdict = True
        else:
            verdict = None
        return {
            "test": "steadi_4stage",
            "stages": [r],
            "flags": {"tandem_under_10s": verdict},
            "algorithm_version": ALGORITHM_VERSION,
            "params": asdict(p),
        }
    check_stages(stages)
    results: list[dict[str, Any]] = []
    failed = False
    for st in stages:
        if failed:
            results.append({"stage": st.name, "attempted": False})
            continue
        results.append(score_stage(time_s, acc, gyr, st, p, check=False))
        failed = not results[-1]["passed"]
    names = [r["stage"] for r in results]
    tandem_at = FOUR_STAGES.index("tandem")
    if "tandem" not in names and not failed:
        raise ValueError(
            "the test stopped before the tandem stance without a failed stage: no verdict "
            "(give the tandem stage, or the stage that failed)"
        )
    tandem = next((r for r in results if r["stage"] == "tandem"), None)
    # the tandem stance not held 10 s: held shorter, or not reached because an easier
    # stance failed first
    if tandem is not None and tandem["attempted"]:
        tandem_short = float(tandem["hold_s"]) < p.hold_s - 1e-9
    else:
        tandem_short = any(not r["passed"] for r in results[:tandem_at] if r.get("attempted"))
    return {
        "test": "steadi_4stage",
        "stages": results,
        "flags": {"tandem_under_10s": bool(tandem_short)},
        "algorithm_version": ALGORITHM_VERSION,
        "params": asdict(p),
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
    acc_dev_m_s2: Array  # | |a| - g |, low-passed: the trunk accelerating


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
    dev = np.abs(signal.sosfiltfilt(lp, anorm - G, padlen=pad))
    return TrunkMotion(time_s, vel, z, yaw, gn, rest, dev)


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
    halfway: float = 0.5  # a rise under way at the end counts when past this share of a stand
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
    check: bool = True,
) -> dict[str, Any]:
    """Full stands reached within ``test_s`` of ``start_s`` (on ``time_s``; default: the
    recording's start). As the CDC instructions say, a stand under way at the end of the 30 s
    counts when the patient is more than halfway up: the trunk is rising towards a full stand
    reached after the end, and its height at the end is past ``halfway`` of that rise."""
    p = params or ChairStandParams()
    if check:
        require_plausible(time_s, acc, gyr)
    t0 = float(time_s[0]) if start_s is None else start_s
    # the test may start a little before the first sample (a trial event, then the data)
    if not time_s[0] - p.test_s < t0 < time_s[-1]:
        raise ValueError(
            f"the start time {t0 - float(time_s[0]):.4g} s is outside the recording "
            f"(0-{float(time_s[-1] - time_s[0]):.4g} s)"
        )
    t_end = t0 + p.test_s
    motion = trunk_motion(time_s, acc, gyr, p.vertical)
    peaks, rises = stand_peaks(motion, p.rise)
    z = motion.vertical_position_m
    within = [int(i) for i in peaks if t0 <= time_s[i] <= t_end]
    times = [float(time_s[i]) - t0 for i in within]
    halfway = False
    after = [int(i) for i in peaks if time_s[i] > t_end]
    i_end = int(np.searchsorted(time_s, t_end))
    if after and i_end < len(time_s):
        nxt = after[0]
        prev = within[-1] if within else int(np.searchsorted(time_s, t0))
        seat = prev + int(np.argmin(z[prev : nxt + 1]))  # the sit between the two stands
        if time_s[seat] < t_end:
            share = float((z[i_end] - z[seat]) / (z[nxt] - z[seat]))
            halfway = share > p.halfway
    short = bool(time_s[-1] < t_end - 1e-9)
    flags: dict[str, bool | None] = {"recording_shorter_than_test": short}
    out: dict[str, Any] = {
        "test": "chair_stand_30s",
        "stands": len(times) + int(halfway),
        "stand_times_s": [round(t, 2) for t in times],
        "halfway_stand_at_end": halfway,
        "start_s": round(t0 - float(time_s[0]), 3),
        "rises_m": [round(float(r), 3) for r in rises],
        "algorithm_version": ALGORITHM_VERSION,
        "params": asdict(p),
    }
    if age_years is not None and sex is not None:
        norm = chair_stand_norm(age_years, sex)
        out["norm_below"] = norm
        if norm is None or out["stands"] >= norm:
            flags["below_norm"] = False
        else:  # a recording that ends early may have missed stands: no verdict
            flags["below_norm"] = None if short else True
    out["flags"] = flags
    return out


# --- Timed Up and Go ---


@dataclass(frozen=True)
class TugParams:
    turn_rate_rad_s: float = 0.6  # a turn: yaw rate above this ...
    min_turn_rad: float = np.pi / 2  # ... turning at least this far in all
    turn_edge_fraction: float = 0.1  # first guess of its edges: rate at this share of its peak
    rise: RiseParams = field(default_factory=RiseParams)
    vertical: VerticalParams = field(default_factory=VerticalParams)


def _segments(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    return [
        (int(a), int(b))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True)
    ]


def _min_jerk(x: Array) -> Array:
    s = np.clip(x, 0.0, 1.0)
    out: Array = 10 * s**3 - 15 * s**4 + 6 * s**5
    return out


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    angle_rad: float  # signed: positive counter-clockwise seen from above


def fit_turn(time_s: Array, heading_rad: Array, start_s: float, end_s: float) -> Turn:
    """A turn as a minimum-jerk change of heading (the shape of heading changes in
    goal-directed walking, Pham et al. 2007, Eur J Neurosci 26:2391), fitted by least
    squares to the heading over the window given, with a linear trend for gyro bias and
    the walk's own heading drift. The turn's start and end are the model's: the slow tails
    of a real turn, which no threshold on the rate finds, are where the model puts them."""
    from scipy import optimize

    tc = 0.5 * (start_s + end_s)

    def residual(x: Array) -> Array:
        t0, dur = float(x[0]), max(float(x[1]), 0.05)
        basis = np.column_stack([np.ones_like(time_s), time_s - tc, _min_jerk((time_s - t0) / dur)])
        coef, *_ = np.linalg.lstsq(basis, heading_rad, rcond=None)
        r: Array = basis @ coef - heading_rad
        return r

    span = end_s - start_s
    sol = optimize.least_squares(
        residual,
        x0=np.array([start_s - 0.12 * span, span * 1.25]),
        bounds=([time_s[0] - span, 0.1 * span], [end_s, 4.0 * span + 1.0]),
        x_scale=np.array([0.2, 0.2]),
    )
    t0, dur = float(sol.x[0]), float(sol.x[1])
    basis = np.column_stack([np.ones_like(time_s), time_s - tc, _min_jerk((time_s - t0) / dur)])
    coef, *_ = np.linalg.lstsq(basis, heading_rad, rcond=None)
    return Turn(t0, t0 + dur, float(coef[2]))


def find_turns(
    time_s: Array,
    yaw_rate_rad_s: Array,
    params: TugParams | None = None,
    lo: int = 0,
    hi: int | None = None,
) -> list[Turn]:
    """Turns within samples [lo, hi]: a yaw rate above ``turn_rate_rad_s`` turning at least
    ``min_turn_rad`` in all, its edges first guessed where the rate falls to
    ``turn_edge_fraction`` of its peak, then fitted as a minimum-jerk heading change."""
    p = params or TugParams()
    t = time_s
    hi = len(t) - 1 if hi is None else hi
    rate = np.abs(yaw_rate_rad_s)
    heading = integrate.cumulative_trapezoid(yaw_rate_rad_s, time_s, initial=0.0)
    guesses: list[tuple[int, int]] = []
    inside = np.zeros(len(t), bool)
    inside[lo : hi + 1] = True
    for seg_a, seg_b in _segments((rate > p.turn_rate_rad_s) & inside):
        low = p.turn_edge_fraction * float(rate[seg_a:seg_b].max())
        a, b = seg_a, seg_b
        while a > 0 and rate[a - 1] > low:
            a -= 1
        while b < len(rate) and rate[b] > low:
            b += 1
        angle = abs(float(heading[min(b, len(t) - 1)] - heading[a]))
        if angle >= p.min_turn_rad and not (guesses and a <= guesses[-1][1]):
            guesses.append((a, b))
    turns: list[Turn] = []
    for i, (a, b) in enumerate(guesses):
        # fit over the turn and as long again either side, short of the neighbouring turns
        span = b - a
        f_lo = max(lo, a - span, guesses[i - 1][1] if i else 0)
        f_hi = min(hi + 1, b + span, guesses[i + 1][0] if i + 1 < len(guesses) else len(t))
        turn = fit_turn(t[f_lo:f_hi], heading[f_lo:f_hi], float(t[a]), float(t[min(b, len(t) - 1)]))
        turns.append(Turn(max(turn.start_s, float(t[f_lo])), turn.end_s, turn.angle_rad))
    return turns


def tug(
    time_s: Array,
    acc: Array,
    gyr: Array,
    params: TugParams | None = None,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """Timed Up and Go from rise onset to seated again, its phases and turns. With ``check``
    the recording must first pass ``analysis.plausibility``."""
    p = params or TugParams()
    if check:
        require_plausible(time_s, acc, gyr)
    m = trunk_motion(time_s, acc, gyr, p.vertical)
    # A TUG starts and ends seated at rest: the rise begins where the first rest ends and
    # the test is over where the last rest begins.
    rests = _segments(m.rest)
    onset = int(rests[0][1]) if rests and rests[0][0] == 0 else 0
    end = int(rests[-1][0]) if rests and rests[-1][1] == len(time_s) else len(time_s) - 1
    if end <= onset:
        raise ValueError("no movement between the seated rests: is this a Timed Up and Go?")
    # The rest test looks at a window, so its edges lag the movement by up to a window:
    # refine them to where the trunk's rotation or acceleration crosses the rest thresholds.
    fs = 1.0 / float(np.median(np.diff(time_s)))
    w = round(p.vertical.rest_window_s * fs)
    moving = (m.gyr_norm_rad_s > p.vertical.rest_gyr_rad_s) | (
        m.acc_dev_m_s2 > p.vertical.rest_acc_m_s2
    )
    lo, hi = max(onset - w // 2, 0), min(onset + w, len(time_s))
    if moving[lo:hi].any():
        onset = lo + int(np.argmax(moving[lo:hi]))
    lo, hi = max(end - w, 0), min(end + w // 2, len(time_s))
    if moving[lo:hi].any():
        end = lo + int(np.flatnonzero(moving[lo:hi])[-1]) + 1
    end = min(end, len(time_s) - 1)
    v = m.vertical_velocity_m_s
    t = time_s
    turns = find_turns(t, m.yaw_rate_rad_s, p, onset, end)
    duration = float(t[end] - t[onset])
    out: dict[str, Any] = {
        "test": "tug",
        "duration_s": round(duration, 2),
        "onset_s": round(float(t[onset] - t[0]), 2),
        "end_s": round(float(t[end] - t[0]), 2),
        "flags": {"tug_12s_or_more": duration >= TUG_FLAG_S, "turns_not_found": len(turns) < 2},
        "algorithm_version": ALGORITHM_VERSION,
        "params": asdict(p),
    }
    # rise complete: the upward velocity of the first rise has died down
    up = onset + int(np.argmax(v[onset:end] > 0.2))
    risen = up + int(np.argmax(v[up:end] < 0.05))
    if len(turns) >= 2:
        first, last = turns[0], turns[-1]
        out["phases_s"] = {
            "sit_to_stand": round(float(t[risen] - t[onset]), 2),
            "walk_out": round(first.start_s - float(t[risen]), 2),
            "turn": round(first.end_s - first.start_s, 2),
            "walk_back": round(last.start_s - first.end_s, 2),
            "turn_to_sit": round(float(t[end]) - last.start_s, 2),
        }
        out["turn_angles_deg"] = [
            round(abs(math.degrees(first.angle_rad)), 1),
            round(abs(math.degrees(last.angle_rad)), 1),
        ]
    else:
        out["phases_s"] = None
        out["turn_angles_deg"] = None
        out["not_computed"] = ["phases_s", "turn_angles_deg"]
    return out
