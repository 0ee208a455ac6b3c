"""Progression rules: the shipped file loads, bad files are refused with the field named,
and suggestions appear where the rules say (and nowhere else)."""

from __future__ import annotations

import pytest

from analysis import progression as pr
from analysis import trends as tr
from poise import history as h
from poise.report import data as d

RULE = """
version = 1
[[rule]]
id = "r1"
scope = "rom"
suggest = "progress"
last = 2
all = [{ fact = "rom_margin_deg", op = ">=", value = 0 }, { fact = "pain_0_10", op = "<=", value = 3 }]
text = "go on"
"""


def test_shipped_rules_load() -> None:
    rules = pr.default_rules()
    ids = [r.id for r in rules.rules]
    assert "rom_target_reached" in ids
    assert "pain_rising" in ids
    assert all(r.text for r in rules.rules)


def test_a_rule_fires_only_when_every_condition_holds_in_each_session() -> None:
    rules = pr.parse_rules(RULE)
    ok = pr.Scope(
        "rom",
        "knee",
        [
            {"rom_margin_deg": -5, "pain_0_10": 1},
            {"rom_margin_deg": 1, "pain_0_10": 3},
            {"rom_margin_deg": 4, "pain_0_10": 2},
        ],
    )
    (s,) = pr.suggest(rules, [ok])
    assert s.rule == "r1"
    assert s.kind == "progress"
    assert s.reasons[0] == "rom_margin_deg ≥ 0 in each of the last 2 sessions (1, 4)"
    painful = pr.Scope(
        "rom",
        "knee",
        [{"rom_margin_deg": 1, "pain_0_10": 3}, {"rom_margin_deg": 4, "pain_0_10": 4}],
    )
    assert pr.suggest(rules, [painful]) == []
    missing = pr.Scope("rom", "knee", [{"rom_margin_deg": 1}, {"rom_margin_deg": 4}])
    assert pr.suggest(rules, [missing]) == []  # a missing fact fails the rule
    too_few = pr.Scope("rom", "knee", [{"rom_margin_deg": 1, "pain_0_10": 0}])
    assert pr.suggest(rules, [too_few]) == []
    other_scope = pr.Scope("patient", "p", ok.sessions)
    assert pr.suggest(rules, [other_scope]) == []


def test_trend_conditions() -> None:
    rules = pr.parse_rules(
        'version = 1\n[[rule]]\nid = "t"\nscope = "patient"\nsuggest = "hold"\ntext = "x"\n'
        'trend = [{ metric = "pain_0_10", verdict = "worsened" }]\n'
    )
    assert pr.suggest(rules, [pr.Scope("patient", "p", verdicts={"pain_0_10": ["worsened"]})])
    assert not pr.suggest(rules, [pr.Scope("patient", "p", verdicts={"pain_0_10": ["improved"]})])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('scope = "rom"', 'scope = "knee"'), "field 'rule[0].scope': expected one of"),
        (('op = ">="', 'op = "=>"'), "field 'rule[0].all[0].op'"),
        (('fact = "pain_0_10"', 'fact = "pain"'), "field 'rule[0].all[1].fact'"),
        (("last = 2", "last = 0"), "field 'rule[0].last'"),
        (('text = "go on"', 'txt = "go on"'), "field 'rule[0].txt'"),
        (("version = 1", "version = 2"), "field 'version'"),
    ],
)
def test_bad_rules_name_the_field(change: tuple[str, str], message: str) -> None:
    with pytest.raises(pr.RulesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        pr.parse_rules(RULE.replace(*change), "clinic.toml")


def test_a_rule_needs_a_condition() -> None:
    with pytest.raises(pr.RulesError, match="at least one condition"):
        pr.parse_rules(
            'version = 1\n[[rule]]\nid = "x"\nscope = "rom"\nsuggest = "hold"\ntext = "t"\n'
        )


def test_suggestions_on_seeded_history() -> None:
    points, truth = h.generate(h.HistoryConfig(patients=6, seed=0))
    for patient, t in truth["patients"].items():
        data = d.from_points(points, patient)
        got = {s.rule for s in d.suggestions(data, d.review(data))}
        if t["course"] == "improving":
            assert {"rom_target_reached", "balance_ready"} <= got, patient
            assert not got & {"pain_rising", "pain_high", "rom_losing_range"}, patient
        elif t["course"] == "stable":
            assert got == set(), patient
        else:
            assert "rom_losing_range" in got, patient
            assert got & {"pain_rising", "pain_high"}, patient
            assert not got & {"rom_target_reached", "balance_ready"}, patient


def test_a_clinic_sets_its_mdc_defaults() -> None:
    rules = pr.parse_rules(RULE + '\n[mdc]\ntug_s = 3.0\nrms_m_s2 = "30 %"\n', "clinic.toml")
    params = rules.trend_params()
    assert params.mdc_defaults["tug_s"].value(12.0) == 3.0
    assert params.mdc_defaults["rms_m_s2"].value(0.2) == pytest.approx(0.06)
    assert params.mdc_defaults["stands"].mdc == 2.5  # the shipped default stays
    # two baseline sessions: the default applies
    out = tr.trend(
        "tug_s",
        [0, 1, 2, 3, 4, 5, 6],
        [12, 12, 11.5, 11, 10, 9.5, 9.4],
        params,
        baseline_mask=[True, True] + [False] * 5,
    )
    assert out.mdc == 3.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("knee = 2", "field 'mdc.knee'"),
        ('tug_s = "x %"', "field 'mdc.tug_s'"),
        ("tug_s = -1", "field 'mdc.tug_s'"),
    ],
)
def test_bad_mdc_defaults_name_the_field(table: str, message: str) -> None:
    with pytest.raises(pr.RulesError, match=message.replace(".", r"\.")):
        pr.parse_rules(RULE + f"\n[mdc]\n{table}\n", "clinic.toml")
