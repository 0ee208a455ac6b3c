"""``poise report`` and ``poise export``: a patient's progress as a document and as data;
and the ``--history`` option of ``poise simulate`` (seeded weeks of summaries)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, influx_auth

DAY_S = 86400.0


def add_history_options(p: argparse.ArgumentParser) -> None:
    """The options ``poise simulate --history`` adds (its other options keep their meaning:
    --patients, --seed, --site)."""
    g = p.add_argument_group(
        "seeded history",
        "With --history, no sensors are simulated: weeks of trial and session summaries (as "
        "the analysis worker writes them) go straight to InfluxDB, for patients who improve, "
        "stay stable and worsen in turn; the known truth is printed as JSON.",
    )
    g.add_argument("--history", metavar="PERIOD", default=None, help="e.g. 12w or 30d")
    g.add_argument("--influx", metavar="URL", default=None, help="e.g. http://127.0.0.1:8086")
    g.add_argument("--database", default="poise", help="InfluxDB database (default poise)")
    g.add_argument(
        "--until",
        default=None,
        metavar="DATE",
        help="the history ends at the end of this day, YYYY-MM-DD (default now); the same "
        "seed and day write the same points, so a rerun overwrites instead of adding",
    )
    g.add_argument(
        "--effect",
        type=float,
        default=1.0,
        help="scale of every course's change (default 1; 0.5 = subtler, 0 = all stable)",
    )


def simulate_history(args: argparse.Namespace) -> int:
    from poise import history
    from poise.core.ids import IdError
    from poise.core.influx import InfluxError, InfluxV1

    if not args.influx:
        raise UsageError("--history needs --influx URL (and --database, default poise)")
    try:
        weeks = history.parse_weeks(args.history)
    except ValueError as exc:
        raise UsageError(f"--history: {exc}") from None
    if not 0 <= args.effect <= 3:
        raise UsageError(f"--effect: expected 0 to 3, found {args.effect}")
    end_ns = time.time_ns()
    if args.until:
        try:
            day = dt.date.fromisoformat(args.until)
        except ValueError:
            raise UsageError(
                f"--until: expected a date like 2026-12-01, found {args.until!r}"
            ) from None
        end_ns = (
            int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp())
            * 10**9
        )
    cfg = history.HistoryConfig(
        patients=args.patients,
        weeks=weeks,
        end_ns=end_ns,
        site=args.site,
        seed=args.seed,
        effect=args.effect,
    )
    try:
        points, truth = history.generate(cfg)
    except IdError as exc:
        raise UsageError(str(exc)) from None
    try:
        with InfluxV1(args.influx, args.database, influx_auth("worker")) as db:
            db.ensure_schema()
            written = history.write(db, points)
    except InfluxError as exc:
        print(f"poise simulate: {exc}", file=sys.stderr)
        return 1
    truth["points_written"] = written
    print(json.dumps(truth))
    return 0


def _period(args: argparse.Namespace) -> tuple[float, float]:
    from poise.report import period

    until_s = None
    if args.until:
        try:
            day = dt.date.fromisoformat(args.until)
        except ValueError:
            raise UsageError(
                f"--until: expected a date like 2026-12-01, found {args.until!r}"
            ) from None
        until_s = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    try:
        return period(args.since, until_s)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def _patient(args: argparse.Namespace) -> str:
    from poise.core.ids import IdError, check_id

    try:
        return check_id("patient", args.patient)
    except IdError as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.progression import RulesError, load_rules
    from poise.core.influx import InfluxError, InfluxV1
    from poise.report import data as d
    from poise.report import render

    patient = _patient(args)
    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise UsageError(f"-o {out}: the report is written as .html or .pdf")
    since_s, until_s = _period(args)
    try:
        profile = d.profile(args.age_band, args.sex)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        rules = load_rules(args.rules) if args.rules else None
    except RulesError as exc:
        raise UsageError(str(exc)) from None
    try:
        with InfluxV1(args.influx, args.database, influx_auth("reader")) as db:
            data = d.load(db, patient, since_s, until_s)
    except InfluxError as exc:
        print(f"poise report: {exc}", file=sys.stderr)
        return 1
    if not data.trials and not data.sessions:
        raise UsageError(
            f"patient {patient} has no trial or session summaries between "
            f"{render.date_text(since_s)} and {render.date_text(until_s)}"
        )
    model = render.build(data, profile, rules)
    path = render.write(model, out)
    print(
        json.dumps(
            {
                "report": str(path),
                "patient": patient,
                "sessions": model.review.sessions,
                "flagged": model.review.flagged,
                "figures": len(model.figures),
            }
        )
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from poise import export
    from poise.core.influx import InfluxError, InfluxV1
    from poise.report import data as d

    patient = _patient(args)
    since_s, until_s = _period(args)
    out = (
        Path(args.output)
        if args.output
        else Path(f"{patient}-fhir.json" if args.format == "fhir" else f"{patient}-export")
    )
    if args.raw and args.format == "fhir":
        raise UsageError("--raw goes with --format csv or parquet (FHIR carries the summaries)")
    try:
        with InfluxV1(args.influx, args.database, influx_auth("reader")) as db:
            data = d.load(db, patient, since_s, until_s)
            # raw samples only where sessions were (or the whole period, without sessions)
            windows = export.session_windows(data) or [(since_s, until_s)]
            raw = list(export.raw_rows(db, patient, windows)) if args.raw else []
    except InfluxError as exc:
        print(f"poise export: {exc}", file=sys.stderr)
        return 1
    if not data.trials and not data.sessions and not raw:
        raise UsageError(f"patient {patient} has no data in the period")
    files = export.export(data, args.format, out, raw)
    print(
        json.dumps(
            {
                "files": [str(f) for f in files],
                "trials": len(data.trials),
                "sessions": len(data.sessions),
            }
        )
    )
    return 0


ORDER = 50  # place in `poise --help`


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", required=True, help="pseudonymous patient id")
    p.add_argument("--since", default="12w", help="period before --until: 12w, 30d (default 12w)")
    p.add_argument(
        "--until", default=None, help="last day of the period, YYYY-MM-DD (default today)"
    )
    p.add_argument("--influx", required=True, metavar="URL", help="e.g. http://127.0.0.1:8086")
    p.add_argument("--database", default="poise", help="InfluxDB database (default poise)")


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a patient's progress and fall-risk review as HTML or PDF",
        description="Trends against the minimal detectable change, STEADI flags with their "
        "reasons, progression suggestions, plots and every session, from the derived data "
        "in InfluxDB. The format follows the extension of -o (.html or .pdf). InfluxDB "
        "credentials of the reader role come from the environment.",
    )
    _common(p)
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="report.html or report.pdf"
    )
    p.add_argument("--age-band", default=None, help="shown in the header, e.g. 75-79")
    p.add_argument(
        "--sex", choices=("female", "male"), default=None, help="for the chair-stand norm"
    )
    p.add_argument(
        "--rules", type=Path, default=None, help="progression rules TOML (default: shipped)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "export",
        help="a patient's data as csv, parquet or FHIR R4 Observations",
        description="csv and parquet: trial and session summaries (and raw samples with --raw) "
        "into the folder -o; fhir: a Bundle of Observations, validated, to the file -o.",
    )
    _common(p)
    p.add_argument("--format", choices=export_formats(), required=True)
    p.add_argument(
        "-o", "--output", default=None, metavar="PATH", help="folder (csv, parquet) or file (fhir)"
    )
    p.add_argument("--raw", action="store_true", help="also the raw samples, per sensor")
    p.set_defaults(func=cmd_export)


def export_formats() -> tuple[str, ...]:
    return ("csv", "parquet", "fhir")
