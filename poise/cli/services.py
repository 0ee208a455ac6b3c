"""``poise stack`` and ``poise ingest``: the local services and the ingest service."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, hostport, influx_auth, mqtt_credentials, positive


def cmd_stack(args: argparse.Namespace) -> int:
    from poise.stack import LocalStack, StackError, down

    try:
        if args.action == "up":
            info = LocalStack(args.dir, database=args.database).start(detached=True)
            print(json.dumps(info.public()))
        else:
            stopped = down(args.dir)
            print(json.dumps({"stopped": stopped}))
    except StackError as exc:
        print(f"poise stack {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from poise.core.influx import InfluxV1
    from poise.ingest import Ingest, IngestParams

    user, password = mqtt_credentials("ingest")
    influx = InfluxV1(args.influx, args.database, influx_auth("ingest"))
    if args.nats:
        from poise.jetstream.ingest import NatsIngest, NatsIngestParams, run_forever

        logging.getLogger("poise.ingest").info(
            "ingesting from JetStream %s into %s database %s", args.nats, args.influx, args.database
        )
        nats_ingest = NatsIngest(args.nats, influx, user=user, password=password,
                                 params=NatsIngestParams(durable=args.client_id))
        print(json.dumps(run_forever(nats_ingest, args.stats_every_s)))
        return 0
    if args.mqtt is None:
        raise UsageError("give --mqtt HOST:PORT (Mosquitto) or --nats URL (NATS JetStream)")
    host, port = args.mqtt
    params = IngestParams(
        batch_samples=args.batch_samples, group=args.group, session_expiry_s=args.session_expiry_s
    )
    ingest = Ingest(
        host,
        port,
        influx,
        client_id=args.client_id,
        params=params,
        username=user,
        password=password,
    )
    log = logging.getLogger("poise.ingest")
    ingest.start()
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
        "configs under DIR, prints one JSON object with their addresses, and returns leaving "
        "them running; 'down' stops them.",
    )
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--dir", type=Path, required=True, help="folder for configs, data and logs")
    p.add_argument("--database", default="poise", help="InfluxDB database name (default poise)")
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
    p.set_defaults(func=cmd_ingest)
