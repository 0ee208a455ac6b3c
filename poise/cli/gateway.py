"""``poise scan``, ``collect``, ``profiles`` and ``decode``: the gateway and its sensors."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from poise.cli.common import mqtt_ca, mqtt_credentials, positive


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


EXIT_UNDELIVERED = 3  # the run ended with frames the broker never acknowledged
EXIT_NO_BLUETOOTH = 1


def cmd_collect(args: argparse.Namespace) -> int:
    import asyncio

    from collector.config import GatewayConfigError, load_gateway_config

    try:
        config = load_gateway_config(args.config, spool_override=args.spool)
    except GatewayConfigError as exc:
        print(f"poise collect: {exc}", file=sys.stderr)
        return 2
    from collector.ble import BluetoothUnavailableError, Gateway
    from collector.publisher import Publisher
    from collector.spool import Spool

    spool = Spool(config.spool_path)
    leftover = spool.counts()[0]
    if leftover and args.discard_leftover:
        dropped = spool.discard_unacked()
        print(
            f"poise collect: discarded {dropped} frames an earlier run left unsent in "
            f"{config.spool_path} (--discard-leftover)",
            file=sys.stderr,
        )
        leftover = 0
    elif leftover:
        print(
            f"poise collect: {leftover} frames an earlier run left unsent in {config.spool_path} "
            "are sent first (ingest stores each once; --discard-leftover drops them instead)",
            file=sys.stderr,
        )
    user, password = mqtt_credentials("gateway")
    pub: Any
    if args.nats:
        from collector.jetstream_publisher import JetStreamPublisher

        # straight to JetStream: a frame leaves the spool when the stream has stored it
        pub = JetStreamPublisher(
            args.nats, spool, site=config.site, gateway_id=config.gateway_id,
            username=user, password=password,
        )
        broker = args.nats
    else:
        pub = Publisher(
            config.mqtt_host,
            config.mqtt_port,
            spool,
            site=config.site,
            gateway_id=config.gateway_id,
            username=user,
            password=password,
            tls_ca=mqtt_ca("gateway"),
        )
        broker = f"{config.mqtt_host}:{config.mqtt_port}"
    pub.start()
    log = logging.getLogger("poise.collect")

    async def watch_broker(stop: asyncio.Event) -> None:
        """Say so while the broker is unreachable: first after 5 s, then every 30 s."""
        warn_after_s, away_s = 5.0, 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            away_s = 0.0 if pub.connected() else away_s + 1.0
            if away_s >= warn_after_s:
                log.warning(
                    "broker %s unreachable for %.0f s; %d frames wait in the spool %s",
                    broker,
                    away_s,
                    pub.pending(),
                    config.spool_path,
                )
                warn_after_s = away_s + 30.0
            elif away_s == 0.0:
                warn_after_s = 5.0

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        kwargs: dict[str, Any] = {}
        world = None
        if args.virtual:
            from poise.simulate import virtual_world_for

            world = await virtual_world_for(config)
            kwargs = {
                "client_class": world.client_class(),
                "scanner_backend": world.scanner_backend(),
            }
        gw = Gateway(config, pub, **kwargs)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        log.info("collecting from %d sensors for site %s", len(config.sensors), config.site)
        watcher = asyncio.create_task(watch_broker(stop))
        try:
            await gw.run(stop)
        finally:
            stop.set()
            await watcher
            if world is not None:
                await world.close()
        return {s.spec.sensor_id: s.status() for s in gw.sessions}

    status: dict[str, Any] = {}
    code = 0
    try:
        status = asyncio.run(main())
    except BluetoothUnavailableError as exc:
        print(f"poise collect: {exc} (--virtual runs without hardware)", file=sys.stderr)
        code = EXIT_NO_BLUETOOTH
    finally:
        pub.stop(drain_timeout_s=10 if pub.connected() else 0)
    unsent = pub.pending()
    print(
        json.dumps({"sensors": status, "gateway": {"unsent_frames": unsent, **pub.stats.__dict__}})
    )
    spool.close()
    if unsent:
        why = ""
        if pub.stats.refused:
            why = (
                f" (it refused {pub.stats.refused} publishes: {pub.last_refusal}; a gateway's "
                f"MQTT user must be its site id, here {config.site!r})"
            )
        print(
            f"poise collect: the broker {broker} did not acknowledge {unsent} frames{why}; they "
            f"stay in the spool {config.spool_path} and the next run with this spool sends them",
            file=sys.stderr,
        )
        return code or EXIT_UNDELIVERED
    return code


def cmd_profiles(args: argparse.Namespace) -> int:
    from collector.profiles import ANALYSIS_NEEDS, ProfileError, load_all

    try:
        profiles = load_all()
    except ProfileError as exc:
        print(f"poise profiles: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for p in profiles.values():
            print(
                json.dumps(
                    {
                        "id": p.id,
                        "model": p.model,
                        "channels": list(p.channels),
                        "rates_hz": sorted(p.rate_writes) or [p.default_rate_hz],
                        "feeds": p.feeds(),
                    }
                )
            )
        return 0
    for p in profiles.values():
        rates = ", ".join(str(r) for r in sorted(p.rate_writes)) or str(p.default_rate_hz)
        print(f"{p.id:24s} {p.model}  channels: {' '.join(p.channels)}  rates (Hz): {rates}")
        feeds = p.feeds()
        cannot = [a for a in ANALYSIS_NEEDS if a not in feeds]
        line = f"    feeds: {', '.join(feeds) or 'nothing'}"
        if cannot:
            line += f"; not: {', '.join(cannot)} (needs {' + '.join(ANALYSIS_NEEDS[cannot[0]])})"
        print(line)
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
    obj: dict[str, Any] = {"kind": "sample"}
    values = sample.as_dict()
    for group in ("acc", "gyr", "mag"):
        names = [f"{group}_{a}" for a in "xyz"]
        if all(n in values for n in names):
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
    for i, text in enumerate(args.answer):
        try:
            decoder.answer(bytes.fromhex(text.replace(" ", "").replace(":", "")))
        except ValueError:
            print(f"poise decode: answer {i + 1} is not hex: {text!r}", file=sys.stderr)
            return 2
        except DecodeError as exc:
            print(f"poise decode: answer {i + 1}: {exc.reason}", file=sys.stderr)
            return 2
        if decoder.last_refusal:
            print(f"poise decode: answer {i + 1}: {decoder.last_refusal}", file=sys.stderr)
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


ORDER = 30  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="list nearby BLE devices and the profile that matches each",
        description="Scans with bleak and prints one JSON object per device: address, "
        "name, RSSI (dBm) and the matching firmware profile (by name, then by service).",
    )
    from collector.config import ScanParams  # no BLE library: a light import

    scan_default = ScanParams()
    p.add_argument(
        "--timeout",
        type=positive,
        default=scan_default.timeout_s,
        help=f"seconds to scan (default {scan_default.timeout_s:g})",
    )
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser(
        "collect",
        help="run a gateway: stream the configured sensors to MQTT",
        description="Connects the sensors of a gateway config one at a time, configures "
        "them, and keeps them streaming (reconnecting after drops and stalls) until "
        "SIGINT/SIGTERM. Frames are spooled to disk until the broker has them. Exit "
        "codes: 0 all delivered, 1 no Bluetooth, 2 bad config, 3 frames left undelivered "
        "in the spool. A commented example config: docs/deploy/gateway.example.toml.",
    )
    p.add_argument("--config", type=Path, required=True, help="gateway config (TOML)")
    p.add_argument("--duration", type=positive, default=None, help="stop after this many seconds")
    p.add_argument(
        "--virtual",
        action="store_true",
        help="no hardware: simulate every configured sensor as a virtual BLE peripheral of its "
        "profile (bumble) and collect from them through the same bleak code",
    )
    p.add_argument("--spool", type=Path, default=None, help="override the config's spool file")
    p.add_argument(
        "--nats",
        default=None,
        metavar="URL",
        help="publish straight to NATS JetStream instead of the config's MQTT broker: a frame "
        "leaves the spool only once the stream stored it (docs/deployment.md)",
    )
    p.add_argument(
        "--discard-leftover",
        action="store_true",
        help="drop frames an earlier run left unsent in the spool (by default they are sent "
        "first, and the count is printed)",
    )
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "profiles",
        help="list the firmware profiles (supported sensors) and the analyses each can feed",
        description="One line per profile (id, model, channels, rates), then the analyses its "
        "channels can feed: an accelerometer-only sensor feeds sway and the four-stage test, "
        "not joint angles, the chair stand or TUG, which need a gyroscope too.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per profile")
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
        help="profile setting, e.g. acc_factor=0.000244 for compressed Polar frames",
    )
    p.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="HEX",
        help="the device's answer to a configuration write, fed before the data (e.g. a Polar "
        "control-point answer carrying FACTOR)",
    )
    p.add_argument("hex", nargs="+", metavar="HEX")
    p.set_defaults(func=cmd_decode)
