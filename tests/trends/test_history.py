"""Seeded histories: points fit the derived-data tables, and the review finds the truth."""

from __future__ import annotations

import pytest

from poise import history as h
from poise.core.derived import MEASUREMENTS
from poise.report import data as d

CFG = h.HistoryConfig(patients=9, seed=0)


@pytest.fixture(scope="module")
def seeded() -> tuple[list[dict[str, object]], dict[str, object]]:
    return h.generate(CFG)


def test_points_are_the_worker_tables(seeded) -> None:
    points, truth = seeded
    h.check_points(points)
    kinds = {p["measurement"] for p in points}
    assert kinds == {"trial_summary", "session_summary"}
    for p in points:
        assert set(p["tags"]) <= set(MEASUREMENTS[p["measurement"]].all_tags)
        assert {"site", "patient", "algorithm_version"} <= set(p["tags"])
    assert sorted(truth["patients"]) == [f"h{i:03d}" for i in range(1, 10)]
    assert h.generate(CFG) == seeded  # the seed fixes everything


def test_line_protocol_is_one_line_per_point(seeded) -> None:
    points, _truth = seeded
    text = h.lines(points[:50])
    assert len(text) == 50
    assert text[0].startswith("trial_summary,")
    assert "condition=eyes\\=open\\,surface\\=firm" in text[0]


def test_the_review_finds_the_known_truth(seeded) -> None:
    points, truth = seeded
    for patient, t in truth["patients"].items():
        rv = d.review(d.from_points(points, patient))
        codes = {r.code for r in rv.reasons}
        improved = {s.metric for s, _t in rv.improvements}
        if t["course"] == "worsening":
            assert rv.flagged, patient
            assert codes == set(t["expect_reasons"]), patient
        elif t["course"] == "stable":
            assert not rv.flagged, (patient, rv.reasons)
            assert not rv.improvements, patient
        else:
            assert not rv.flagged, (patient, rv.reasons)
            # improvements beyond the MDC are reported as such
            assert {"rms_m_s2", "rom_deg"} <= improved, (patient, improved)
            assert len(improved & set(t["expect_improved"])) >= 4, (patient, improved)


def test_cohort_rates(seeded) -> None:
    points, truth = seeded
    rates = d.evaluate_cohort(points, truth)
    assert rates["worsening"]["flagged_share"] == 1.0
    assert rates["stable"]["flagged_share"] == 0.0
    assert rates["improving"]["improvements_reported_share"] >= 0.8


def test_a_recomputation_with_a_newer_version_replaces_the_old_one(seeded) -> None:
    points, _truth = seeded
    p0 = next(p for p in points if p["measurement"] == "trial_summary")
    newer = {
        **p0,
        "tags": {**p0["tags"], "algorithm_version": "sway-1.10"},
        "fields": {**p0["fields"], "rms_m_s2": 99.0},
    }
    data = d.from_points([p0, newer], p0["tags"]["patient"])
    assert [r["rms_m_s2"] for r in data.trials] == [99.0]


@pytest.mark.parametrize(("text", "weeks"), [("12w", 12.0), ("14d", 2.0), ("3", 3.0)])
def test_parse_weeks(text: str, weeks: float) -> None:
    assert h.parse_weeks(text) == weeks


@pytest.mark.parametrize("text", ["", "w", "-2w", "12x", "9999w"])
def test_parse_weeks_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a period"):
        h.parse_weeks(text)
