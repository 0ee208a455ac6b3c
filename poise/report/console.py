"""The console's report hook: ``ConsoleConfig(report=console_report(...))``.

The console calls ``report(db, patient)`` with its records session and shows the HTML it
gets; the patient's age band and sex come from its records (for the chair-stand norm), the
data from InfluxDB, read as the console's role. The style is linked from ``css_href``
(the console's CSP refuses inline styles): serve ``poise.report.stylesheet()`` there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from poise.core.influx import InfluxV1
from poise.report import report_html
from poise.report.data import PatientProfile, profile


def console_report(
    influx: Callable[[], InfluxV1], since: str = "12w", css_href: str | None = None
) -> Callable[[Any, str], str]:
    """``influx`` makes a client (closed after each report)."""

    def report(db: Any, patient: str) -> str:
        from poise.console.db import Patient

        row = db.get(Patient, patient)
        prof = profile(row.age_band, row.sex) if row is not None else PatientProfile()
        with influx() as client:
            return report_html(client, patient, since=since, profile=prof, css_href=css_href)

    return report
