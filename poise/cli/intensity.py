"""``poise analyze intensity``: session intensity of an offline CSV recording.

A module of its own that adds one analysis to the ``analyze`` group (which ``analyze.py``
creates, ORDER 40, before this one runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, print_json, table

ORDER = 41  # right after `poise analyze`, which it extends


def cmd_intensity(args: argparse.Namespace) -> int:
    from analysis import intensity as it
    from poise.cli.analyze import _load_checked

    # units and signal sanity first, as for every analysis (docs/metrics.md, plausibility)
    rec, _report = _load_checked(args.file, args, needs_gyr=False)
    hr_params = None
    hr = None
    if (args.hr_rest is None) != (args.hr_max is None):
        raise UsageError("--hr-rest and --hr-max go together (resting and maximal heart rate)")
    if args.hr_rest is not None:
        if "hr_bpm" not in rec.extra:
            raise UsageError(
                f"{args.file}: --hr-rest/--hr-max ask for heart-rate zones, but the file has "
                "no hr_bpm column"
            )
        try:
            hr_params = it.HeartRateParams(rest_bpm=args.hr_rest, max_bpm=args.hr_max)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        hr = rec.extra["hr_bpm"]
    try:
        res = it.analyze(
            rec.time_s - rec.time_s[0],
            rec.acc,
            it.IntensityParams(placement=args.placement, epoch_s=args.epoch),
            hr,
            hr_params,
        )
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    if args.json:
        print_json(res)
        return 0
    print(
        f"Intensity of {args.file} ({res['epochs']} epochs of {res['epoch_s']:g} s, "
        f"{res['placement']} cut-points, {res['algorithm_version']})"
    )

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    rows = [
        ("duration_s", num(res["duration_s"]), "s"),
        ("active_s", num(res["active_s"]), "s"),
        *[(f"zones_s.{z}", num(v), "s") for z, v in res["zones_s"].items()],
        ("enmo_mean_mg", num(res["enmo_mean_mg"]), "mg"),
        ("mad_mean_mg", num(res["mad_mean_mg"]), "mg"),
        ("enmo_peak_1min_mg", num(res["enmo_peak_1min_mg"]), "mg"),
        ("load", num(res["load"]), "zone-weighted min"),
    ]
    if "heart_rate" in res:
        h = res["heart_rate"]
        rows += [(f"hrr_zones_s.{z}", num(v), "s") for z, v in h["hrr_zones_s"].items()]
        rows += [("hr_mean_bpm", num(h["hr_mean_bpm"]), "1/min"), ("trimp", num(h["trimp"]), "")]
    table(rows)
    return 0


def _analyze_group(sub: Any) -> Any:
    """The sub-command table of ``poise analyze``."""
    parser = sub.choices["analyze"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("poise analyze has no sub-commands")  # pragma: no cover


def add_commands(sub: Any) -> None:
    q = _analyze_group(sub).add_parser(
        "intensity",
        help="session intensity: ENMO, MAD, zones, active time, load (HR zones, TRIMP)",
        description="ENMO and MAD per epoch, zones with the placement's cut-points, active "
        "time, acceleration load and the peak 1-minute ENMO (docs/metrics.md, intensity). "
        "With an hr_bpm column and --hr-rest/--hr-max: time in %%HRR zones and Edwards TRIMP.",
    )
    q.add_argument("file", type=Path)
    from poise.cli.analyze import _add_unit_args

    _add_unit_args(q)
    q.add_argument(
        "--placement",
        choices=("lumbar", "wrist", "thigh"),
        default="lumbar",
        help="where the sensor sat: picks the cut-points (default lumbar)",
    )
    q.add_argument("--epoch", type=float, default=5.0, help="epoch length in s (default 5)")
    q.add_argument("--hr-rest", type=float, default=None, help="resting heart rate, 1/min")
    q.add_argument("--hr-max", type=float, default=None, help="maximal heart rate, 1/min")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_intensity)
