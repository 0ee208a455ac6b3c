"""The report's words and figures, without InfluxDB or a PDF."""

from __future__ import annotations

import re

import pytest

from analysis import trends as tr
from poise import history as h
from poise.report import data as d
from poise.report import render


def test_condition_words() -> None:
    assert render.condition_words("eyes=closed,surface=foam") == "eyes closed, foam surface"
    assert render.condition_words("none") == ""


def test_a_change_sentence_says_what_by_how_much_against_what() -> None:
    s = tr.Series("tug_s", "tug", t_s=(0.0,), values=(1.0,))
    t = tr.Trend(
        "tug_s",
        12,
        13.5,
        10.0,
        -3.5,
        -25.9,
        -0.3,
        0.001,
        -0.6,
        1.2,
        "own_baseline",
        0.05,
        True,
        "improved",
        "lower_better",
    )
    text = render.change_sentence(s, t, "s")
    assert text.startswith("Timed Up and Go improved: from 13.5 s to 10 s (-26 %)")
    assert "minimal detectable change of 1.2 s (from the patient's own baseline)" in text
    assert "p = 0.001" in text


@pytest.fixture(scope="module")
def model() -> render.Model:
    points, truth = h.generate(h.HistoryConfig(patients=3, seed=0))
    info = truth["patients"]["h003"]
    return render.build(d.from_points(points, "h003"), d.profile(info["age_band"], info["sex"]))


def test_the_style_is_inline_or_linked(model: render.Model) -> None:
    assert "<style>" in render.to_html(model)
    linked = render.to_html(model, css_href="/static/report.css")
    assert '<link rel="stylesheet" href="/static/report.css">' in linked
    assert "<style>" not in linked  # for pages whose CSP refuses inline styles
    assert "@page" in render.stylesheet()


def test_the_model_of_a_worsening_patient(model: render.Model) -> None:
    assert model.review.flagged
    assert [f.number for f in model.figures] == [1, 2, 3, 4, 5, 6]
    assert all(f.svg.lstrip().startswith("<?xml") for f in model.figures)
    # axis labels stay text (searchable, sharp in print) and carry their units
    for f in model.figures:
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", f.svg)
        assert "week of the period" in texts, f.number
        assert any(re.search(r"\((m/s²|deg|s|%|in 30 s|0-10)\)", t) for t in texts), f.number
    # sway metrics of one condition that agree are one sentence
    sway = [s for _v, s in model.changes if s.startswith("Trunk sway")]
    assert len(sway) == 2
    assert all("agree" in s for s in sway)
    html = render.to_html(model)
    assert html.count("<figcaption>") == 6
    assert "Jane" not in html


def test_a_report_of_one_session_renders() -> None:
    points, _truth = h.generate(h.HistoryConfig(patients=1, seed=0))
    first = min(p["t_ns"] for p in points)
    one = [p for p in points if p["t_ns"] < first + 3 * 3600 * 10**9]
    model = render.build(d.from_points(one, "h001"))
    assert model.review.sessions == 1
    assert {t.verdict for _s, t in model.review.trends} == {"insufficient"}
    assert len(model.figures) == 6
    assert "No change in this period" in render.to_html(model)


def test_a_report_without_steadi_tests_says_so() -> None:
    points, _truth = h.generate(h.HistoryConfig(patients=1, seed=0))
    no_steadi = [p for p in points if p["tags"].get("exercise") in (None, "quiet_stance")]
    model = render.build(d.from_points(no_steadi, "h001"))
    assert "no data in this period" in model.figures[-3].svg  # the STEADI panels


def test_the_committed_sample_is_current(tmp_path) -> None:
    """docs/samples is generated (python -m poise.report.sample docs/samples); its words and
    numbers must match the code (the SVG bytes may differ between matplotlib versions)."""
    from pathlib import Path

    from poise.report import sample

    def words(html: str) -> str:
        return re.sub(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+", "", html)

    docs = Path(__file__).resolve().parents[2] / "docs"
    (tmp_path / "fhir").mkdir()
    sample.main(tmp_path / "samples", pdf=False)
    fresh = (tmp_path / "samples" / "report-h003.html").read_text(encoding="utf-8")
    committed = (docs / "samples" / "report-h003.html").read_text(encoding="utf-8")
    assert words(fresh) == words(committed), (
        "regenerate: python -m poise.report.sample docs/samples"
    )


def test_flagged_quiet_stance_trials_stay_out_of_the_sway_trend() -> None:
    points, _truth = h.generate(h.HistoryConfig(patients=1, seed=0))
    stance = [p for p in points if p["tags"].get("exercise") == "quiet_stance"]
    stance[5]["fields"] = {**stance[5]["fields"], "flags": "loss_of_balance", "rms_m_s2": 9.0}
    data = d.from_points(points, "h001")
    rms = [s for s in d.series(data) if s.metric == "rms_m_s2"]
    assert all(9.0 not in s.values for s in rms)
    assert sum(len(s.values) for s in rms) == len(stance) - 1
    model = render.build(data)
    assert model.sway_excluded == 1
    assert "1 quiet-stance trial left out" in render.to_html(model)
