"""``poise patient``: what a clinic does for one patient's data as a whole (erasure)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from poise.cli.common import _secret, fail, influx_auth, print_json


def cmd_forget(args: argparse.Namespace) -> int:
    from poise.core.influx import InfluxError, InfluxV1
    from poise.forget import ForgetError, forget_clinical, forget_influx

    report: dict[str, Any] = {"patient": args.patient, "site": args.site, "dry_run": args.dry_run}
    try:
        with InfluxV1(args.influx, args.database, influx_auth("admin")) as influx:
            report["influx"] = forget_influx(influx, args.patient, args.site, dry_run=args.dry_run)
    except ForgetError as exc:
        return fail("patient forget", str(exc), 2)
    except InfluxError as exc:
        return fail("patient forget", str(exc), 2 if not exc.retryable else 1)
    try:
        report["clinical"] = forget_clinical(
            args.patient,
            args.site,
            args.console_data,
            _secret("POISE_CONSOLE_DB_URL"),
            dry_run=args.dry_run,
        )
    except Exception as exc:  # the other store: report what was done so far, then fail
        report["clinical"] = {"store": "console", "error": type(exc).__name__}
        print_json(report)
        detail = str(exc) if isinstance(exc, ForgetError) else type(exc).__name__
        return fail(
            "patient forget",
            f"InfluxDB done, but the clinical records could not be erased ({detail}); "
            "run it again once fixed",
            1,
        )
    print_json(report)
    return 0


ORDER = 65  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "patient",
        help="one patient's data as a whole: forget (erase) it",
        description="Commands on everything stored about one (pseudonymous) patient.",
    )
    psub = p.add_subparsers(dest="patient_command", required=True, metavar="ACTION")
    f = psub.add_parser(
        "forget",
        help="erase a patient's raw and derived data and clinical records",
        description="Remove every raw sample and derived metric of PATIENT from InfluxDB "
        "(all measurements and retention policies) and, with --console-data, the patient's "
        "clinical records in the console's store. Prints a JSON report of what was removed; "
        "running it again removes nothing and says so. Needs the admin login "
        "(POISE_ADMIN_INFLUX_USER / POISE_ADMIN_INFLUX_PASSWORD[_FILE]).",
    )
    f.add_argument("patient", help="the patient's pseudonymous id")
    f.add_argument("--influx", required=True, metavar="URL", help="e.g. http://127.0.0.1:8086")
    f.add_argument("--database", default="poise", help="database (default poise)")
    f.add_argument("--site", default=None, help="only this site's data of the patient")
    f.add_argument(
        "--console-data",
        type=Path,
        metavar="DIR",
        help="the console's records folder (as given to poise console --data; or set "
        "POISE_CONSOLE_DB_URL): erase the patient's clinical records there too",
    )
    f.add_argument(
        "--dry-run", action="store_true", help="count what would be removed, remove nothing"
    )
    f.set_defaults(func=cmd_forget, command="patient forget")
