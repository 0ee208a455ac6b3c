"""``poise report`` and ``poise export``: a patient's progress as a document and as data;
and the ``--history`` option of ``poise simulate`` (seeded weeks of summaries)."""

from __future__ import annotations

import argparse
import json
import sys
import time
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
    cfg = history.HistoryConfig(
        patients=args.patients,
        weeks=weeks,
        end_ns=time.time_ns(),
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


ORDER = 50  # place in `poise --help`


def add_commands(sub: Any) -> None:
    del sub  # report and export follow
