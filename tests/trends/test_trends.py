"""Trend statistics against known answers and independent re-computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis import trends as tr

DAY = 86400.0


def _mk_by_hand(y: list[float]) -> tuple[float, float]:
    """Mann-Kendall from its definition (no ties): S, var, continuity-corrected z."""
    n = len(y)
    s = sum(np.sign(y[j] - y[i]) for i in range(n) for j in range(i + 1, n))
    var = n * (n - 1) * (2 * n + 5) / 18
    z = (s - np.sign(s)) / math.sqrt(var)
    return float(2 * (1 - stats.norm.cdf(abs(z)))), float(s / (n * (n - 1) / 2))


def test_mann_kendall_matches_definition_and_kendall_tau() -> None:
    rng = np.random.default_rng(3)
    y = list(np.cumsum(rng.normal(0.1, 1.0, 15)))
    p, tau = tr.mann_kendall(y)
    p_hand, tau_hand = _mk_by_hand(y)
    assert p == pytest.approx(p_hand, rel=1e-9)
    assert tau == pytest.approx(tau_hand, rel=1e-12)
    # without ties, the MK tau is Kendall's tau of the values against time
    assert tau == pytest.approx(stats.kendalltau(np.arange(15), y).statistic, rel=1e-12)


def test_theil_sen_per_week_on_irregular_times() -> None:
    t = np.array([0, 2, 3, 9, 10, 16, 30, 31, 44]) * DAY
    y = 5.0 + 0.7 * t / tr.WEEK_S
    assert tr.theil_sen_per_week(t, y) == pytest.approx(0.7, rel=1e-12)
    y_outlier = y.copy()
    y_outlier[4] += 100.0  # one wild session does not move a Theil-Sen slope much
    assert tr.theil_sen_per_week(t, y_outlier) == pytest.approx(0.7, rel=0.2)


def test_mdc_from_the_patients_own_baseline() -> None:
    # baseline 1, 2, 3: SD 1 -> MDC95 = 1.96 * sqrt(2) = 2.772
    t = np.arange(9) * 3 * DAY
    y = [1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    out = tr.trend("tug_s", t, y)
    assert out.mdc_source == "own_baseline"
    assert out.mdc == pytest.approx(1.96 * math.sqrt(2.0), rel=1e-12)
    assert out.baseline == 2.0
    assert out.latest == 2.0
    assert out.verdict == "no_real_change"


def test_default_mdc_when_the_baseline_is_marked_short() -> None:
    t = np.arange(8) * 3 * DAY
    y = [12.0, 12.0, 12.0, 11.0, 10.5, 10.0, 9.5, 9.0]
    mask = [True, True] + [False] * 6
    out = tr.trend("tug_s", t, y, baseline_mask=mask)
    assert out.mdc_source == "default"
    assert out.mdc == tr.MDC_DEFAULTS["tug_s"].mdc
    assert out.verdict == "improved"  # 12 -> 9.5 s, beyond 2 s, monotone


def test_sem_formula() -> None:
    assert tr.sem_from_sd(2.0, 0.75) == pytest.approx(1.0)
    assert tr.mdc95_from_sem(1.0) == pytest.approx(2.7718, abs=1e-4)


@pytest.mark.parametrize(
    ("metric", "slope", "verdict"),
    [
        ("rms_m_s2", -0.004, "improved"),
        ("rms_m_s2", +0.004, "worsened"),
        ("rom_deg", +2.0, "improved"),
        ("rom_deg", -2.0, "worsened"),
        ("rms_m_s2", 0.0, "no_real_change"),
    ],
)
def test_verdicts_follow_direction(metric: str, slope: float, verdict: str) -> None:
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 84 * DAY, 30))
    base = 0.05 if metric == "rms_m_s2" else 80.0
    noise = 0.003 if metric == "rms_m_s2" else 2.0
    y = base + slope * t / tr.WEEK_S + rng.normal(0, noise, t.size)
    assert tr.trend(metric, t, y).verdict == verdict


def test_a_real_change_without_a_monotone_trend_is_not_a_verdict() -> None:
    # a single step between baseline and the rest: change beyond the MDC, but MK over
    # 8 sessions with the step in the middle and noise after it
    t = np.arange(8) * DAY
    y = [1.0, 1.01, 0.99, 3.0, 1.0, 3.0, 1.0, 3.0]
    out = tr.trend("tug_s", t, y)
    assert out.real_change
    assert out.mk_p >= 0.05
    assert out.verdict == "no_real_change"


def test_too_few_sessions_is_insufficient() -> None:
    out = tr.trend("tug_s", [0, DAY, 2 * DAY], [10.0, 11.0, 12.0])
    assert out.verdict == "insufficient"
    assert tr.trend("tug_s", [], []).verdict == "insufficient"


def test_review_lists_reasons_never_a_probability() -> None:
    t = tuple(np.arange(24) * 3.5 * DAY)
    rising = tuple(0.05 * (1 + 0.03 * i) for i in range(24))
    flat = tuple(0.05 + 0.001 * ((-1) ** i) for i in range(24))
    series = [
        tr.Series("rms_m_s2", "quiet_stance", "eyes=closed", t_s=t, values=rising),
        tr.Series("jerk_m2_s6", "quiet_stance", "eyes=closed", t_s=t, values=flat),
    ]
    latest = tr.LatestTests(
        tandem_hold_s=6.0, chair_stands=9, chair_below_norm=True, chair_norm=11, tug_s=13.2
    )
    rv = tr.review(series, latest, session_times_s=t, units={"rms_m_s2": "m/s²"})
    codes = [r.code for r in rv.reasons]
    assert codes == [
        "tandem_below_10s",
        "chair_stand_below_norm",
        "tug_at_or_above_12s",
        "sway_worsened",
    ]
    assert rv.flagged
    # Bonferroni over the two sway metrics of that condition
    assert all(trd.alpha == pytest.approx(0.025) for _s, trd in rv.trends)
    text = " ".join(r.text for r in rv.reasons).lower()
    assert "probab" not in text
    assert "%" in text  # the sway reason says by how much


def test_review_of_a_well_patient_has_no_reasons() -> None:
    latest = tr.LatestTests(tandem_hold_s=10.0, chair_stands=14, chair_below_norm=False, tug_s=9.0)
    rv = tr.review([], latest)
    assert not rv.flagged
    assert rv.reasons == ()


def test_weekly_means() -> None:
    t = [0.0, DAY, 8 * DAY, 15 * DAY, 16 * DAY]
    assert tr.weekly(t, [1, 3, 5, 7, math.nan], 0.0) == [(0, 2.0), (1, 5.0), (2, 7.0)]


def test_theil_sen_is_the_median_of_pairwise_slopes() -> None:
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 84 * DAY, 20))
    y = rng.normal(0, 1, 20)
    w = t / tr.WEEK_S
    pairwise = [(y[j] - y[i]) / (w[j] - w[i]) for i in range(20) for j in range(i + 1, 20)]
    assert tr.theil_sen_per_week(t, y) == pytest.approx(float(np.median(pairwise)), rel=1e-9)


def test_export_session_windows_merge() -> None:
    from poise.export import session_windows
    from poise.report.data import PatientData

    data = PatientData(
        "p",
        0,
        1,
        sessions=[
            {"time_s": 1000.0, "duration_s": 600.0},
            {"time_s": 1500.0, "duration_s": 100.0},
            {"time_s": 9000.0, "duration_s": 60.0},
        ],
    )
    assert session_windows(data) == [(940.0, 1660.0), (8940.0, 9120.0)]
