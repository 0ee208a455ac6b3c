"""The gateway config (TOML): which sensors one gateway streams, to which broker, with which
spool and supervision timings. Validated completely at load time, with the house error style
(file, field, expected, found), and without importing any BLE library: ``poise collect``
refuses a bad config before it touches a radio.

Checked here: pseudonymous ids, duplicate sensor ids and addresses, BLE address form, the
profile and its settings, rates and channels, absurd timings, the broker port, and that the
spool path can be written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from collector import profiles
from poise.core.clinical import SEGMENTS
from poise.core.tomlconf import ConfigError, TomlReader, load_toml

# a BLE device address: six hex bytes (Linux, Windows) or a CoreBluetooth UUID (macOS)
ADDRESS_RE = re.compile(
    r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
DEFAULT_SPOOL = "poise-spool.db"


class GatewayConfigError(ConfigError):
    """A gateway config that cannot be used."""


@dataclass(frozen=True)
class SensorSpec:
    sensor_id: str  # pseudonymous, used in topics
    patient: str  # pseudonymous
    profile: str
    address: str | None = None  # BLE address; or
    name: str | None = None  # the advertised name
    rate_hz: int | None = None  # default: the profile's
    settings: dict[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] | None = None  # default: all of the profile's
    placement: str | None = None


@dataclass(frozen=True)
class SupervisorParams:
    stall_s: float = 3.0  # no notification for this long while connected: reconnect
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_attempts: int = 3  # per establish_connection call
    scan_timeout_s: float = 10.0
    status_every_s: float = 5.0


@dataclass(frozen=True)
class ScanParams:
    timeout_s: float = 5.0  # how long ``poise scan`` listens for advertisements


# (lowest, highest) accepted for each timing: outside them a typo is likelier than intent
SUPERVISION_LIMITS: dict[str, tuple[float, float]] = {
    "stall_s": (0.2, 600.0),
    "reconnect_initial_s": (0.01, 600.0),
    "reconnect_max_s": (0.01, 3600.0),
    "connect_attempts": (1, 20),
    "scan_timeout_s": (0.5, 600.0),
    "status_every_s": (0.2, 3600.0),
}


@dataclass(frozen=True)
class GatewayConfig:
    site: str
    gateway_id: str
    mqtt_host: str
    mqtt_port: int
    spool_path: Path
    sensors: tuple[SensorSpec, ...]
    supervision: SupervisorParams = field(default_factory=SupervisorParams)


def spool_problem(path: Path) -> str | None:
    """Why the spool cannot be written at ``path``, or None if it can."""
    if path.is_dir():
        return "a file path (this is a folder)"
    if path.exists():
        return None if os.access(path, os.R_OK | os.W_OK) else "a writable file"
    parent = path.parent
    while not parent.exists():  # the spool creates missing folders: the first existing decides
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"a path whose folder can be created ({parent} is not a folder)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"a path in a writable folder ({parent} is not writable)"
    return None


def _supervision(sup: TomlReader) -> SupervisorParams:
    sup.unknown({f.name for f in fields(SupervisorParams)})
    d = SupervisorParams()
    values: dict[str, float | int] = {}
    for name, (lo, hi) in SUPERVISION_LIMITS.items():
        if name == "connect_attempts":
            values[name] = sup.integer(
                name, f"a whole number from {lo:g} to {hi:g}", d.connect_attempts, int(lo), int(hi)
            )
        else:
            values[name] = sup.number(
                name, f"seconds from {lo:g} to {hi:g}", getattr(d, name), lo, hi
            )
    if values["reconnect_max_s"] < values["reconnect_initial_s"]:
        raise sup.fail(
            "reconnect_max_s",
            f"at least reconnect_initial_s ({values['reconnect_initial_s']:g})",
            values["reconnect_max_s"],
        )
    return SupervisorParams(**values)  # type: ignore[arg-type]


def _sensor(raw: TomlReader, known: dict[str, profiles.Profile]) -> SensorSpec:
    raw.unknown(
        {
            "id",
            "patient",
            "profile",
            "address",
            "name",
            "rate_hz",
            "settings",
            "channels",
            "placement",
        }
    )
    prof_id = raw.choice("profile", sorted(known))
    prof = known[prof_id]
    address = raw.text("address", "a BLE address such as 'D4:36:39:AA:BB:01'", None)
    if address is not None and not ADDRESS_RE.fullmatch(address):
        raise raw.fail("address", "a BLE address such as 'D4:36:39:AA:BB:01'", address)
    name = raw.text("name", "an advertised name", None)
    if name is not None and not name.strip():
        raise raw.fail("name", "an advertised name", name)
    if address is None and name is None:
        raise raw.error(
            f"{raw.name}: field '{raw.path_of('address')}': expected an address or a name, "
            "found neither"
        )
    settings_table = raw.get("settings", dict, "a table of profile settings", {})
    settings = {str(k): str(v) for k, v in settings_table.items()}
    try:
        prof.resolve(settings)
    except profiles.ProfileError as exc:
        raise raw.error(f"{raw.name}: field '{raw.path_of('settings')}': {exc}") from None
    rates = sorted(prof.rate_writes) or [prof.default_rate_hz]
    rate = raw.integer("rate_hz", f"one of {rates}", None)
    if rate is not None and rate not in rates:
        raise raw.fail("rate_hz", f"one of {rates}", rate)
    channels = raw.get("channels", list, f"a list of channels from {list(prof.channels)}", None)
    if channels is not None:
        expected = f"a list of channels from {list(prof.channels)}, each once"
        if (
            not channels
            or not all(isinstance(c, str) for c in channels)
            or len(set(channels)) != len(channels)
        ):
            raise raw.fail("channels", expected, channels)
        for c in channels:
            if c not in prof.channels:
                raise raw.fail("channels", expected, c)
    placement = raw.get("placement", str, f"one of {list(SEGMENTS)}", None)
    if placement is not None and placement not in SEGMENTS:
        raise raw.fail("placement", f"one of {list(SEGMENTS)}", placement)
    return SensorSpec(
        sensor_id=raw.ident("id"),
        patient=raw.ident("patient"),
        profile=prof_id,
        address=address.upper() if address else None,
        name=name,
        rate_hz=rate,
        settings=settings,
        channels=tuple(channels) if channels else None,
        placement=placement,
    )


def load_gateway_config(path: Path | str, spool_override: Path | None = None) -> GatewayConfig:
    """Read and check a gateway config; ``spool_override`` (``collect --spool``) replaces the
    config's spool path and is checked the same way."""
    try:
        return _load(path, spool_override)
    except GatewayConfigError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        # a shape no check foresaw: still the file and what went wrong, never a traceback
        name = Path(path).name
        raise GatewayConfigError(
            f"{name}: malformed gateway config ({type(exc).__name__}: {exc})"
        ) from None


def _load(path: Path | str, spool_override: Path | None) -> GatewayConfig:
    doc = load_toml(path, GatewayConfigError)
    doc.unknown({"site", "gateway_id", "mqtt", "spool", "supervision", "sensor"})
    mqtt = doc.sub("mqtt", {})
    mqtt.unknown({"host", "port"})
    spool = doc.sub("spool", {})
    spool.unknown({"path"})
    known = profiles.load_all()
    sensors = [_sensor(raw, known) for raw in doc.subs("sensor", required=True)]
    if not sensors:
        raise doc.fail("sensor", "at least one [[sensor]] table", [])
    for attr, key, what in (("sensor_id", "id", "an id"), ("address", "address", "an address")):
        seen: dict[str, int] = {}
        for i, sensor in enumerate(sensors):
            value = getattr(sensor, attr)
            if value is None:
                continue
            if value in seen:
                raise doc.fail(
                    f"sensor[{i}].{key}",
                    f"{what} no other sensor has (sensor[{seen[value]}] has it)",
                    value,
                )
            seen[value] = i
    if spool_override is not None:
        spool_path = Path(spool_override)
        problem = spool_problem(spool_path)
        if problem:
            raise GatewayConfigError(f"--spool {spool_path}: expected {problem}")
    else:
        spool_path = Path(spool.text("path", "a file path", DEFAULT_SPOOL))
        problem = spool_problem(spool_path)
        if problem:
            raise spool.fail("path", problem, str(spool_path))
    host = mqtt.text("host", "a host name", "127.0.0.1")
    if not host.strip():
        raise mqtt.fail("host", "a host name", host)
    return GatewayConfig(
        site=doc.ident("site"),
        gateway_id=doc.ident("gateway_id"),
        mqtt_host=host,
        mqtt_port=mqtt.integer("port", "a port from 1 to 65535", 1883, 1, 65535),
        spool_path=spool_path,
        sensors=tuple(sensors),
        supervision=_supervision(doc.sub("supervision", {})),
    )
