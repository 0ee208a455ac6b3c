"""The ``poise`` command line. ``poise --help`` lists everything; each command's --help
explains its options with their defaults and units."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _version() -> str:
    try:
        return version("poise")
    except PackageNotFoundError:
        return "unknown"


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:1883, found {text!r}"
        )
    return host, int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text!r}")
    return int(text)


def _influx_auth() -> Any:
    from poise.core.influx import Auth

    token = os.environ.get("POISE_INFLUX_TOKEN")
    if token:
        return Auth(token=token)
    user = os.environ.get("POISE_INFLUX_USER")
    if user:
        return Auth(username=user, password=os.environ.get("POISE_INFLUX_PASSWORD", ""))
    return Auth()


def _mqtt_credentials() -> tuple[str | None, str | None]:
    return os.environ.get("POISE_MQTT_USER"), os.environ.get("POISE_MQTT_PASSWORD")


# --- commands ---


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

    host, port = args.mqtt
    user, password = _mqtt_credentials()
    influx = InfluxV1(args.influx, args.database, _influx_auth())
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


def cmd_simulate(args: argparse.Namespace) -> int:
    from collector.publisher import Publisher
    from collector.spool import Spool
    from poise.simulate import SimConfig, run_with_publisher

    host, port = args.mqtt
    user, password = _mqtt_credentials()
    spool_path = args.spool or Path(tempfile.mkdtemp(prefix="poise-sim-")) / "spool.db"
    pub = Publisher(
        host,
        port,
        Spool(spool_path),
        site=args.site,
        gateway_id=args.gateway_id,
        username=user,
        password=password,
    )
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


def cmd_scan(args: argparse.Namespace) -> int:
    import asyncio

    from collector.ble import scan

    try:
        found = asyncio.run(scan(args.timeout))
    except Exception as exc:  # bleak raises platform errors: no adapter, no permission, no D-Bus
        print(
            f"poise scan: cannot scan: {exc}. Is there a Bluetooth adapter, and is BlueZ "
            "(bluetoothd) running?",
            file=sys.stderr,
        )
        return 1
    for d in found:
        print(json.dumps(d))
    if not found:
        print("poise scan: no devices seen", file=sys.stderr)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import asyncio

    from collector.ble import ConfigError, Gateway, load_gateway_config
    from collector.publisher import Publisher
    from collector.spool import Spool

    try:
        config = load_gateway_config(args.config)
    except ConfigError as exc:
        print(f"poise collect: {exc}", file=sys.stderr)
        return 2
    user, password = _mqtt_credentials()
    pub = Publisher(
        config.mqtt_host,
        config.mqtt_port,
        Spool(config.spool_path),
        site=config.site,
        gateway_id=config.gateway_id,
        username=user,
        password=password,
    )
    pub.start()
    log = logging.getLogger("poise.collect")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        kwargs: dict[str, Any] = {}
        world = None
        if args.virtual:
            import numpy as np

            from collector.virtual import simulate_patient
            from collector.virtual_ble import VirtualSensor, VirtualWorld

            world = VirtualWorld()
            await world.start()
            for i, spec in enumerate(config.sensors):
                placement = (
                    spec.placement
                    if spec.placement in ("lower_back", "thigh", "shank")
                    else "lower_back"
                )
                trace = simulate_patient(np.random.default_rng(i), 3600.0)[placement]
                await VirtualSensor(
                    world,
                    spec.profile,
                    spec.name or f"virtual-{spec.sensor_id}",
                    trace.acc,
                    trace.gyr,
                    address=spec.address,
                ).start()
            kwargs = {
                "client_class": world.client_class(),
                "scanner_backend": world.scanner_backend(),
            }
        gw = Gateway(config, pub, **kwargs)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        log.info("collecting from %d sensors for site %s", len(config.sensors), config.site)
        await gw.run(stop)
        if world is not None:
            await world.close()
        print(json.dumps({s.spec.sensor_id: s.stats.as_status(s.spec) for s in gw.sessions}))

    try:
        asyncio.run(main())
    finally:
        pub.stop(drain_timeout_s=10)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from collector.profiles import ProfileError, load_all

    try:
        profiles = load_all()
    except ProfileError as exc:
        print(f"poise profiles: {exc}", file=sys.stderr)
        return 2
    for p in profiles.values():
        rates = ", ".join(str(r) for r in sorted(p.rate_writes)) or str(p.default_rate_hz)
        print(f"{p.id:24s} {p.model}  channels: {' '.join(p.channels)}  rates (Hz): {rates}")
    return 0


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, found {pair!r}")
        out[key.strip()] = value.strip()
    return out


def decoded_json(channels: tuple[str, ...], sample: Any) -> dict[str, Any]:
    """A decoded sample as printed by ``poise decode``: groups present in it, SI units."""
    import math

    obj: dict[str, Any] = {"kind": "sample"}
    values = dict(zip(channels, sample.values, strict=True))
    for group in ("acc", "gyr", "mag"):
        names = [f"{group}_{a}" for a in "xyz"]
        if all(n in values and not math.isnan(values[n]) for n in names):
            obj[group] = [round(values[n], 9) for n in names]
    if sample.device_time_ns is not None:
        obj["device_time_ns"] = sample.device_time_ns
    obj.update({k: round(v, 9) for k, v in sample.extra.items()})
    return obj


def cmd_decode(args: argparse.Namespace) -> int:
    from collector.decode import DecodeError, Decoder
    from collector.profiles import ProfileError, get

    try:
        profile = get(args.profile)
        decoder = Decoder(profile, strict=True, settings=_settings(args.set))
    except (ProfileError, ValueError) as exc:
        print(f"poise decode: {exc}", file=sys.stderr)
        return 2
    for i, text in enumerate(args.hex):
        try:
            data = bytes.fromhex(text.replace(" ", "").replace(":", ""))
        except ValueError:
            print(f"poise decode: notification {i + 1} is not hex: {text!r}", file=sys.stderr)
            return 2
        try:
            samples = decoder.feed(data)
        except DecodeError as exc:
            print(
                f"poise decode: notification {i + 1}: {exc.reason} at byte offset {exc.offset}",
                file=sys.stderr,
            )
            return 2
        for s in samples:
            print(json.dumps(decoded_json(profile.channels, s)))
    if decoder.pending_bytes():
        print(
            f"poise decode: {decoder.pending_bytes()} bytes at the end do not complete a record",
            file=sys.stderr,
        )
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poise",
        description="poise: live balance and movement analysis for physical therapy, from "
        "commodity BLE motion sensors. Data flows sensor -> collector -> MQTT -> ingest -> InfluxDB.",
        epilog="Start with 'poise demo' (what 'make demo' runs). Credentials come from the "
        "environment, never the command line: POISE_MQTT_USER/POISE_MQTT_PASSWORD, "
        "POISE_INFLUX_USER/POISE_INFLUX_PASSWORD or POISE_INFLUX_TOKEN.",
    )
    parser.add_argument("--version", action="version", version=f"poise {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="run the whole pipeline locally with simulated patients",
        description="Start local Mosquitto and InfluxDB, ingest, and simulated patients "
        "(3 sensors each at 100 Hz); show them live; then check samples stored == published. "
        "Exit code 0 only when every sample was stored.",
    )
    p.add_argument(
        "--duration", type=_positive, default=60.0, help="seconds of simulated session (default 60)"
    )
    p.add_argument("--patients", type=_count, default=3, help="simulated patients (default 3)")
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
    p.add_argument("--mqtt", type=_hostport, required=True, metavar="HOST:PORT")
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
        "--stats-every-s", type=_positive, default=30.0, help="log counters this often (default 30)"
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "simulate",
        help="publish simulated patients through the real collector path",
        description="Virtual sensors emit device-native notifications which go through the "
        "collector's decoder, clock model, framer and spooling publisher. Prints one JSON "
        "object with samples_published when every frame is acknowledged by the broker.",
    )
    p.add_argument("--mqtt", type=_hostport, required=True, metavar="HOST:PORT")
    p.add_argument(
        "--patients", type=_count, default=1, help="simulated patients, 3 sensors each (default 1)"
    )
    p.add_argument(
        "--duration", type=_positive, default=30.0, help="seconds of simulated session (default 30)"
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
        type=_positive,
        default=120.0,
        help="seconds to wait for the broker to acknowledge everything (default 120)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "scan",
        help="list nearby BLE devices and the profile that matches each",
        description="Scans with bleak and prints one JSON object per device: address, "
        "name, RSSI (dBm) and the matching firmware profile (by name, then by service).",
    )
    p.add_argument("--timeout", type=_positive, default=5.0, help="seconds to scan (default 5)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser(
        "collect",
        help="run a gateway: stream the configured sensors to MQTT",
        description="Connects the sensors of a gateway config one at a time, configures "
        "them, and keeps them streaming (reconnecting after drops and stalls) until "
        "SIGINT/SIGTERM. Frames are spooled to disk until the broker has them. A "
        "commented example config: docs/deploy/gateway.example.toml.",
    )
    p.add_argument("--config", type=Path, required=True, help="gateway config (TOML)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument(
        "--virtual",
        action="store_true",
        help="no hardware: simulate every configured sensor as a virtual BLE peripheral of its "
        "profile (bumble) and collect from them through the same bleak code",
    )
    p.add_argument("--spool", type=Path, default=None, help="override the config's spool file")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("profiles", help="list the firmware profiles (supported sensors)")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser(
        "decode",
        help="decode notification bytes with a firmware profile",
        description="Each HEX is one notification on the profile's data characteristic, "
        "in order. Prints one JSON object per decoded sample: acc (m/s²), gyr (rad/s), "
        "mag (µT) when present, and the profile's extra fields in SI units. Exit code 2, "
        "with the byte offset and reason on stderr, on input that does not decode.",
    )
    p.add_argument("--profile", required=True, help="profile id (see 'poise profiles')")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="profile setting, e.g. factor=0.000244 for compressed Polar frames",
    )
    p.add_argument("hex", nargs="+", metavar="HEX")
    p.set_defaults(func=cmd_decode)

    from poise import analyze

    analyze.add_commands(sub)
    return parser


AXIS_VALUES = {"-x", "-y", "-z", "+x", "+y", "+z", "x", "y", "z"}


def _join_axis_values(argv: list[str]) -> list[str]:
    """``--ap-axis -z`` would read ``-z`` as an option; make it ``--ap-axis=-z``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--ap-axis" and i + 1 < len(argv) and argv[i + 1] in AXIS_VALUES:
            out.append(f"--ap-axis={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_axis_values(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from poise.analyze import UsageError

    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"poise {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
