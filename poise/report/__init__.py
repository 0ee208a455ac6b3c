"""Progress reports of one patient: HTML or PDF from the derived data in InfluxDB.

The API the console and the CLI use (docs/reports.md)::

    from poise.core.influx import InfluxV1
    from poise.report import PatientProfile, render_report

    with InfluxV1(url, database, auth) as db:
        path = render_report(db, "p001", "out/p001.pdf", since="12w",
                             profile=PatientProfile(age_band="75-79", sex="female"))

``report_html`` and ``report_pdf`` return the document instead of writing it (a web page
can serve them directly).
"""

from __future__ import annotations

import time
from pathlib import Path

from analysis.progression import Rules
from poise.core.influx import InfluxV1
from poise.report.data import PatientData, PatientProfile, load
from poise.report.render import Model, build, stylesheet, to_html, to_pdf, write

__all__ = [
    "PatientData",
    "PatientProfile",
    "period",
    "render_report",
    "report_html",
    "report_model",
    "report_pdf",
    "stylesheet",
]

WEEK_S = 7 * 86400.0


def period(since: str | float = "12w", until_s: float | None = None) -> tuple[float, float]:
    """(since_s, until_s): ``since`` is a period before ``until_s`` ("12w", "30d", weeks as
    a number) and ``until_s`` defaults to now."""
    from poise.history import parse_weeks

    end = time.time() if until_s is None else float(until_s)
    weeks = parse_weeks(since) if isinstance(since, str) else float(since)
    return end - weeks * WEEK_S, end


def report_model(
    influx: InfluxV1,
    patient: str,
    *,
    since: str | float = "12w",
    until_s: float | None = None,
    profile: PatientProfile | None = None,
    rules: Rules | None = None,
) -> Model:
    since_s, end_s = period(since, until_s)
    return build(load(influx, patient, since_s, end_s), profile, rules)


def report_html(
    influx: InfluxV1,
    patient: str,
    *,
    since: str | float = "12w",
    until_s: float | None = None,
    profile: PatientProfile | None = None,
    rules: Rules | None = None,
    css_href: str | None = None,
) -> str:
    """The report as HTML; with ``css_href`` the style is linked (serve ``stylesheet()``
    there) instead of inline, for pages under a strict Content-Security-Policy."""
    model = report_model(
        influx, patient, since=since, until_s=until_s, profile=profile, rules=rules
    )
    return to_html(model, css_href)


def report_pdf(
    influx: InfluxV1,
    patient: str,
    *,
    since: str | float = "12w",
    until_s: float | None = None,
    profile: PatientProfile | None = None,
    rules: Rules | None = None,
) -> bytes:
    model = report_model(
        influx, patient, since=since, until_s=until_s, profile=profile, rules=rules
    )
    return to_pdf(to_html(model))


def render_report(
    influx: InfluxV1,
    patient: str,
    out_path: Path | str,
    *,
    since: str | float = "12w",
    until_s: float | None = None,
    profile: PatientProfile | None = None,
    rules: Rules | None = None,
) -> Path:
    """Write the report of ``patient`` over the period to ``out_path`` (.html or .pdf)."""
    model = report_model(
        influx, patient, since=since, until_s=until_s, profile=profile, rules=rules
    )
    return write(model, out_path)
