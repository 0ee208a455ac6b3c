"""Progression suggestions: rules a clinic can read and change (a TOML file; the one shipped
is ``analysis/progression_rules.toml``, commented), checked against a patient's recent
sessions and trends. Suggestions only, each with its reasons: the therapist decides.

``suggest(rules, scopes)`` is pure: the caller gives, per scope (one ROM exercise and
side, the balance tests, or the whole patient), the facts of each session in time order
and the trend verdicts of the period.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from analysis import trends as tr
from poise.core.tomlconf import ConfigError, TomlReader, load_toml, parse_toml

FORMAT_VERSION = 1
SCOPES = ("rom", "balance", "patient")
KINDS = ("progress", "hold", "regress")
FACTS = (
    "rom_margin_deg",
    "rom_deg",
    "correct_pct",
    "pain_0_10",
    "fatigue_borg",
    "adherence_pct",
    "tandem_hold_s",
    "tug_s",
)
VERDICTS = ("improved", "worsened", "no_real_change")
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SHOWN_OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


class RulesError(ConfigError):
    """A rules file that cannot be used."""


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: float

    def holds(self, x: float) -> bool:
        return OPS[self.op](x, self.value)

    def __str__(self) -> str:
        return f"{self.fact} {_SHOWN_OPS[self.op]} {self.value:g}"


@dataclass(frozen=True)
class TrendCondition:
    metric: str
    verdict: str


@dataclass(frozen=True)
class Rule:
    id: str
    scope: str
    suggest: str
    text: str
    last: int = 3
    all: tuple[Condition, ...] = ()
    trend: tuple[TrendCondition, ...] = ()


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    source: str = ""
    version: int = FORMAT_VERSION
    # the clinic's MDC95 defaults (used when a patient has too few baseline sessions):
    # metric -> absolute value in the metric's unit, or a fraction of the baseline
    mdc: Mapping[str, tr.MdcDefault] = field(default_factory=dict)

    def trend_params(self) -> tr.TrendParams:
        """TrendParams with this file's MDC defaults over the shipped ones."""
        return tr.TrendParams(mdc_defaults={**tr.MDC_DEFAULTS, **self.mdc})


@dataclass(frozen=True)
class Scope:
    """What the rules of one scope are checked against."""

    kind: str  # one of SCOPES
    label: str  # e.g. "rom/knee_flexion (right)"
    sessions: Sequence[Mapping[str, float]] = ()  # facts per session, oldest first
    verdicts: Mapping[str, Sequence[str]] = field(default_factory=dict)  # metric -> verdicts


@dataclass(frozen=True)
class Suggestion:
    rule: str
    kind: str  # progress, hold, regress
    scope: str
    text: str
    reasons: tuple[str, ...]


def _mdc(top: TomlReader) -> dict[str, tr.MdcDefault]:
    t = top.sub("mdc", {})
    out = {}
    for key in list(t.table):
        if key not in tr.MDC_DEFAULTS:
            raise t.fail(key, f"one of the metrics {sorted(tr.MDC_DEFAULTS)}", key)
        value = t.table[key]
        expected = 'a number in the metric\'s unit, or a share of the baseline like "40 %"'
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                pct = float(value.strip()[:-1])
            except ValueError:
                raise t.fail(key, expected, value) from None
            if not 0 < pct <= 500:
                raise t.fail(key, expected, value)
            out[key] = tr.MdcDefault(mdc_rel=pct / 100, source=f"{top.name}: {value}")
        else:
            out[key] = tr.MdcDefault(
                mdc=t.number(key, expected, lo=0), source=f"{top.name}: {value}"
            )
    return out


def _read(top: TomlReader) -> Rules:
    top.unknown({"version", "rule", "mdc"})
    version = top.integer("version", f"format version {FORMAT_VERSION}", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise top.fail("version", f"format version {FORMAT_VERSION}", version)
    rules = []
    seen: set[str] = set()
    for r in top.subs("rule", required=True):
        r.unknown({"id", "scope", "suggest", "text", "last", "all", "trend"})
        conds = []
        for i, c in enumerate(r.get("all", list, "an array of conditions", [])):
            cr = (
                TomlReader(r.name, c, r.path_of(f"all[{i}]"), r.error)
                if isinstance(c, dict)
                else None
            )
            if cr is None:
                raise r.fail(f"all[{i}]", "a table {fact, op, value}", c)
            cr.unknown({"fact", "op", "value"})
            conds.append(
                Condition(cr.choice("fact", FACTS), cr.choice("op", tuple(OPS)), cr.number("value"))
            )
        trends = []
        for i, c in enumerate(r.get("trend", list, "an array of trend conditions", [])):
            if not isinstance(c, dict):
                raise r.fail(f"trend[{i}]", "a table {metric, verdict}", c)
            cr = TomlReader(r.name, c, r.path_of(f"trend[{i}]"), r.error)
            cr.unknown({"metric", "verdict"})
            trends.append(
                TrendCondition(cr.text("metric", "a metric name"), cr.choice("verdict", VERDICTS))
            )
        rule = Rule(
            id=r.ident("id"),
            scope=r.choice("scope", SCOPES),
            suggest=r.choice("suggest", KINDS),
            text=r.text("text", "the words the report shows"),
            last=r.integer("last", "a whole number from 1 to 20", 3, 1, 20),
            all=tuple(conds),
            trend=tuple(trends),
        )
        if not rule.all and not rule.trend:
            raise r.fail("all", "at least one condition in 'all' or 'trend'", [])
        if rule.id in seen:
            raise r.fail("id", "each rule id once", rule.id)
        seen.add(rule.id)
        rules.append(rule)
    return Rules(tuple(rules), top.name, version, _mdc(top))


def parse_rules(text: str, name: str = "rules") -> Rules:
    return _read(parse_toml(text, name, RulesError))


def load_rules(path: Path | str) -> Rules:
    return _read(load_toml(path, RulesError))


def default_rules() -> Rules:
    """The rules shipped with poise (inside the package)."""
    text = resources.files("analysis").joinpath("progression_rules.toml").read_text("utf-8")
    return parse_rules(text, "progression_rules.toml")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def check(rule: Rule, scope: Scope) -> Suggestion | None:
    """The suggestion of ``rule`` for ``scope`` when every condition holds, else None."""
    if rule.scope != scope.kind:
        return None
    reasons: list[str] = []
    if rule.all:
        recent = list(scope.sessions)[-rule.last :]
        if len(recent) < rule.last:
            return None
        for c in rule.all:
            values = [s.get(c.fact) for s in recent]
            if any(v is None for v in values):
                return None
            xs = [float(v) for v in values if v is not None]
            if not all(c.holds(x) for x in xs):
                return None
            reasons.append(
                f"{c} in each of the last {rule.last} sessions ({', '.join(map(_fmt, xs))})"
            )
    for tc in rule.trend:
        if tc.verdict not in scope.verdicts.get(tc.metric, ()):
            return None
        reasons.append(f"{tc.metric}: {tc.verdict.replace('_', ' ')} over the period")
    return Suggestion(rule.id, rule.suggest, scope.label, rule.text, tuple(reasons))


def suggest(rules: Rules, scopes: Sequence[Scope]) -> list[Suggestion]:
    """Every rule that fires, in the order of the rules, then of the scopes."""
    out = []
    for rule in rules.rules:
        for scope in scopes:
            s = check(rule, scope)
            if s is not None:
                out.append(s)
    return out
