"""``poise worker`` (the live analysis service) and ``poise rescore`` (summaries again from
the raw samples, with the current algorithm versions)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, hostport, influx_auth, mqtt_ca, mqtt_credentials

ORDER = 25  # place in `poise --help`, beside ingest


def cmd_worker(args: argparse.Namespace) -> int:
    from poise.core.influx import InfluxV1
    from poise.worker.core import WorkerParams
    from poise.worker.service import ServiceParams, WorkerService

    user, password = mqtt_credentials("worker")
    influx = InfluxV1(args.influx, args.database, influx_auth("worker"))
    if args.nats:
        import os

        from poise.core.ids import IdError, check_id
        from poise.jetstream.worker import run_worker

        try:
            member = check_id("worker", args.member or f"w{os.getpid()}")
        except IdError as exc:
            raise UsageError(str(exc)) from None
        if args.ready_file is not None:
            args.ready_file.write_text("ready\n")
        stats = run_worker(args.nats, member, influx, user=user, password=password,
                           params=WorkerParams(ap_axis=args.ap_axis))
        influx.close()
        print(json.dumps(stats))
        return 0
    host, port = args.mqtt
    svc = WorkerService(
        host,
        port,
        influx,
        args.state,
        params=WorkerParams(ap_axis=args.ap_axis),
        service=ServiceParams(client_id=args.client_id),
        username=user,
        password=password,
        tls_ca=mqtt_ca("worker"),
    )
    try:
        svc.start()
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    if args.ready_file is not None:
        svc.subscribed.wait(30)
        args.ready_file.write_text("ready\n")
    done.wait()
    svc.stop()
    influx.close()
    print(
        json.dumps(
            {
                "messages": dict(svc.stats.messages),
                "points_written": svc.stats.points_written,
                "alerts": svc.stats.alerts,
                "summaries": svc.stats.summaries,
                "refused": dict(svc.core.refused),
            }
        )
    )
    return 0


def _since(text: str) -> int:
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2026-01-31 or 2026-01-31T08:00:00Z, found {text!r}"
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp() * 1e9)


def cmd_rescore(args: argparse.Namespace) -> int:
    from poise.core.ids import IdError, check_id
    from poise.core.influx import InfluxError, InfluxV1
    from poise.worker.rescore import rescore

    try:
        check_id("site", args.site)
        check_id("patient", args.patient)
    except IdError as exc:
        raise UsageError(str(exc)) from None
    with InfluxV1(args.influx, args.database, influx_auth("worker")) as influx:
        try:
            res = rescore(influx, args.site, args.patient, args.since, ap_axis=args.ap_axis)
        except InfluxError as exc:
            raise UsageError(str(exc)) from None
    print(json.dumps(res))
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="the live analysis worker: live scores, trial/session summaries, alerts",
        description="Subscribes to raw frames, session events and gateway status (QoS 1, "
        "persistent session); writes live scores, summaries and alerts to InfluxDB (retention "
        "policy 'derived') and publishes them on poise/v1/metrics/... and poise/v1/alerts/... "
        "Credentials: POISE_WORKER_MQTT_USER/PASSWORD, POISE_WORKER_INFLUX_USER/PASSWORD or "
        "_TOKEN (or the generic POISE_MQTT_*/POISE_INFLUX_*). See docs/worker.md.",
    )
    broker = p.add_mutually_exclusive_group(required=True)
    broker.add_argument("--mqtt", type=hostport, metavar="HOST:PORT", help="Mosquitto broker")
    broker.add_argument(
        "--nats",
        metavar="URL",
        help="NATS JetStream instead (e.g. nats://127.0.0.1:4222): this worker takes a fair "
        "share of the stream's partitions, its state checkpointed in the server, so workers "
        "may join, leave or die at any time (docs/deployment.md); --state is not used",
    )
    p.add_argument(
        "--member",
        default=None,
        help="with --nats: this worker's name among the workers, e.g. its replica ordinal "
        "(default w<pid>)",
    )
    p.add_argument("--influx", required=True, metavar="URL", help="e.g. http://127.0.0.1:8086")
    p.add_argument("--database", default="poise", help="InfluxDB database (default poise)")
    p.add_argument(
        "--state",
        type=Path,
        default=Path("poise-worker.state.json"),
        help="state file: open sessions, trials, alerts, pending summaries; a restarted worker "
        "resumes from it (default ./poise-worker.state.json)",
    )
    p.add_argument(
        "--client-id", default="poise-worker", help="MQTT client id (default poise-worker)"
    )
    p.add_argument(
        "--ap-axis",
        default="-z",
        help="the lower-back sensor's axis that points forward (default -z)",
    )
    p.add_argument("--ready-file", type=Path, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "rescore",
        help="recompute a patient's trial and session summaries from raw data",
        description="Reads the patient's trial and session summaries, recomputes each from the "
        "raw samples in InfluxDB with the current algorithm versions and writes the results "
        "beside the old ones (told apart by the algorithm_version tag). Prints a JSON report.",
    )
    p.add_argument("--influx", required=True, metavar="URL")
    p.add_argument("--database", default="poise")
    p.add_argument("--site", required=True)
    p.add_argument("--patient", required=True)
    p.add_argument("--since", type=_since, default=0, help="only trials from this date (UTC)")
    p.add_argument("--ap-axis", default="-z")
    p.set_defaults(func=cmd_rescore)
