"""``poise stack`` and ``poise ingest``: the local services and the ingest service."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from poise.cli.common import (
    UsageError,
    fail,
    hostport,
    influx_auth,
    mqtt_ca,
    mqtt_credentials,
    positive,
)


def cmd_stack(args: argparse.Namespace) -> int:
    from poise.stack import LocalStack, StackError, StackRunningError, down

    try:
        if args.action == "up":
            stack = LocalStack(
                args.dir,
                database=args.database,
                sites=args.site or ["demo", "clinic-a"],
                tls=args.tls,
                raw_retention=args.raw_retention,
                derived_retention=args.derived_retention,
                broker=args.broker,
            )
            try:
                info = stack.start(detached=True).public()
            except StackRunningError as exc:
                if not exc.complete:
                    raise
                # Up twice on one folder: the running stack is reused, never a second one
                # on the same data files.
                print(f"poise stack up: {exc}; reusing it", file=sys.stderr)
                state = exc.state
                info = {
                    "mqtt": {
                        "host": state["mqtt_host"],
                        "port": state["mqtt_port"],
                        "tls": state.get("tls", False),
                    },
                    "influx": {"url": state["influx_url"], "database": state["database"]},
                    "dir": state["dir"],
                    "env": state.get("env", {}),
                    "reused": True,
                }
                if state.get("nats_url"):
                    info["nats"] = {"url": state["nats_url"]}
            print(json.dumps(info))
        elif args.action == "env":
            from poise.stack import STATE_FILE, env_for_site

            if args.site:
                env = env_for_site(args.dir, args.site[-1])
            else:
                state_path = Path(args.dir).resolve() / STATE_FILE
                if not state_path.exists():
                    raise StackError(
                        f"no stack recorded in {state_path}; start one: poise stack up"
                    )
                env = json.loads(state_path.read_text()).get("env", {})
            for key, value in sorted(env.items()):
                print(f"export {key}={shlex.quote(value)}")
        else:
            stopped = down(args.dir)
            print(json.dumps({"stopped": stopped}))
    except StackError as exc:
        print(f"poise stack {args.action}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad site id
        print(f"poise stack {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from poise.core.influx import InfluxError, InfluxV1
    from poise.ingest import Ingest, IngestParams

    user, password = mqtt_credentials("ingest")
    influx = InfluxV1(args.influx, args.database, influx_auth("ingest"))
    if args.nats:
        from poise.jetstream.ingest import NatsIngest, NatsIngestParams, run_forever

        logging.getLogger("poise.ingest").info(
            "ingesting from JetStream %s into %s database %s", args.nats, args.influx, args.database
        )
        nats_ingest = NatsIngest(
            args.nats,
            influx,
            user=user,
            password=password,
            params=NatsIngestParams(durable=args.client_id),
        )
        print(json.dumps(run_forever(nats_ingest, args.stats_every_s)))
        return 0
    if args.mqtt is None:
        raise UsageError("give --mqtt HOST:PORT (Mosquitto) or --nats URL (NATS JetStream)")
    host, port = args.mqtt
    params = IngestParams(
        batch_samples=args.batch_samples,
        group=args.group,
        session_expiry_s=args.session_expiry_s,
        raw_retention=args.raw_retention,
        derived_retention=args.derived_retention,
    )
    ingest = Ingest(
        host,
        port,
        influx,
        client_id=args.client_id,
        params=params,
        username=user,
        password=password,
        tls_ca=mqtt_ca("ingest"),
    )
    log = logging.getLogger("poise.ingest")
    try:
        ingest.start()
    except InfluxError as exc:  # refused for good: wrong login, missing rights or database
        return fail("ingest", str(exc), 2)
    log.info(
        "ingesting %s from %s:%d into %s database %s",
        ingest.subscription,
        host,
        port,
        args.influx,
        args.database,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(args.stats_every_s):
        log.info("stats %s", json.dumps(ingest.stats.as_dict()))
    ingest.stop()
    print(json.dumps(ingest.stats.as_dict()))
    return 0


ORDER = 20  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "stack",
        help="start or stop local Mosquitto and InfluxDB (no Docker needed)",
        description="'up' starts Mosquitto and influxd on free loopback ports with generated "
        "configs under DIR, secure from the start: one password per role under DIR/secrets "
        "(owner-only files), no anonymous access, the role ACL, InfluxDB auth on. It prints "
        "one JSON object with the addresses and an 'env' object of POISE_* variables, and "
        "returns leaving the services running; run again on the same DIR it reuses them. "
        "'env' prints those variables as export lines (eval \"$(poise stack env --dir DIR)\"); "
        "'down' stops every service of DIR. docs/security.md explains the roles.",
    )
    p.add_argument("action", choices=["up", "down", "env"])
    p.add_argument("--dir", type=Path, required=True, help="folder for configs, data and logs")
    p.add_argument("--database", default="poise", help="InfluxDB database name (default poise)")
    p.add_argument(
        "--site",
        action="append",
        help="'up': a site whose gateways may publish (repeat for more; default demo and "
        "clinic-a, the sites of poise simulate and of the example gateway config); the first "
        "is the gateway login in 'env'. 'env --site S': the gateway login of site S (made "
        "when new)",
    )
    p.add_argument(
        "--broker",
        choices=["mosquitto", "nats"],
        default="mosquitto",
        help="mosquitto (one clinic) or nats: nats-server with JetStream, its MQTT listener "
        "for gateways and frames partitioned by patient for scale-out (docs/deployment.md); "
        "the printed JSON then has a 'nats' object with its url (default mosquitto)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="make a CA and server certificate under DIR/tls and serve MQTT and HTTP over TLS only",
    )
    p.add_argument(
        "--raw-retention",
        default="30d",
        help="how long raw samples are kept when the database is created (InfluxDB duration, "
        "default 30d); an existing policy is never changed",
    )
    p.add_argument(
        "--derived-retention",
        default="INF",
        help="how long derived metrics are kept when created (default INF: forever)",
    )
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser(
        "ingest",
        help="write raw frames from MQTT into InfluxDB (at least once, idempotent)",
        description="Subscribe to poise/v1/raw/+/+/+ and write every sample to InfluxDB "
        "through its v1 HTTP API. A frame is acknowledged only after InfluxDB accepted it. "
        "Runs until SIGINT/SIGTERM, then prints its counters as JSON.",
    )
    broker = p.add_mutually_exclusive_group(required=True)
    broker.add_argument("--mqtt", type=hostport, metavar="HOST:PORT", help="Mosquitto broker")
    broker.add_argument(
        "--nats",
        metavar="URL",
        help="consume the partitioned JetStream stream instead (e.g. nats://127.0.0.1:4222); "
        "replicas share one durable consumer named by --client-id",
    )
    p.add_argument("--influx", required=True, metavar="URL", help="e.g. http://127.0.0.1:8086")
    p.add_argument("--database", default="poise", help="database (default poise)")
    p.add_argument(
        "--client-id",
        default="poise-ingest",
        help="MQTT client id; keep it stable so the broker keeps this ingest's queue (default poise-ingest)",
    )
    p.add_argument(
        "--group",
        default=None,
        help="shared-subscription group for several ingest replicas (see docs/deployment.md)",
    )
    p.add_argument(
        "--batch-samples", type=int, default=5000, help="samples per InfluxDB write (default 5000)"
    )
    p.add_argument(
        "--session-expiry-s",
        type=int,
        default=7 * 24 * 3600,
        help="how long the broker keeps queueing for this ingest while it is away (default 7 days)",
    )
    p.add_argument(
        "--stats-every-s", type=positive, default=30.0, help="log counters this often (default 30)"
    )
    p.add_argument(
        "--raw-retention",
        default="30d",
        help="retention of raw samples if the ingest creates the database (default 30d); an "
        "existing retention policy is never changed",
    )
    p.add_argument(
        "--derived-retention",
        default="INF",
        help="retention of derived metrics if created (default INF: kept)",
    )
    p.set_defaults(func=cmd_ingest)
