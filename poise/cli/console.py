"""``poise console`` (the therapist's web console) and ``poise user`` (its staff accounts)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from poise.cli.common import (
    UsageError,
    _secret,
    hostport,
    influx_auth,
    mqtt_ca,
    mqtt_credentials,
)

DEFAULT_BIND = "127.0.0.1:8080"


def _db(args: argparse.Namespace) -> Any:
    from poise.console.db import open_db

    # a PostgreSQL URL carries a password: environment or a secret file, never an argument
    return open_db(args.data, _secret("POISE_CONSOLE_DB_URL"))


def _password(prompt_twice: bool = True) -> str:
    env = _secret("POISE_USER_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise UsageError(
            "no password: set POISE_USER_PASSWORD (or POISE_USER_PASSWORD_FILE) or run in a terminal"
        )
    first = getpass.getpass("password: ")
    if prompt_twice and getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    from poise.console import accounts

    factory = _db(args)
    try:
        with factory.begin() as db:
            if args.action == "add":
                staff = accounts.add_user(db, args.name, args.role, _password())
                print(f"user {staff.name} ({staff.role}) added")
            elif args.action == "password":
                accounts.set_password(db, args.name, _password())
                print(f"password of {args.name} changed; their open logins were closed")
            elif args.action == "unlock":
                accounts.unlock(db, args.name)
                print(f"user {args.name} unlocked")
            else:
                from sqlalchemy import select

                from poise.console.db import Staff, now_ns

                t = now_ns()
                for s in db.scalars(select(Staff).order_by(Staff.name)):
                    state = "locked" if s.locked_until_ns > t else "active" if s.active else "off"
                    print(f"{s.name:<32} {s.role:<10} {state}")
    except accounts.AccountError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from poise.console.server import serve
    from poise.core.ids import id_problem

    problem = id_problem("site", args.site)
    if problem is not None:
        raise UsageError(f"--site: {problem}")
    host, port = args.bind
    mqtt_host, mqtt_port = args.mqtt if args.mqtt else (None, None)
    user, password = mqtt_credentials("console")
    report = None
    if args.influx:
        from poise.console.server import report_renderer

        report = report_renderer(args.influx, args.database, influx_auth("console"))
    return serve(
        data_dir=args.data,
        db_url=_secret("POISE_CONSOLE_DB_URL"),
        host=host,
        port=port,
        site=args.site,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        mqtt_user=user,
        mqtt_password=password,
        mqtt_tls_ca=mqtt_ca("console"),
        report=report,
    )


ORDER = 60


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "console",
        help="the therapist's web console (room, patients, live sessions)",
        description="Serve the console: clinical records in DIR (SQLite, or PostgreSQL from "
        "POISE_CONSOLE_DB_URL), session events published and live scores read over MQTT "
        "(credentials POISE_CONSOLE_MQTT_USER/PASSWORD). Create the first account with "
        "'poise user add NAME --role admin --data DIR'.",
    )
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="records folder")
    p.add_argument(
        "--bind",
        type=hostport,
        default=hostport(DEFAULT_BIND),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_BIND}; put TLS in front for anything else)",
    )
    p.add_argument("--mqtt", type=hostport, default=None, metavar="HOST:PORT", help="broker")
    p.add_argument("--site", default="clinic", help="site id of this clinic (default clinic)")
    p.add_argument(
        "--influx",
        default=None,
        metavar="URL",
        help="InfluxDB with the derived data, for the patients' progress reports "
        "(credentials POISE_CONSOLE_INFLUX_USER/PASSWORD or _TOKEN)",
    )
    p.add_argument("--database", default="poise", help="InfluxDB database (default poise)")
    p.set_defaults(func=cmd_console)

    p = sub.add_parser(
        "user",
        help="staff accounts of the console: add, password, unlock, list",
        description="Manage console accounts. Passwords come from a prompt or from "
        "POISE_USER_PASSWORD (or the file POISE_USER_PASSWORD_FILE names), never from arguments.",
    )
    usub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, helptext in (
        ("add", "add an account"),
        ("password", "set a new password (closes the account's open logins)"),
        ("unlock", "unlock an account locked after failed sign-ins"),
        ("list", "list the accounts"),
    ):
        a = usub.add_parser(action, help=helptext)
        if action != "list":
            a.add_argument("name", help="login name (lower-case letters, digits, . _ -)")
        if action == "add":
            a.add_argument("--role", choices=("therapist", "admin"), required=True)
        a.add_argument("--data", type=Path, required=True, metavar="DIR", help="records folder")
        a.set_defaults(func=cmd_user)
