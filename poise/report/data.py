"""A patient's derived data for a period, read from InfluxDB (or taken from points in
memory), shaped into the per-session series the trend review takes.

One row per trial (``trial_summary``) and per session (``session_summary``). When a trial
was scored by several algorithm versions (a recomputation lands beside the original), the
highest version is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis import progression as pr
from analysis import trends as tr
from poise.core.clinical import EXERCISES, FOUR_STAGE_ORDER
from poise.core.derived import MEASUREMENTS
from poise.core.ids import check_id
from poise.core.influx import DERIVED_RP, InfluxV1

TANDEM = "steadi_4stage/tandem"
# quality flags that make a quiet-stance trial's sway incomparable with the others (a step,
# a trial under 10 s, a clipped signal): such trials stay out of the sway trends
SWAY_EXCLUDING_FLAGS = frozenset(
    {"loss_of_balance", "too_short", "clipping", "no_data", "unscorable"}
)
LABELS = {"rms_m_s2": "trunk RMS", "jerk_m2_s6": "jerk", "path_rate_m_s3": "path rate"}
SWAY_EXERCISES = ("quiet_stance",)


@dataclass(frozen=True)
class PatientProfile:
    """What the clinical records know and a report may show: never a name."""

    age_band: str | None = None  # e.g. "75-79"
    sex: str | None = None  # "female", "male" or None
    chair_stand_norm: int | None = None


def profile(age_band: str | None = None, sex: str | None = None) -> PatientProfile:
    """A profile from an age band (``75-79``; the CDC chair-stand norms are per 5-year band)
    and sex (``female``/``male``); ValueError naming what is wrong."""
    norm = None
    if age_band is not None and not (age_band.endswith("+") and age_band[:-1].isdigit()):
        lo, sep, hi = age_band.partition("-")
        if not (sep and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi) <= 120):
            raise ValueError(f"age band: expected like 75-79 or 95+, found {age_band!r}")
    if sex is not None and sex not in ("female", "male"):
        raise ValueError(f"sex: expected female or male, found {sex!r}")
    if age_band is not None and sex is not None and not age_band.endswith("+"):
        from analysis.steadi import chair_stand_norm

        lo_age, hi_age = (int(x) for x in age_band.split("-"))
        norms = {chair_stand_norm(a, sex) for a in range(lo_age, hi_age + 1)}
        if len(norms) == 1:  # the band lies within one row of the table
            norm = norms.pop()
    return PatientProfile(age_band, sex, norm)


@dataclass
class PatientData:
    patient: str
    since_s: float
    until_s: float
    trials: list[dict[str, Any]] = field(default_factory=list)  # time_s + tags + fields
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def session_times_s(self) -> list[float]:
        return sorted(float(s["time_s"]) for s in self.sessions)


def _version_key(v: object) -> tuple[tuple[int, ...], str]:
    """``sway-1.10`` sorts after ``sway-1.9``; unparsable versions by their text."""
    text = str(v or "")
    tail = text.rsplit("-", 1)[-1]
    try:
        return (tuple(int(x) for x in tail.split(".")), text)
    except ValueError:
        return ((), text)


def _dedupe(rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        k = (r.get(key), r["time_s"])
        if k not in best or _version_key(r.get("algorithm_version")) > _version_key(
            best[k].get("algorithm_version")
        ):
            best[k] = r
    return sorted(best.values(), key=lambda r: (r["time_s"], str(r.get(key))))


def from_points(
    points: Iterable[dict[str, Any]],
    patient: str,
    since_s: float = -math.inf,
    until_s: float = math.inf,
) -> PatientData:
    """From points shaped as poise.core.derived messages (measurement, t_ns, tags, fields)."""
    trials, sessions = [], []
    for p in points:
        if p["tags"].get("patient") != patient:
            continue
        t_s = p["t_ns"] / 1e9
        if not since_s <= t_s < until_s:
            continue
        row = {"time_s": t_s, **p["tags"], **p["fields"]}
        if p["measurement"] == "trial_summary":
            trials.append(row)
        elif p["measurement"] == "session_summary":
            sessions.append(row)
    lo = since_s if math.isfinite(since_s) else min((r["time_s"] for r in sessions), default=0.0)
    hi = until_s if math.isfinite(until_s) else max((r["time_s"] for r in sessions), default=0.0)
    return PatientData(patient, lo, hi, _dedupe(trials, "trial"), _dedupe(sessions, "session"))


def _rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in series:
        cols = s["columns"]
        for values in s.get("values", []):
            row = dict(zip(cols, values, strict=True))
            row["time_s"] = row.pop("time") / 1e9
            out.append({k: v for k, v in row.items() if v is not None})
    return out


def load(influx: InfluxV1, patient: str, since_s: float, until_s: float) -> PatientData:
    """The patient's trial and session summaries with since_s <= time < until_s."""
    check_id("patient", patient)  # the id is embedded in InfluxQL below
    where = (
        f"patient = '{patient}' AND time >= {int(since_s * 1e9)} AND time < {int(until_s * 1e9)}"
    )
    trials = _rows(influx.query(f'SELECT * FROM "{DERIVED_RP}"."trial_summary" WHERE {where}'))
    sessions = _rows(influx.query(f'SELECT * FROM "{DERIVED_RP}"."session_summary" WHERE {where}'))
    return PatientData(
        patient, since_s, until_s, _dedupe(trials, "trial"), _dedupe(sessions, "session")
    )


def _per_session(
    rows: Sequence[dict[str, Any]], metric: str, how: str = "median"
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    by: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        v = r.get(metric)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        by.setdefault(str(r.get("session")), []).append((float(r["time_s"]), float(v)))
    pts = []
    for vals in by.values():
        xs = sorted(v for _t, v in vals)
        t0 = min(t for t, _v in vals)
        if how == "max":
            pts.append((t0, xs[-1]))
        else:
            m = len(xs) // 2
            pts.append((t0, xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2))
    pts.sort()
    return tuple(t for t, _ in pts), tuple(v for _, v in pts)


def sway_excluded(r: dict[str, Any]) -> bool:
    flags = {f for f in str(r.get("flags") or "").split(",") if f}
    return r.get("exercise") in SWAY_EXERCISES and bool(flags & SWAY_EXCLUDING_FLAGS)


def _tandem_not_reached(data: PatientData) -> list[dict[str, Any]]:
    """A tandem hold of 0 s for each 4-stage test that stopped before the tandem stage (an
    earlier stage failed): the test stops at the first failure, and leaving such sessions
    out would hide the worst results from the trend."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in data.trials:
        if r.get("exercise") in FOUR_STAGE_ORDER:
            by.setdefault(str(r.get("session")), []).append(r)
    out = []
    for session, rows in by.items():
        if not any(r["exercise"] == TANDEM for r in rows) and any(
            r.get("passed") is False for r in rows
        ):
            first = min(rows, key=lambda r: r["time_s"])
            out.append(
                {
                    "time_s": first["time_s"],
                    "session": session,
                    "exercise": TANDEM,
                    "condition": "none",
                    "side": "none",
                    "hold_s": 0.0,
                }
            )
    return out


def series(data: PatientData) -> list[tr.Series]:
    """The series a review tests: sway per quiet-stance condition, tandem hold, chair
    stands, TUG, ROM per exercise and side, pain, fatigue and adherence."""
    out: list[tr.Series] = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in (*data.trials, *_tandem_not_reached(data)):
        if sway_excluded(r):
            continue
        groups.setdefault(
            (str(r.get("exercise")), str(r.get("condition", "none")), str(r.get("side", "none"))),
            [],
        ).append(r)
    for (ex, cond, side), rows in sorted(groups.items()):
        kind = EXERCISES.get(ex, ("?", ""))[0]
        if ex in SWAY_EXERCISES:
            metrics: tuple[tuple[str, str], ...] = tuple(
                (m, "median") for m in tr.SWAY_REVIEW_METRICS
            )
        elif ex == TANDEM:
            metrics = (("hold_s", "median"),)
        elif kind == "chair_stand":
            metrics = (("stands", "median"),)
        elif kind == "tug":
            metrics = (("tug_s", "median"),)
        elif kind == "rom":
            metrics = (("rom_deg", "max"),)
        else:
            continue
        for metric, how in metrics:
            t, v = _per_session(rows, metric, how)
            if t:
                out.append(tr.Series(metric, ex, cond, side, t, v))
    for metric in ("pain_0_10", "fatigue_borg", "adherence_pct"):
        t, v = _per_session(data.sessions, metric)
        if t:
            out.append(tr.Series(metric, "session", "none", "none", t, v))
    return out


def latest_tests(data: PatientData, profile: PatientProfile | None = None) -> tr.LatestTests:
    """The last STEADI results of the period. A 4-stage test that stopped before the tandem
    stage counts as tandem held 0 s (the test stops at the first failure). The chair-stand
    norm needs the patient's age band and sex (``profile``); without them no chair-stand
    flag can be raised, and the report says so."""
    tandem: float | None = None
    stages = [r for r in data.trials if r.get("exercise") in FOUR_STAGE_ORDER]
    if stages:
        last_session = stages[-1].get("session")
        in_last = {r["exercise"]: r for r in stages if r.get("session") == last_session}
        if TANDEM in in_last and "hold_s" in in_last[TANDEM]:
            tandem = float(in_last[TANDEM]["hold_s"])
        elif any(not r.get("passed", True) for r in in_last.values()):
            tandem = 0.0
    chair = [r for r in data.trials if r.get("exercise") == "chair_stand_30s" and "stands" in r]
    tug = [r for r in data.trials if r.get("exercise") == "tug" and "tug_s" in r]
    norm = profile.chair_stand_norm if profile else None
    below: bool | None = None
    if chair:
        if "below_norm" in chair[-1]:
            below = bool(chair[-1]["below_norm"])
        elif norm is not None:  # the worker knows no age or sex: the norm comes from here
            below = int(chair[-1]["stands"]) < norm
    return tr.LatestTests(
        tandem_hold_s=tandem,
        chair_stands=int(chair[-1]["stands"]) if chair else None,
        chair_below_norm=below,
        chair_norm=norm,
        tug_s=float(tug[-1]["tug_s"]) if tug else None,
    )


def units() -> dict[str, str]:
    out = {f.name: f.unit for f in MEASUREMENTS["trial_summary"].fields}
    out.update({f.name: f.unit for f in MEASUREMENTS["session_summary"].fields})
    out["pain_0_10"] = "/10"
    out["fatigue_borg"] = "Borg"
    out["stands"] = "stands"
    return out


def review(
    data: PatientData, profile: PatientProfile | None = None, params: tr.TrendParams | None = None
) -> tr.Review:
    return tr.review(
        series(data),
        latest_tests(data, profile),
        adherence_pct=[float(s["adherence_pct"]) for s in data.sessions if "adherence_pct" in s],
        session_times_s=data.session_times_s,
        params=params,
        units=units(),
        labels=LABELS,
    )


def evaluate_cohort(points: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Any]:
    """Review every seeded patient and compare with the known truth (poise.history): the
    share of worsening patients flagged, of expected improvements reported, of stable
    patients falsely flagged (a fall-risk reason) or given any verdict."""
    by_course: dict[str, dict[str, float]] = {}
    for patient, t in truth["patients"].items():
        rv = review(from_points(points, patient), profile(t["age_band"], t["sex"]))
        c = by_course.setdefault(
            t["course"],
            {
                "patients": 0,
                "flagged": 0,
                "any_verdict": 0,
                "expected": 0,
                "reported": 0,
                "right_reasons": 0,
            },
        )
        c["patients"] += 1
        c["flagged"] += rv.flagged
        c["any_verdict"] += bool(rv.improvements or rv.worsenings)
        codes = {r.code for r in rv.reasons}
        c["right_reasons"] += codes == set(t["expect_reasons"])
        improved = {s.metric for s, _t in rv.improvements}
        c["expected"] += len(t["expect_improved"])
        c["reported"] += len(improved & set(t["expect_improved"]))
    out: dict[str, Any] = {"patients": len(truth["patients"])}
    for course, c in sorted(by_course.items()):
        n = c["patients"]
        out[course] = {
            "patients": int(n),
            "flagged_share": c["flagged"] / n,
            "any_verdict_share": c["any_verdict"] / n,
            "exact_reasons_share": c["right_reasons"] / n,
            **(
                {"improvements_reported_share": c["reported"] / c["expected"]}
                if c["expected"]
                else {}
            ),
        }
    return out


def scopes(data: PatientData, rv: tr.Review) -> list[pr.Scope]:
    """The facts per session and the trend verdicts the progression rules look at: one
    scope per ROM exercise and side, one for the balance tests, one for the patient."""
    by_session = {str(s.get("session")): s for s in data.sessions}

    def session_facts(session: str) -> dict[str, float]:
        s = by_session.get(session, {})
        return {
            k: float(s[k])
            for k in ("pain_0_10", "fatigue_borg", "adherence_pct")
            if isinstance(s.get(k), int | float)
        }

    verdicts: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    patient_verdicts: dict[str, list[str]] = {}
    balance_verdicts: dict[str, list[str]] = {}
    for s, t in rv.trends:
        verdicts.setdefault((s.exercise, s.side, s.condition), {}).setdefault(s.metric, []).append(
            t.verdict
        )
        if s.exercise == "session":
            patient_verdicts.setdefault(s.metric, []).append(t.verdict)
        if s.exercise in SWAY_EXERCISES or s.exercise == TANDEM:
            balance_verdicts.setdefault(s.metric, []).append(t.verdict)
    out: list[pr.Scope] = []
    rom: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in data.trials:
        if EXERCISES.get(str(r.get("exercise")), ("", ""))[0] == "rom":
            rom.setdefault((str(r["exercise"]), str(r.get("side", "none"))), []).append(r)
    for (ex, side), rows in sorted(rom.items()):
        facts = []
        for r in rows:
            f = session_facts(str(r.get("session")))
            if isinstance(r.get("rom_deg"), int | float):
                f["rom_deg"] = float(r["rom_deg"])
                if isinstance(r.get("target_rom_deg"), int | float):
                    f["rom_margin_deg"] = float(r["rom_deg"]) - float(r["target_rom_deg"])
            if r.get("rep_count"):
                f["correct_pct"] = 100.0 * float(r.get("correct_count", 0)) / float(r["rep_count"])
            facts.append(f)
        label = ex if side == "none" else f"{ex} ({side})"
        out.append(pr.Scope("rom", label, facts, verdicts.get((ex, side, "none"), {})))
    tandem = [r for r in data.trials if r.get("exercise") == TANDEM and "hold_s" in r]
    out.append(
        pr.Scope(
            "balance",
            "balance",
            [
                {**session_facts(str(r.get("session"))), "tandem_hold_s": float(r["hold_s"])}
                for r in tandem
            ],
            balance_verdicts,
        )
    )
    out.append(
        pr.Scope(
            "patient",
            "patient",
            [session_facts(str(s.get("session"))) for s in data.sessions],
            patient_verdicts,
        )
    )
    return out


def suggestions(
    data: PatientData, rv: tr.Review, rules: pr.Rules | None = None
) -> list[pr.Suggestion]:
    return pr.suggest(rules or pr.default_rules(), scopes(data, rv))
