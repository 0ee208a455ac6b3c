"""The sample report in docs/samples, from a seeded history (no services needed)::

    python -m poise.report.sample docs/samples

Three patients (seed 0, twelve weeks ending 2026-12-01); the report of the one who
worsens, as HTML and PDF, and a few of its FHIR Observations in docs/fhir.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from poise import export, history
from poise.report import data as d
from poise.report import render

END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def main(folder: Path, pdf: bool = True) -> list[Path]:
    end_ns = int(END.timestamp()) * 10**9
    points, truth = history.generate(history.HistoryConfig(patients=3, seed=0, end_ns=end_ns))
    patient, info = next((p, t) for p, t in truth["patients"].items() if t["course"] == "worsening")
    since_s = END.timestamp() - 12 * 7 * 86400.0
    data = d.from_points(points, patient, since_s, END.timestamp())
    model = render.build(data, d.profile(info["age_band"], info["sex"]))
    exts = (".html", ".pdf") if pdf else (".html",)
    out = [render.write(model, folder / f"report-{patient}{ext}") for ext in exts]
    bundle = export.fhir_bundle(data)
    kinds: dict[str, dict[str, object]] = {}
    for e in bundle["entry"]:
        code = e["resource"]["code"]
        key = code["coding"][0]["code"]
        kinds.setdefault(key, e)
    bundle["entry"] = [kinds[k] for k in sorted(kinds)]
    example = folder.parent / "fhir" / "example-bundle.json"
    example.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [*out, example]


if __name__ == "__main__":
    for p in main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/samples")):
        print(p)
