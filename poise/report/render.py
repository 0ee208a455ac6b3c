"""The progress report: one Jinja2 template for screen and paper (HTML; PDF through
WeasyPrint, no browser), plots as SVG, words that say what changed, by how much, against
which threshold."""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import progression as pr
from analysis import trends as tr
from poise.report import data as d
from poise.report import plots

TEMPLATE = "report.html.j2"
REPORT_VERSION = "report-1.0"

METRIC_NAMES = {
    "rms_m_s2": "trunk sway (RMS)",
    "jerk_m2_s6": "sway jerk",
    "path_rate_m_s3": "sway path rate",
    "hold_s": "tandem stance hold",
    "stands": "30 s chair stand",
    "tug_s": "Timed Up and Go",
    "rom_deg": "range of motion",
    "pain_0_10": "pain",
    "fatigue_borg": "fatigue (Borg)",
    "adherence_pct": "adherence",
}
# normal active ROM for orientation (docs/metrics.md), degrees
NORMAL_ROM_DEG = {
    "rom/hip_flexion": 120.0,
    "rom/knee_flexion": 135.0,
    "rom/ankle_dorsiflexion": 20.0,
    "rom/shoulder_flexion": 180.0,
    "rom/shoulder_abduction": 180.0,
    "rom/elbow_flexion": 145.0,
}


def condition_words(condition: str) -> str:
    return "" if condition in ("", "none") else tr.condition_words(condition)


def series_label(s: tr.Series) -> str:
    name = METRIC_NAMES.get(s.metric, s.metric)
    where = []
    if s.exercise not in ("session", d.TANDEM, "tug", "chair_stand_30s"):
        where.append(s.exercise.replace("rom/", "").replace("_", " "))
    if s.side not in ("", "none"):
        where.append(s.side)
    cond = condition_words(s.condition)
    if cond:
        where.append(cond)
    return f"{name} ({'; '.join(where)})" if where else name


def _num(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    text = f"{x:.{digits}g}"
    return f"{text} {unit}".strip()


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def change_sentence(s: tr.Series, t: tr.Trend, unit: str) -> str:
    """One plain sentence: what changed, by how much, against which threshold."""
    word = {"improved": "improved", "worsened": "worsened"}.get(t.verdict, "changed")
    pct = f" ({t.change_pct:+.0f} %)" if math.isfinite(t.change_pct) else ""
    mdc_from = "the patient's own baseline" if t.mdc_source == "own_baseline" else "defaults"
    return (
        f"{_upper_first(series_label(s))} {word}: from {_num(t.baseline, unit)} to "
        f"{_num(t.latest, unit)}{pct}, beyond the minimal detectable change of "
        f"{_num(t.mdc, unit)} (from {mdc_from}); trend {t.slope_per_week:+.3g} {unit}/week, "
        f"Mann-Kendall p = {t.mk_p:.2g}."
    )


def date_text(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%Y-%m-%d")


@dataclass
class Figure:
    number: int
    svg: str
    caption: str

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode()).decode()


@dataclass
class Model:
    patient: str
    profile: d.PatientProfile
    period: tuple[str, str]
    weeks: float
    generated: str
    review: tr.Review
    suggestions: list[pr.Suggestion]
    changes: list[tuple[str, str]]  # (verdict, sentence)
    trend_rows: list[dict[str, str]]
    session_rows: list[dict[str, str]]
    figures: list[Figure] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    rules_source: str = ""
    chair_norm_unknown: bool = False  # chair stands done, but no age band and sex to judge
    sway_excluded: int = 0  # quiet-stance trials left out of the sway trends (quality flags)


def _figures(data: d.PatientData, rv: tr.Review, profile: d.PatientProfile) -> list[Figure]:
    units = d.units()
    t0 = data.since_s
    figs: list[Figure] = []

    def add(svg: str, caption: str) -> None:
        figs.append(Figure(len(figs) + 1, svg, caption))

    by_key = {s.key: (s, t) for s, t in rv.trends}
    for s, t in rv.trends:
        if s.exercise in d.SWAY_EXERCISES and s.metric == "rms_m_s2":
            add(
                plots.trend_plot(s, t, t0, "trunk sway RMS (m/s²)"),
                f"Trunk sway in quiet stance, {condition_words(s.condition) or 'all'}: one "
                "point per session; the shaded band is the baseline ± the minimal detectable "
                "change (MDC95); a point outside it is a change larger than the measurement "
                "error.",
            )
    for s, t in rv.trends:
        if s.metric == "rom_deg":
            target = next(
                (
                    float(r["target_rom_deg"])
                    for r in reversed(data.trials)
                    if r.get("exercise") == s.exercise and "target_rom_deg" in r
                ),
                None,
            )
            refs = []
            if target is not None:
                refs.append((target, f"target {target:g}°", "--"))
            normal = NORMAL_ROM_DEG.get(s.exercise)
            if normal is not None:
                refs.append((normal, f"normal active range {normal:g}°", ":"))
            add(
                plots.trend_plot(s, t, t0, "largest ROM per session (deg)", lines=refs),
                f"Range of motion, {series_label(s)}: against the prescribed target and the "
                "normal active range.",
            )
    steadi: list[tuple[str, Any, Any, list[tuple[float, str, str]], str]] = []
    for key, ylabel, refs in (
        (("hold_s", d.TANDEM, "none", "none"), "tandem hold (s)", [(10.0, "10 s", "--")]),
        (
            ("stands", "chair_stand_30s", "none", "none"),
            "chair stands (in 30 s)",
            [(float(profile.chair_stand_norm), "norm for age and sex", "--")]
            if profile.chair_stand_norm
            else [],
        ),
        (("tug_s", "tug", "none", "none"), "TUG (s)", [(12.0, "12 s", "--")]),
    ):
        s_t = by_key.get(key)
        steadi.append(
            (ylabel, s_t[0].t_s if s_t else (), s_t[0].values if s_t else (), refs, "line")
        )
    add(
        plots.panels_plot(steadi, t0),
        "STEADI tests against their thresholds: tandem stance held under 10 s, a chair-stand "
        "score below the CDC norm for age and sex, and a Timed Up and Go of 12 s or more each "
        "mean an increased fall risk.",
    )
    times = [float(s["time_s"]) for s in data.sessions]
    active = [float(s.get("active_s", math.nan)) / 60 for s in data.sessions]
    adherence = [float(s.get("adherence_pct", math.nan)) for s in data.sessions]
    weeks_active = tr.weekly(times, active, t0)
    weekly_sessions: dict[int, int] = {}
    for t_s in times:
        w = int((t_s - t0) // tr.WEEK_S)
        weekly_sessions[w] = weekly_sessions.get(w, 0) + 1
    wk = sorted(weekly_sessions)
    add(
        plots.panels_plot(
            [
                ("sessions per week", wk, [weekly_sessions[w] for w in wk], [], "bar"),
                (
                    "active min per session",
                    [w for w, _ in weeks_active],
                    [v for _, v in weeks_active],
                    [],
                    "bar",
                ),
                ("adherence (%)", times, adherence, [(100.0, "all prescribed", ":")], "line"),
            ],
            t0,
        ),
        "Intensity and adherence per week: sessions attended, active minutes (light intensity "
        "or above) per session, and the share of prescribed exercises done.",
    )
    pain = [float(s.get("pain_0_10", math.nan)) for s in data.sessions]
    fatigue = [float(s.get("fatigue_borg", math.nan)) for s in data.sessions]
    add(
        plots.panels_plot(
            [
                ("pain (0-10)", times, pain, [], "line"),
                ("fatigue (Borg 6-20)", times, fatigue, [], "line"),
            ],
            t0,
        ),
        "Pain and fatigue as the patient reported them after each session.",
    )
    del units
    return figs


def _session_rows(data: d.PatientData) -> list[dict[str, str]]:
    trials_by: dict[str, list[dict[str, Any]]] = {}
    for r in data.trials:
        trials_by.setdefault(str(r.get("session")), []).append(r)
    rows = []
    for s in data.sessions:
        ts = trials_by.get(str(s.get("session")), [])

        def pick(ex: str, key: str, rows: list[dict[str, Any]] = ts) -> Any:
            return next((r[key] for r in rows if r.get("exercise") == ex and key in r), None)

        roms = [float(r["rom_deg"]) for r in ts if "rom_deg" in r]
        rows.append(
            {
                "date": date_text(float(s["time_s"])),
                "session": str(s.get("session", "")),
                "trials": str(s.get("trials", len(ts))),
                "duration": _num(float(s.get("duration_s", math.nan)) / 60, "", 2),
                "active": _num(float(s.get("active_s", math.nan)) / 60, "", 2),
                "rom": _num(max(roms) if roms else None, "", 3),
                "tandem": _num(pick(d.TANDEM, "hold_s")),
                "stands": _num(pick("chair_stand_30s", "stands")),
                "tug": _num(pick("tug", "tug_s")),
                "pain": _num(s.get("pain_0_10")),
                "fatigue": _num(s.get("fatigue_borg")),
                "adherence": _num(s.get("adherence_pct")),
            }
        )
    return rows


def _changes(rv: tr.Review, units: dict[str, str]) -> list[tuple[str, str]]:
    """One sentence per real change; the sway metrics of one condition that agree are one
    sentence (the first tested, RMS, with the others named)."""
    out: list[tuple[str, str]] = []
    done: set[tuple[str, str, str, str]] = set()
    items = [*rv.worsenings, *rv.improvements]
    for s, t in items:
        group = (s.exercise, s.condition, s.side, t.verdict)
        if s.metric in tr.SWAY_REVIEW_METRICS:
            if group in done:
                continue
            done.add(group)
            agree = [
                METRIC_NAMES.get(o.metric, o.metric)
                for o, ot in items
                if o is not s
                and o.metric in tr.SWAY_REVIEW_METRICS
                and (o.exercise, o.condition, o.side, ot.verdict) == group
            ]
            sentence = change_sentence(s, t, units.get(s.metric, ""))
            if agree:
                sentence += f" {_upper_first(' and '.join(agree))} agree."
            out.append((t.verdict, sentence))
        else:
            out.append((t.verdict, change_sentence(s, t, units.get(s.metric, ""))))
    return out


def build(
    data: d.PatientData,
    profile: d.PatientProfile | None = None,
    rules: pr.Rules | None = None,
    params: tr.TrendParams | None = None,
    generated_s: float | None = None,
) -> Model:
    """Everything the template shows, computed from the patient's data (pure but for
    matplotlib)."""
    profile = profile or d.PatientProfile()
    rules = rules or pr.default_rules()
    rv = d.review(data, profile, params or rules.trend_params())
    units = d.units()
    changes = _changes(rv, units)
    trend_rows = [
        {
            "what": series_label(s),
            "n": str(t.n),
            "baseline": _num(t.baseline, units.get(s.metric, "")),
            "latest": _num(t.latest, units.get(s.metric, "")),
            "change": (f"{t.change_pct:+.0f} %" if math.isfinite(t.change_pct) else "–"),
            "slope": _num(t.slope_per_week),
            "mdc": _num(t.mdc) + (" (own)" if t.mdc_source == "own_baseline" else " (default)"),
            "p": f"{t.mk_p:.2g}",
            "verdict": t.verdict.replace("_", " "),
        }
        for s, t in rv.trends
    ]
    versions = sorted(
        {str(r.get("algorithm_version")) for r in (*data.trials, *data.sessions)}
        | {tr.ALGORITHM_VERSION, REPORT_VERSION}
    )
    return Model(
        patient=data.patient,
        profile=profile,
        period=(date_text(data.since_s), date_text(data.until_s)),
        weeks=(data.until_s - data.since_s) / tr.WEEK_S,
        generated=date_text(generated_s if generated_s is not None else data.until_s),
        review=rv,
        suggestions=d.suggestions(data, rv, rules),
        changes=changes,
        trend_rows=trend_rows,
        session_rows=_session_rows(data),
        figures=_figures(data, rv, profile),
        versions=versions,
        rules_source=rules.source,
        sway_excluded=sum(d.sway_excluded(r) for r in data.trials),
        chair_norm_unknown=(
            (lt := d.latest_tests(data, profile)).chair_stands is not None
            and lt.chair_below_norm is None
        ),
    )


def stylesheet() -> str:
    """The report's CSS, for a page that serves it as a file (``to_html(css_href=...)``):
    a strict Content-Security-Policy (``style-src 'self'``) refuses inline styles."""
    from importlib import resources

    return resources.files("poise.report").joinpath("templates/report.css").read_text("utf-8")


def to_html(model: Model, css_href: str | None = None) -> str:
    """The report as one HTML document: the style inline (standalone file, PDF), or linked
    from ``css_href``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("poise.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(m=model, css_href=css_href)


def to_pdf(html: str) -> bytes:
    import logging

    import weasyprint

    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)  # step-by-step chatter
    pdf: bytes = weasyprint.HTML(string=html).write_pdf()
    return pdf


def write(model: Model, out_path: Path | str) -> Path:
    """``.html`` or ``.pdf`` by the extension; readable by its owner only (health data)."""
    from poise.export import private

    out = Path(out_path)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ValueError(f"{out}: the report is written as .html or .pdf, not {suffix!r}")
    html = to_html(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        private(out).write_bytes(to_pdf(html))
    else:
        private(out).write_text(html, encoding="utf-8")
    return out
