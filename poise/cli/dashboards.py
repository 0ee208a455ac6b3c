"""``poise dashboards push`` and ``poise dashboards check``: the Grafana dashboards."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from poise.cli.common import UsageError, _secret, influx_auth, print_json


def _grafana_credential() -> str | tuple[str, str]:
    token = _secret("POISE_GRAFANA_TOKEN")
    if token:
        return token
    user = _secret("POISE_GRAFANA_USER")
    if user:
        return (user, _secret("POISE_GRAFANA_PASSWORD") or "")
    raise UsageError(
        "no Grafana credential: set POISE_GRAFANA_TOKEN (a service account token with the "
        "Editor role, or POISE_GRAFANA_TOKEN_FILE naming a file that holds it), or "
        "POISE_GRAFANA_USER and POISE_GRAFANA_PASSWORD"
    )


def cmd_push(args: argparse.Namespace) -> int:
    from grafana_client.api import GrafanaApi
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaUnauthorizedError,
    )

    from dashboards.push import push

    if not args.grafana.startswith(("http://", "https://")):
        raise UsageError(
            f"--grafana: expected a URL such as https://grafana.example:3000, found {args.grafana!r}"
        )
    credential = _grafana_credential()
    api = GrafanaApi.from_url(args.grafana, credential=credential, timeout=args.timeout_s)

    def not_found(exc: Exception) -> bool:
        return isinstance(exc, GrafanaClientError) and exc.status_code == 404

    try:
        report = push(
            api,
            folder_uid=args.folder,
            folder_title=args.folder_title,
            datasource_uid=args.datasource_uid,
            with_alerts=not args.no_alerts,
            not_found=not_found,
        )
    except GrafanaUnauthorizedError:
        raise UsageError(f"{args.grafana} refused the credential (401)") from None
    except GrafanaClientError as exc:
        status = exc.status_code
        hint = " (the token needs the Editor role)" if status == 403 else ""
        raise UsageError(
            f"{args.grafana} refused a request ({status}){hint}: {exc.message}"
        ) from None
    except GrafanaException as exc:
        print(f"poise dashboards push: {args.grafana}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # the HTTP library's connection errors: say what, no traceback
        print(f"poise dashboards push: cannot reach {args.grafana}: {exc}", file=sys.stderr)
        return 1
    print_json(
        {
            "grafana": args.grafana,
            "folder": args.folder,
            "folder_created": report.folder_created,
            "dashboards": report.dashboards,
            "alert_rules_created": len(report.rules_created),
            "alert_rules_updated": len(report.rules_updated),
        }
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run every query of every dashboard on an InfluxDB, as Grafana would send it now."""
    from dashboards.build import DASHBOARDS
    from dashboards.check import panel_queries, resolve_variables
    from dashboards.interpolate import interpolate
    from dashboards.push import load_dashboards
    from poise.core.influx import InfluxError, InfluxV1

    failures = 0
    now_ms = int(time.time() * 1000)
    with InfluxV1(args.influx, args.database, influx_auth("reader")) as influx:

        def tag_values(q: str) -> list[str]:
            return sorted({row[1] for s in influx.query(q) for row in s.get("values", [])})

        try:
            docs = load_dashboards()
            for name in DASHBOARDS:
                doc = docs[name]
                options, chosen = resolve_variables(doc, tag_values, now_ms=now_ms)
                for var, values in options.items():
                    print_json({"dashboard": name, "variable": var, "values": len(values)})
                for pq in panel_queries(doc):
                    q = interpolate(
                        pq.query, from_ms=now_ms - pq.window_ms, to_ms=now_ms, variables=chosen
                    )
                    row: dict[str, Any] = {"dashboard": name, "panel": pq.panel, "ref": pq.ref_id}
                    try:
                        row["series"] = len(influx.query(q, epoch="ms"))
                    except InfluxError as exc:
                        if exc.retryable:
                            raise
                        failures += 1
                        row["error"] = str(exc)
                    print_json(row)
        except InfluxError as exc:
            print(f"poise dashboards check: {exc}", file=sys.stderr)
            return 1
    return 1 if failures else 0


ORDER = 65  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "dashboards",
        help="the Grafana dashboards: upload them to a Grafana, check their queries",
        description="The poise Grafana dashboards (generated JSON in dashboards/generated).",
    )
    dsub = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")

    push = dsub.add_parser(
        "push",
        help="upload the dashboards and alert rules to an existing Grafana",
        description="Upload the four poise dashboards and the alert rules to a Grafana through "
        "its HTTP API. The credential comes from the environment: POISE_GRAFANA_TOKEN (or "
        "POISE_GRAFANA_TOKEN_FILE), else POISE_GRAFANA_USER and POISE_GRAFANA_PASSWORD.",
    )
    push.add_argument("--grafana", required=True, metavar="URL", help="Grafana's base URL")
    push.add_argument("--folder", default="poise", metavar="UID", help="folder uid (default poise)")
    push.add_argument("--folder-title", default="poise", help="folder title when it is created")
    push.add_argument(
        "--datasource-uid",
        metavar="UID",
        help="the uid of your InfluxDB (InfluxQL) data source, when it is not poise-influxdb",
    )
    push.add_argument("--no-alerts", action="store_true", help="dashboards only, no alert rules")
    push.add_argument("--timeout-s", type=float, default=10.0, help="per request (default 10)")
    push.set_defaults(func=cmd_push, command="dashboards push")

    check = dsub.add_parser(
        "check",
        help="run every dashboard query on an InfluxDB and report the series found",
        description="Run every variable, panel and annotation query of the dashboards on an "
        "InfluxDB, substituted as Grafana substitutes them. Exit 1 when a query fails. "
        "Credentials: POISE_READER_INFLUX_* or POISE_INFLUX_* from the environment.",
    )
    check.add_argument("--influx", default="http://127.0.0.1:8086", metavar="URL")
    check.add_argument("--database", default="poise")
    check.set_defaults(func=cmd_check, command="dashboards check")
