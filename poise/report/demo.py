"""The end of ``poise demo``: twelve weeks of seeded history for the demo patients (ids as
the simulation's, ``p001``...) and the report of one of them."""

from __future__ import annotations

import time
from pathlib import Path

from poise import history
from poise.core.influx import InfluxV1
from poise.report import render_report
from poise.report.data import profile


def demo_report(influx: InfluxV1, folder: Path, patients: int = 3, site: str = "demo") -> Path:
    """Seed the history (improving, stable, worsening in turn) and write the PDF report of
    the last worsening patient; returns its path."""
    points, truth = history.generate(
        history.HistoryConfig(
            patients=max(3, patients), prefix="p", site=site, end_ns=time.time_ns()
        )
    )
    history.write(influx, points)
    patient, info = next(
        (p, t) for p, t in reversed(truth["patients"].items()) if t["course"] == "worsening"
    )
    return render_report(
        influx,
        patient,
        folder / f"report-{patient}.pdf",
        since="12w",
        profile=profile(info["age_band"], info["sex"]),
    )
