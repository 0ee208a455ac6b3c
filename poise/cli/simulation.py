"""``poise simulate`` and ``poise demo``: simulated patients on the real data path."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, count, hostport, mqtt_ca, mqtt_credentials, positive


def make_publisher(args: argparse.Namespace, spool_path: Path, role: str = "gateway") -> Any:
    """The gateway's publisher for ``--mqtt`` (MQTT 5 or 3.1.1) or ``--nats`` (JetStream)."""
    from collector.spool import Spool

    user, password = mqtt_credentials(role)
    gateway_id = args.gateway_id if role == "gateway" else f"{args.gateway_id}-{role}"
    if getattr(args, "nats", None):
        from collector.jetstream_publisher import JetStreamPublisher

        return JetStreamPublisher(
            args.nats, Spool(spool_path), site=args.site, gateway_id=gateway_id,
            username=user, password=password,
        )
    from collector.publisher import Publisher

    host, port = args.mqtt
    return Publisher(
        host,
        port,
        Spool(spool_path),
        site=args.site,
        gateway_id=gateway_id,
        username=user,
        password=password,
        tls_ca=mqtt_ca(role),
        protocol=args.mqtt_protocol,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.history is not None:
        from poise.cli.records import simulate_history

        return simulate_history(args)
    if args.mqtt is None and args.nats is None:
        raise UsageError("--mqtt HOST:PORT or --nats URL is needed (or --history with --influx)")
    if getattr(args, "protocol", "cycle") == "clinic":
        from poise.clinic import cli

        return cli(args)
    from poise.simulate import SimConfig, run_with_publisher

    spool_path = args.spool or Path(tempfile.mkdtemp(prefix="poise-sim-")) / "spool.db"
    pub = make_publisher(args, spool_path)
    pub.start()
    cfg = SimConfig(
        site=args.site,
        patients=args.patients,
        duration_s=args.duration,
        speed=args.speed,
        seed=args.seed,
    )
    try:
        _sim, res = run_with_publisher(cfg, pub, drain_timeout_s=args.drain_timeout)
    finally:
        pub.stop(drain_timeout_s=1)
    out = res.as_dict()
    out["spool"] = str(spool_path)
    print(json.dumps(out))
    if not res.drained:
        print(
            f"poise simulate: the broker has not acknowledged every frame yet; they stay in "
            f"{spool_path} and are sent by the next run with --spool {spool_path}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from poise.demo import DemoOptions, run_demo

    summary = run_demo(
        DemoOptions(
            duration_s=args.duration,
            patients=args.patients,
            keep=args.keep,
            directory=args.dir,
            seed=args.seed,
            speed=args.speed,
        )
    )
    return 0 if summary.get("ok") else 1


ORDER = 10  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline locally with simulated patients",
        description="Start local Mosquitto and InfluxDB, ingest, and simulated patients "
        "(3 sensors each at 100 Hz); show them live; then check samples stored == published. "
        "Exit code 0 only when every sample was stored.",
    )
    p.add_argument(
        "--duration", type=positive, default=60.0, help="seconds of simulated session (default 60)"
    )
    p.add_argument("--patients", type=count, default=3, help="simulated patients (default 3)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = real time (default); 10 = ten times faster; 0 = as fast as possible",
    )
    p.add_argument(
        "--keep", action="store_true", help="leave Mosquitto and InfluxDB running afterwards"
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder for the services' files (default: a new temp folder)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "simulate",
        help="publish simulated patients through the real collector path",
        description="Virtual sensors emit device-native notifications which go through the "
        "collector's decoder, clock model, framer and spooling publisher. Prints one JSON "
        "object with samples_published when every frame is acknowledged by the broker.",
    )
    p.add_argument("--mqtt", type=hostport, default=None, metavar="HOST:PORT")
    p.add_argument(
        "--mqtt-protocol",
        choices=["5", "3.1.1"],
        default=None,
        help="MQTT version; 3.1.1 for NATS's MQTT listener (default: POISE_MQTT_PROTOCOL, "
        "which a NATS stack's env sets, else 5)",
    )
    p.add_argument(
        "--nats",
        default=None,
        metavar="URL",
        help="publish straight to NATS JetStream instead of MQTT: each frame is kept in the "
        "spool until the stream itself acknowledges it (docs/deployment.md)",
    )
    from poise.cli.records import add_history_options

    add_history_options(p)  # --history 12w --influx URL --database DB: seeded summaries
    p.add_argument(
        "--patients", type=count, default=1, help="simulated patients, 3 sensors each (default 1)"
    )
    p.add_argument(
        "--duration", type=positive, default=30.0, help="seconds of simulated session (default 30)"
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="1 = real time (default); 0 = as fast as possible"
    )
    p.add_argument("--site", default="demo", help="site id used in topics (default demo)")
    p.add_argument("--gateway-id", default="sim-gw", help="this gateway's id (default sim-gw)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--spool",
        type=Path,
        default=None,
        help="spool file; frames not yet acknowledged survive here (default: a new temp file)",
    )
    p.add_argument(
        "--drain-timeout",
        type=positive,
        default=120.0,
        help="seconds to wait for the broker to acknowledge everything (default 120)",
    )
    p.add_argument(
        "--protocol",
        choices=("cycle", "clinic"),
        default="cycle",
        help="cycle: activities in turn (default); clinic: a scripted clinic session per "
        "patient with its session events and truth (see poise/clinic.py)",
    )
    p.set_defaults(func=cmd_simulate)
