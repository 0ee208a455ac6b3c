"""Progress and fall-risk trend review: pure functions over a patient's per-session values.

For one patient, metric and condition (docs/metrics.md, "Trend review"):

- baseline: median of the first ``baseline_n`` sessions (3), or of the sessions marked as
  baseline; latest: median of the last ``latest_n`` sessions (3); change = latest - baseline;
- Theil-Sen slope per week (Sen 1968, via ``scipy.stats.theilslopes`` on real session
  times, so irregular schedules are handled) and a Mann-Kendall test on the time-ordered
  values (Mann 1945, Kendall 1975, via ``pymannkendall.original_test``, tie-corrected);
- real change: ``|change| > MDC95``, MDC95 = 1.96 * sqrt(2) * SEM. With at least 3 baseline
  sessions the SEM is the within-patient SD of those sessions (repeated measurements of a
  stable patient: their SD *is* the measurement error); with fewer, SEM = SD * sqrt(1 - ICC)
  from the configurable defaults in ``MdcDefault`` (documented with their sources);
- a verdict ``improved`` / ``worsened`` only when the change is real *and* the Mann-Kendall
  p-value is below alpha (Bonferroni-corrected by the caller when several metrics of one
  family are tested), else ``no_real_change`` or ``insufficient`` (too few sessions).

The fall-risk review lists reasons (STEADI thresholds, sway worsening beyond the MDC) and
never states a probability: prospective sensor-based fall-risk models reach only AUC
0.7-0.8 (van Schooten et al. 2015, 2016), too weak to quote a number to a patient.

Nothing here reads a clock, a file or the environment; the shells pass plain values in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pymannkendall as mk
from scipy import stats

ALGORITHM_VERSION = "trends-1.0"
WEEK_S = 7 * 86400.0
MDC_Z = 1.96 * math.sqrt(2.0)

Direction = Literal["lower_better", "higher_better"]
Verdict = Literal["improved", "worsened", "no_real_change", "insufficient"]


@dataclass(frozen=True)
class MdcDefault:
    """Fallback when the patient has fewer than 3 baseline sessions: either an absolute
    MDC95 (``mdc``, in the metric's unit) or a relative one (``mdc_rel``, a fraction of the
    baseline value, for metrics whose spread scales with their size, like sway)."""

    mdc: float | None = None
    mdc_rel: float | None = None
    source: str = ""

    def value(self, baseline: float) -> float:
        if self.mdc is not None:
            return self.mdc
        if self.mdc_rel is not None:
            return abs(baseline) * self.mdc_rel
        return math.nan


# Defaults, each with its source (docs/metrics.md repeats them; a clinic may override them
# through TrendParams). Sway: ICC 0.86 (Mancini et al. 2012, ISway JERK test-retest) with a
# between-subject coefficient of variation of about 40 % (an assumption, not a published
# figure) for trunk RMS in one condition gives
# SEM ~ 0.4 * sqrt(0.14) = 15 % of the value, MDC95 ~ 42 %.
SWAY_DEFAULT = MdcDefault(
    mdc_rel=0.42, source="ICC 0.86 (Mancini 2012) with an assumed between-subject CV of 40 %"
)
MDC_DEFAULTS: dict[str, MdcDefault] = {
    "rms_m_s2": SWAY_DEFAULT,
    "jerk_m2_s6": SWAY_DEFAULT,
    "path_rate_m_s3": SWAY_DEFAULT,
    "ellipse_area_95_m2_s4": SWAY_DEFAULT,
    "hold_s": MdcDefault(mdc=2.0, source="project default (no published MDC for hold time)"),
    "stands": MdcDefault(
        mdc=2.5, source="30 s chair stand: MDC about 2.5 stands (Gill et al. 2022, knee OA)"
    ),
    "tug_s": MdcDefault(
        mdc=2.0,
        source="project default; published TUG MDCs depend on the population "
        "(review: Arkesteijn & Low 2022)",
    ),
    "rom_deg": MdcDefault(mdc=10.0, source="goniometer MDD about 10 deg (Hancock et al. 2018)"),
    "pain_0_10": MdcDefault(mdc=2.0, source="NPRS: 2 points (Farrar et al. 2001)"),
    "fatigue_borg": MdcDefault(mdc=2.0, source="project default"),
    "adherence_pct": MdcDefault(mdc=20.0, source="project default"),
}
# lower or higher is better, per metric (stored field names of poise.core.derived)
DIRECTIONS: dict[str, Direction] = {
    "rms_m_s2": "lower_better",
    "jerk_m2_s6": "lower_better",
    "path_rate_m_s3": "lower_better",
    "ellipse_area_95_m2_s4": "lower_better",
    "hold_s": "higher_better",
    "stands": "higher_better",
    "tug_s": "lower_better",
    "rom_deg": "higher_better",
    "pain_0_10": "lower_better",
    "fatigue_borg": "lower_better",
    "adherence_pct": "higher_better",
    "active_s": "higher_better",
    "load": "higher_better",
}
# the sway metrics a review tests together (Bonferroni over them within one condition)
SWAY_REVIEW_METRICS = ("rms_m_s2", "jerk_m2_s6", "path_rate_m_s3")


@dataclass(frozen=True)
class TrendParams:
    baseline_n: int = 3
    latest_n: int = 3
    alpha: float = 0.05
    min_sessions: int = 6  # fewer sessions: verdict "insufficient"
    min_baseline_for_own_mdc: int = 3
    mdc_defaults: Mapping[str, MdcDefault] = field(default_factory=lambda: dict(MDC_DEFAULTS))
    tandem_hold_s: float = 10.0  # STEADI: tandem stance held < 10 s
    tug_flag_s: float = 12.0  # STEADI: TUG >= 12 s


@dataclass(frozen=True)
class Trend:
    metric: str
    n: int
    baseline: float
    latest: float
    change: float
    change_pct: float
    slope_per_week: float
    mk_p: float
    mk_tau: float
    mdc: float
    mdc_source: Literal["own_baseline", "default", "none"]
    alpha: float
    real_change: bool
    verdict: Verdict
    direction: Direction

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def mdc95_from_sem(sem: float) -> float:
    """MDC95 = 1.96 * sqrt(2) * SEM."""
    return MDC_Z * sem


def sem_from_sd(sd: float, icc: float) -> float:
    """SEM = SD * sqrt(1 - ICC) (population SD and test-retest ICC)."""
    return sd * math.sqrt(max(0.0, 1.0 - icc))


def mann_kendall(values: Sequence[float]) -> tuple[float, float]:
    """(p, tau) of the two-sided Mann-Kendall test on time-ordered values."""
    y = np.asarray(values, dtype=float)
    if y.size < 3 or np.all(y == y[0]):
        return 1.0, 0.0
    res = mk.original_test(y)
    return float(res.p), float(res.Tau)


def theil_sen_per_week(t_s: Sequence[float], values: Sequence[float]) -> float:
    t = np.asarray(t_s, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.size < 2 or np.ptp(t) == 0:
        return 0.0
    res = stats.theilslopes(y, (t - t[0]) / WEEK_S)
    return float(res.slope)


def trend(
    metric: str,
    t_s: Sequence[float],
    values: Sequence[float],
    params: TrendParams | None = None,
    *,
    alpha: float | None = None,
    baseline_mask: Sequence[bool] | None = None,
    direction: Direction | None = None,
) -> Trend:
    """The trend of one series (one value per session, any order: sorted by time here).

    ``alpha`` overrides ``params.alpha`` (a Bonferroni-corrected level); ``baseline_mask``
    marks baseline sessions (default: the first ``baseline_n``)."""
    p = params or TrendParams()
    a = p.alpha if alpha is None else alpha
    d = direction or DIRECTIONS.get(metric, "lower_better")
    t = np.asarray(t_s, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.shape != y.shape:
        raise ValueError(f"{metric}: {t.size} times but {y.size} values")
    ok = np.isfinite(t) & np.isfinite(y)
    order = np.argsort(t[ok], kind="stable")
    t, y = t[ok][order], y[ok][order]
    if baseline_mask is not None:
        mask = np.asarray(baseline_mask, dtype=bool)[ok][order]
    else:
        mask = np.zeros(y.size, dtype=bool)
        mask[: p.baseline_n] = True
    n = int(y.size)
    if n == 0:
        nan = math.nan
        return Trend(
            metric, 0, nan, nan, nan, nan, nan, 1.0, 0.0, nan, "none", a, False, "insufficient", d
        )
    base_vals = y[mask] if mask.any() else y[: p.baseline_n]
    baseline = float(np.median(base_vals))
    latest = float(np.median(y[-p.latest_n :]))
    change = latest - baseline
    change_pct = 100.0 * change / abs(baseline) if baseline != 0 else math.nan
    mdc_source: Literal["own_baseline", "default", "none"]
    own_sd = float(np.std(base_vals, ddof=1)) if base_vals.size > 1 else 0.0
    if base_vals.size >= p.min_baseline_for_own_mdc and own_sd > 0:
        mdc = mdc95_from_sem(own_sd)
        mdc_source = "own_baseline"
    elif metric in p.mdc_defaults:
        # too few baseline sessions, or all equal (a ceiling: a hold capped at 10 s)
        mdc = p.mdc_defaults[metric].value(baseline)
        mdc_source = "default"
    else:
        mdc, mdc_source = math.nan, "none"
    slope = theil_sen_per_week(t, y)
    mk_p, tau = mann_kendall(y)
    real = bool(math.isfinite(mdc) and abs(change) > mdc)
    verdict: Verdict
    if n < p.min_sessions or n < p.baseline_n + p.latest_n:
        verdict = "insufficient"
    elif real and mk_p < a and np.sign(tau) == np.sign(change):
        better = change < 0 if d == "lower_better" else change > 0
        verdict = "improved" if better else "worsened"
    else:
        verdict = "no_real_change"
    return Trend(
        metric,
        n,
        baseline,
        latest,
        change,
        change_pct,
        slope,
        mk_p,
        tau,
        mdc,
        mdc_source,
        a,
        real,
        verdict,
        d,
    )


# --- the review of one patient ---


@dataclass(frozen=True)
class Series:
    """Per-session values of one metric under one exercise, condition and side."""

    metric: str
    exercise: str
    condition: str = "none"
    side: str = "none"
    t_s: tuple[float, ...] = ()
    values: tuple[float, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.metric, self.exercise, self.condition, self.side)


@dataclass(frozen=True)
class Reason:
    """One reason of the fall-risk review: a code for machines, words for people."""

    code: str  # tandem_below_10s, chair_stand_below_norm, tug_at_or_above_12s, sway_worsened
    text: str
    value: float | None = None
    threshold: float | None = None
    unit: str = ""


@dataclass(frozen=True)
class LatestTests:
    """The latest STEADI results (None when the test was not done in the period)."""

    tandem_hold_s: float | None = None
    chair_stands: int | None = None
    chair_below_norm: bool | None = None
    chair_norm: int | None = None
    tug_s: float | None = None


@dataclass(frozen=True)
class Review:
    trends: tuple[tuple[Series, Trend], ...]
    reasons: tuple[Reason, ...]
    improvements: tuple[tuple[Series, Trend], ...]
    worsenings: tuple[tuple[Series, Trend], ...]
    adherence_pct: float | None
    sessions: int
    weeks: float

    @property
    def flagged(self) -> bool:
        """Fall-risk review needed: at least one reason (never a probability)."""
        return bool(self.reasons)


def condition_words(condition: str) -> str:
    """``eyes=closed,surface=foam`` -> ``eyes closed, foam surface``."""
    parts = dict(p.split("=", 1) for p in condition.split(",") if "=" in p)
    words = [f"eyes {parts['eyes']}"] if "eyes" in parts else []
    if "surface" in parts:
        words.append(f"{parts['surface']} surface")
    words += [f"{k} {v}" for k, v in sorted(parts.items()) if k not in ("eyes", "surface")]
    return ", ".join(words) or "no condition"


def _fmt(x: float, unit: str) -> str:
    return f"{x:.3g} {unit}".strip()


def review(
    series: Sequence[Series],
    latest: LatestTests,
    *,
    adherence_pct: Sequence[float] = (),
    session_times_s: Sequence[float] = (),
    params: TrendParams | None = None,
    units: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Review:
    """Trends of every series, the fall-risk reasons and the real changes of one patient.

    Sway metrics of one condition are tested together: alpha / (number of sway metrics in
    that condition), Bonferroni."""
    p = params or TrendParams()
    units = units or {}
    labels = labels or {}
    sway_counts: dict[tuple[str, str, str], int] = {}
    for s in series:
        if s.metric in SWAY_REVIEW_METRICS:
            k = (s.exercise, s.condition, s.side)
            sway_counts[k] = sway_counts.get(k, 0) + 1
    out: list[tuple[Series, Trend]] = []
    for s in series:
        k = (s.exercise, s.condition, s.side)
        a = p.alpha / sway_counts[k] if s.metric in SWAY_REVIEW_METRICS else p.alpha
        out.append((s, trend(s.metric, s.t_s, s.values, p, alpha=a)))
    reasons: list[Reason] = []
    if latest.tandem_hold_s is not None and latest.tandem_hold_s < p.tandem_hold_s:
        reasons.append(
            Reason(
                "tandem_below_10s",
                f"tandem stance held {latest.tandem_hold_s:.1f} s, below "
                f"{p.tandem_hold_s:g} s (STEADI: increased fall risk)",
                latest.tandem_hold_s,
                p.tandem_hold_s,
                "s",
            )
        )
    if latest.chair_below_norm:
        norm = f" of {latest.chair_norm}" if latest.chair_norm else ""
        reasons.append(
            Reason(
                "chair_stand_below_norm",
                f"30 s chair stand: {latest.chair_stands} stands, below the CDC norm{norm} "
                "for age and sex (STEADI: increased fall risk)",
                None if latest.chair_stands is None else float(latest.chair_stands),
                None if latest.chair_norm is None else float(latest.chair_norm),
                "stands",
            )
        )
    if latest.tug_s is not None and latest.tug_s >= p.tug_flag_s:
        reasons.append(
            Reason(
                "tug_at_or_above_12s",
                f"Timed Up and Go {latest.tug_s:.1f} s, at or above {p.tug_flag_s:g} s "
                "(STEADI: increased fall risk)",
                latest.tug_s,
                p.tug_flag_s,
                "s",
            )
        )
    worse: dict[tuple[str, str, str], list[tuple[Series, Trend]]] = {}
    for s, trd in out:
        if s.metric in SWAY_REVIEW_METRICS and trd.verdict == "worsened":
            worse.setdefault((s.exercise, s.condition, s.side), []).append((s, trd))
    for (exercise, condition, _side), items in worse.items():
        # one reason per condition, its numbers from the first metric tested (RMS)
        s, trd = items[0]
        u = units.get(s.metric, "")
        others = [labels.get(o.metric, o.metric) for o, _ in items[1:]]
        also = f"; also {', '.join(others)}" if others else ""
        reasons.append(
            Reason(
                "sway_worsened",
                f"sway in {exercise.replace('_', ' ')} ({condition_words(condition)}): "
                f"{labels.get(s.metric, s.metric)} rose from {_fmt(trd.baseline, u)} to "
                f"{_fmt(trd.latest, u)} ({trd.change_pct:+.0f} %), beyond the minimal "
                f"detectable change of {_fmt(trd.mdc, u)} (Mann-Kendall p = {trd.mk_p:.2g})" + also,
                trd.change,
                trd.mdc,
                u,
            )
        )
    adh = [v for v in adherence_pct if math.isfinite(v)]
    times = sorted(session_times_s)
    weeks = (times[-1] - times[0]) / WEEK_S if len(times) > 1 else 0.0
    return Review(
        trends=tuple(out),
        reasons=tuple(reasons),
        improvements=tuple((s, t) for s, t in out if t.verdict == "improved"),
        worsenings=tuple((s, t) for s, t in out if t.verdict == "worsened"),
        adherence_pct=float(np.mean(adh)) if adh else None,
        sessions=len(times),
        weeks=weeks,
    )


def weekly(t_s: Sequence[float], values: Sequence[float], t0_s: float) -> list[tuple[int, float]]:
    """(week index from t0, mean) per week with data; for adherence and intensity plots."""
    acc: dict[int, list[float]] = {}
    for t, v in zip(t_s, values, strict=True):
        if math.isfinite(v):
            acc.setdefault(int((t - t0_s) // WEEK_S), []).append(v)
    return [(w, float(np.mean(vs))) for w, vs in sorted(acc.items())]
