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
        rv = d.review(d.from_points(points, patient), d.profile(t["age_band"], t["sex"]))
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


def test_the_published_code_system_is_current_and_valid() -> None:
    import json
    from pathlib import Path

    from fhir.resources.R4B.codesystem import CodeSystem

    from poise import export

    path = (
        Path(__file__).resolve().parents[2] / "docs" / "fhir" / "CodeSystem-poise-observation.json"
    )
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed == export.code_system(), "regenerate: python -m poise.export > " + str(
        path.relative_to(path.parents[2])
    )
    CodeSystem.model_validate(committed)


def test_every_project_code_of_the_export_is_in_the_code_system() -> None:
    from poise import export

    points, _truth = h.generate(h.HistoryConfig(patients=1, seed=2))
    bundle = export.fhir_bundle(d.from_points(points, "h001"))
    assert export.validate_bundle(bundle) == len(bundle["entry"])
    known = {c["code"] for c in export.code_system()["concept"]}
    used = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if x.get("system") == export.CODE_SYSTEM:
                used.add(x["code"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(bundle)
    assert used
    assert used <= known, used - known


@pytest.mark.parametrize(
    ("band", "sex", "norm"),
    [
        ("75-79", "female", 10),
        ("75-79", "male", 11),
        ("60-64", "male", 14),
        ("18-59", "female", None),
        ("95+", "male", None),
        ("75-79", None, None),
        (None, "female", None),
    ],
)
def test_profile_sets_the_chair_stand_norm_from_the_band(band, sex, norm) -> None:
    assert d.profile(band, sex).chair_stand_norm == norm


@pytest.mark.parametrize(("band", "sex"), [("old", None), ("80-70", None), (None, "x")])
def test_profile_refuses(band, sex) -> None:
    with pytest.raises(ValueError, match="expected"):
        d.profile(band, sex)


def test_a_four_stage_test_stopped_before_tandem_counts_as_zero() -> None:
    def trial(t: float, session: str, stage: str, hold: float) -> dict[str, object]:
        return {
            "measurement": "trial_summary",
            "t_ns": int(t * 1e9),
            "tags": {
                "patient": "x1",
                "session": session,
                "trial": f"{session}{stage}",
                "exercise": f"steadi_4stage/{stage}",
            },
            "fields": {"hold_s": hold, "passed": hold >= 10},
        }

    points = [
        trial(0, "a", "feet_together", 10.0),
        trial(1, "a", "semi_tandem", 10.0),
        trial(2, "a", "tandem", 8.0),
        trial(100, "b", "feet_together", 10.0),
        trial(101, "b", "semi_tandem", 6.0),
    ]
    data = d.from_points(points, "x1")
    (tandem,) = [s for s in d.series(data) if s.metric == "hold_s"]
    assert tandem.values == (8.0, 0.0)
    assert d.latest_tests(data).tandem_hold_s == 0.0
