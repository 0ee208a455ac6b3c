"""How well the trend review finds the known truth of seeded cohorts::

    python -m poise.report.cohort --patients 60 --seeds 5 --effects 1 0.5 0.25

For each effect size (1 = the courses of poise.history; 0.5 = changes half as large) and
seed, a cohort is generated and every patient reviewed (with its age band and sex, as the
report has them). Prints, per effect size, the mean over the seeds of: worsening patients
flagged, expected improvements reported, stable patients flagged (false flags) and stable
patients given any verdict. docs/reports.md quotes the output.
"""

from __future__ import annotations

import argparse
import json
import statistics

from poise import history
from poise.report.data import evaluate_cohort


def run(patients: int, seeds: int, effects: list[float]) -> list[dict[str, float]]:
    out = []
    for effect in effects:
        rows = [
            evaluate_cohort(
                *history.generate(history.HistoryConfig(patients=patients, seed=s, effect=effect))
            )
            for s in range(seeds)
        ]

        def mean(course: str, key: str, rows: list[dict[str, object]] = rows) -> float:
            return statistics.fmean(float(r[course][key]) for r in rows)  # type: ignore[index]

        out.append(
            {
                "effect": effect,
                "patients": patients * seeds,
                "worsening_flagged": mean("worsening", "flagged_share"),
                "worsening_exact_reasons": mean("worsening", "exact_reasons_share"),
                "improvements_reported": mean("improving", "improvements_reported_share"),
                "improving_flagged": mean("improving", "flagged_share"),
                "stable_flagged": mean("stable", "flagged_share"),
                "stable_any_verdict": mean("stable", "any_verdict_share"),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("::")[0])
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--effects", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    a = ap.parse_args()
    for row in run(a.patients, a.seeds, a.effects):
        print(json.dumps({k: round(v, 3) for k, v in row.items()}))


if __name__ == "__main__":
    main()
