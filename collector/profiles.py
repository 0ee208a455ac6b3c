"""Firmware profiles: one declarative TOML file per sensor model, read by one generic engine.

A profile says how to recognise the device, which GATT characteristics to use, what to
write to configure and start it, and the layout of its data packets as a table of fields
(one row per field: channel, type, offset, scale, unit). Adding a sensor is adding a file.

Loading validates everything and fails with ``ProfileError`` naming the file, the field,
what was expected and what was found. Pure: reads files, touches no radio.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from poise.core.channels import SAMPLE_CHANNELS, UNIT_TO_SI
from poise.core.tomlconf import ConfigError, TomlReader, parse_toml

# The top-level folder firmware_profiles/ ships in the wheel as this resources package.
PROFILE_DIR: Traversable = files("collector.firmware_profiles")

TYPES: dict[str, str] = {
    "i8": "b",
    "u8": "B",
    "i16": "h",
    "u16": "H",
    "i32": "i",
    "u32": "I",
    "i64": "q",
    "u64": "Q",
    "f32": "f",
    "f64": "d",
}
FRAMINGS = ("stream", "packet", "json-lines", "polar-pmd")  # one codec each: collector.codecs
DEVICE_VALUE = "device"  # a float setting left to the device's own answer (Polar's FACTOR)
STREAMS = ("always", "after-start", "after-rate")
# what each analysis needs from a sensor (channel groups); a sensor feeds those it covers
ANALYSIS_NEEDS: dict[str, tuple[str, ...]] = {
    "sway": ("acc",),
    "four_stage": ("acc",),
    "chair_stand": ("acc", "gyr"),
    "tug": ("acc", "gyr"),
    "joint_angles": ("acc", "gyr"),
}
POLAR_EPOCH_NS = 946_684_800 * 10**9  # 2000-01-01T00:00Z in ns since the Unix epoch


class ProfileError(ConfigError):
    """A profile file that cannot be used; the message names file, field, expected, found."""


@dataclass(frozen=True)
class FieldSpec:
    name: str  # a SAMPLE_CHANNELS name, or any other name for extra values (angles, ...)
    offset: int
    fmt: str  # struct format with byte order, e.g. "<h"
    scale: float  # raw integer -> unit
    unit: str
    to_si: float  # unit -> SI
    scale_setting: str | None = None  # the scale comes from this setting's chosen option

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)


@dataclass(frozen=True)
class RecordSpec:
    header: bytes
    length: int
    kind: str  # "sample" (decoded into a sample) or "other" (recognised, skipped)
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class Write:
    data: bytes
    response: bool
    delay_s: float
    char: str | None = None  # characteristic UUID; None: the profile's write characteristic
    setting: str | None = None  # the bytes come from this setting's chosen option instead


@dataclass(frozen=True)
class Setting:
    """A device option chosen at connect time (``--set NAME=VALUE``): it may change a field's
    scale, supply a write, or be a free number (``kind = "float"``, e.g. Polar's FACTOR)."""

    name: str
    default: str
    kind: str = "choice"  # "choice" among options, or "float"
    scales: dict[str, float] = field(default_factory=dict)  # option -> scale for fields naming it
    writes: dict[str, bytes] = field(default_factory=dict)  # option -> bytes for writes naming it

    def check(self, value: str) -> str:
        if self.kind == "float":
            if value == DEVICE_VALUE:
                return value
            try:
                float(value)
            except ValueError:
                raise ProfileError(
                    f"setting {self.name}: expected a number, found {value!r}"
                ) from None
            return value
        options = sorted(set(self.scales) | set(self.writes))
        if value not in options:
            raise ProfileError(f"setting {self.name}: expected one of {options}, found {value!r}")
        return value


@dataclass(frozen=True)
class JsonSpec:
    """``json-lines`` framing: one JSON object per line, keys mapped to channels."""

    fields: dict[str, tuple[str, float]]  # key -> (channel, unit factor to SI)
    time_key: str | None
    time_to_ns: float


@dataclass(frozen=True)
class PmdSpec:
    """``polar-pmd`` framing: Polar Measurement Data frames (type, u64 timestamp of the last
    sample in ns since 2000-01-01, frame type, payload; bit 7 of the frame type = delta
    compressed)."""

    types: dict[int, str]  # measurement type -> channel group ("acc", "gyr", "mag")
    raw_to_si: dict[str, float]  # group -> factor from an uncompressed raw value to SI
    compressed_to_si: dict[str, float]  # group -> factor from raw x FACTOR to SI
    # group -> the setting holding its FACTOR: each measurement type has its own, and the
    # device says it in its answer to the start write ("device"), or ``--set`` gives it
    factor_settings: dict[str, str] = field(default_factory=dict)
    # group -> the frame type the device sends (bit 7: delta compressed); a virtual device
    # sends these, as the real one does
    device_frames: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceSpec:
    """How the device behaves (device quirks as data): what a virtual device of this profile
    does, and what the gateway may expect."""

    factory_rate_hz: int | None = None  # the rate it streams at before any rate write
    streams: str = "always"  # "always", "after-start" (its start writes) or "after-rate"
    answers: tuple[tuple[bytes, bytes], ...] = ()  # (a configuration write, its answer)


@dataclass(frozen=True)
class Profile:
    id: str
    model: str
    source: str
    path: Traversable
    name_prefixes: tuple[str, ...]
    service_uuids: tuple[str, ...]
    service: str
    notify: str
    write: str | None
    framing: str
    records: tuple[RecordSpec, ...]
    channels: tuple[str, ...]  # the sample channels every sample record carries
    rate_writes: dict[int, tuple[Write, ...]]
    default_rate_hz: int
    start: tuple[Write, ...]
    settings: dict[str, Setting] = field(default_factory=dict)
    json: JsonSpec | None = None
    pmd: PmdSpec | None = None
    device_timestamps: bool = False
    battery: bool = False
    min_mtu: int = 23
    face_normal: str | None = None  # the sensor axis out of the device's face, e.g. "+z"
    answers_char: str | None = None  # the device answers configuration writes here
    device: DeviceSpec = field(default_factory=DeviceSpec)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c[:3] for c in self.channels))

    def feeds(self) -> list[str]:
        """The analyses this sensor can feed on its own (see ANALYSIS_NEEDS)."""
        have = set(self.groups)
        return [name for name, needs in ANALYSIS_NEEDS.items() if set(needs) <= have]

    def resolve(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        """Every setting's value: the defaults, with ``overrides`` checked and applied."""
        values = {name: st.default for name, st in self.settings.items()}
        for name, value in (overrides or {}).items():
            if name not in self.settings:
                known = ", ".join(sorted(self.settings)) or "none"
                raise ProfileError(f"{self.id}: no setting {name!r} (settings: {known})")
            values[name] = self.settings[name].check(value)
        return values

    def writes_for(self, rate_hz: int | None, values: dict[str, str]) -> list[Write]:
        """The writes that configure and start the device, with settings filled in."""
        out = []
        for w in (*self.rate_writes.get(rate_hz or self.default_rate_hz, ()), *self.start):
            data = (
                w.data if w.setting is None else self.settings[w.setting].writes[values[w.setting]]
            )
            out.append(Write(data, w.response, w.delay_s, w.char))
        return out


def _writes(readers: list[TomlReader]) -> tuple[Write, ...]:
    out = []
    for r in readers:
        setting = r.get("setting", str, "a setting name", None)
        out.append(
            Write(
                r.hex("hex") if setting is None else b"",
                r.get("response", bool, "true or false", False),
                float(r.get("delay_s", (int, float), "seconds", 0.0)),
                (r.get("char", str, "a characteristic UUID", None) or None),
                setting,
            )
        )
    return tuple(out)


def _texts(table: TomlReader, key: str, expected: str) -> tuple[str, ...]:
    items = table.get(key, list, expected, [])
    for item in items:
        if not isinstance(item, str) or not item:
            raise table.fail(key, expected, items)
    return tuple(items)


def _axis(axes: TomlReader) -> str | None:
    value = axes.get("face_normal", str, "one of +x, -x, +y, -y, +z, -z", None)
    if value is not None and value not in ("+x", "-x", "+y", "-y", "+z", "-z"):
        raise axes.fail("face_normal", "one of +x, -x, +y, -y, +z, -z", value)
    return None if value is None else str(value)


def load_profile(path: Traversable | str) -> Profile:
    path = Path(path) if isinstance(path, str) else path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path.name}: cannot read: {exc}") from None
    return parse_profile(text, path)


def parse_profile(text: str, path: Traversable) -> Profile:
    """A profile from its TOML text; ``path`` names it in errors and in ``Profile.path``."""
    try:
        return _parse_profile(text, path)
    except ProfileError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        # a shape no check above foresaw: still the file and what went wrong, no traceback
        raise ProfileError(
            f"{path.name}: malformed profile ({type(exc).__name__}: {exc})"
        ) from None


def _parse_profile(text: str, path: Traversable) -> Profile:
    top = parse_toml(text, path.name, ProfileError)
    endian = top.get("endian", str, "'little' or 'big'", "little")
    if endian not in ("little", "big"):
        raise top.fail("endian", "'little' or 'big'", endian)
    order = "<" if endian == "little" else ">"
    match = top.sub("match", {})
    gatt = top.sub("gatt")
    packet = top.sub("packet")
    framing = packet.get("framing", str, f"one of {FRAMINGS}")
    if framing not in FRAMINGS:
        raise packet.fail("framing", f"one of {FRAMINGS}", framing)
    settings: dict[str, Setting] = {}
    for name, raw in top.get("settings", dict, "a table of settings", {}).items():
        st = TomlReader(
            path.name, raw if isinstance(raw, dict) else {}, f"settings.{name}", ProfileError
        )
        if not isinstance(raw, dict):
            raise top.fail(f"settings.{name}", "a table", raw)
        kind = st.choice("kind", ("choice", "float"), "choice")
        scales = {}
        for k, v in st.get("scales", dict, "option -> scale", {}).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise st.fail(f"scales.{k}", "a finite number", v)
            scales[str(k)] = float(v)
        writes = {}
        for k, v in st.get("writes", dict, "option -> hex", {}).items():
            writes[str(k)] = TomlReader(path.name, {k: v}, f"settings.{name}.writes").hex(k)
        setting = Setting(
            name, str(st.get("default", (str, int, float), "a default value")), kind, scales, writes
        )
        try:
            setting.check(setting.default)
        except ProfileError as exc:
            raise st.fail("default", "one of the setting's options", setting.default) from exc
        settings[name] = setting
    records = []
    for rec in packet.subs("records"):
        length = rec.get("length", int, "a record length in bytes")
        kind = rec.get("kind", str, "'sample' or 'other'", "sample")
        if kind not in ("sample", "other"):
            raise rec.fail("kind", "'sample' or 'other'", kind)
        fields = []
        for f in rec.subs("fields"):
            type_name = f.get("type", str, f"one of {sorted(TYPES)}")
            if type_name not in TYPES:
                raise f.fail("type", f"one of {sorted(TYPES)}", type_name)
            unit = f.get("unit", str, f"one of {sorted(UNIT_TO_SI)}")
            if unit not in UNIT_TO_SI:
                raise f.fail("unit", f"one of {sorted(UNIT_TO_SI)}", unit)
            scale = f.get("scale", (int, float, str), "a number or a setting name", 1.0)
            if isinstance(scale, str) and scale not in settings:
                raise f.fail("scale", f"a number or one of the settings {sorted(settings)}", scale)
            spec = FieldSpec(
                name=f.get("name", str, "a channel name such as 'acc_x'"),
                offset=f.get("offset", int, "a byte offset"),
                fmt=order + TYPES[type_name],
                scale=1.0 if isinstance(scale, str) else float(scale),
                unit=unit,
                to_si=UNIT_TO_SI[unit],
                scale_setting=scale if isinstance(scale, str) else None,
            )
            if spec.offset < 0 or spec.offset + spec.size > length:
                raise f.fail("offset", f"a field inside the {length}-byte record", spec.offset)
            fields.append(spec)
        records.append(RecordSpec(rec.hex("header", None), length, kind, tuple(fields)))
    json_spec = pmd_spec = None
    if framing == "json-lines":
        js = packet.sub("json")
        fields_map = {}
        for key, val in js.get("fields", dict, "a table key -> {name, unit}", {}).items():
            if (
                not isinstance(val, dict)
                or not isinstance(val.get("unit"), str)
                or val.get("unit") not in UNIT_TO_SI
                or val.get("name") not in SAMPLE_CHANNELS
            ):
                raise js.fail(
                    f"fields.{key}",
                    f"{{name = a channel such as 'acc_x', unit = one of {sorted(UNIT_TO_SI)}}}",
                    val,
                )
            fields_map[str(key)] = (str(val.get("name")), UNIT_TO_SI[val["unit"]])
        time_unit = js.get("time_unit", str, "'s', 'ms' or 'us'", "ms")
        if time_unit not in ("s", "ms", "us"):
            raise js.fail("time_unit", "'s', 'ms' or 'us'", time_unit)
        json_spec = JsonSpec(
            fields_map,
            js.get("time_key", str, "a key", None),
            {"s": 1e9, "ms": 1e6, "us": 1e3}[time_unit],
        )
        channels: tuple[str, ...] = tuple(
            c for c in SAMPLE_CHANNELS if c in {v[0] for v in fields_map.values()}
        )
    elif framing == "polar-pmd":
        pm = packet.sub("pmd")
        types = {}
        for k, v in pm.get("types", dict, "measurement type -> acc/gyr/mag", {}).items():
            if not k.isdigit() or int(k) > 255 or v not in ("acc", "gyr", "mag"):
                raise pm.fail(f"types.{k}", "a measurement type 0-255 -> acc, gyr or mag", v)
            types[int(k)] = str(v)

        def units(key: str) -> dict[str, float]:
            out = {}
            for g, u in pm.get(key, dict, "group -> unit", {}).items():
                if not isinstance(u, str) or u not in UNIT_TO_SI:
                    raise pm.fail(f"{key}.{g}", f"one of {sorted(UNIT_TO_SI)}", u)
                out[str(g)] = UNIT_TO_SI[u]
            return out

        raw_to_si = units("raw_unit")
        comp_to_si = units("compressed_unit")
        factors = {
            str(g): str(v)
            for g, v in pm.get("factor_settings", dict, "group -> setting name", {}).items()
        }
        for g, name in factors.items():
            if name not in settings or settings[name].kind != "float":
                raise pm.fail(
                    f"factor_settings.{g}", f"a float setting of {sorted(settings)}", name
                )
        frames = {}
        for g, v in pm.get("device_frames", dict, "group -> frame type", {}).items():
            if not isinstance(v, int) or not 0 <= v <= 255 or (v & 0x7F) > 2:
                raise pm.fail(f"device_frames.{g}", "a frame type 0-2, +128 if compressed", v)
            frames[str(g)] = v
        pmd_spec = PmdSpec(types, raw_to_si, comp_to_si, factors, frames)
        groups = set(types.values())
        channels = tuple(c for c in SAMPLE_CHANNELS if c[:3] in groups)
    else:
        if not records:
            raise packet.fail("records", "at least one record", [])
        if framing == "stream" and any(not r.header for r in records):
            raise packet.fail(
                "records", "a header on every record of a 'stream' framing", "a record without"
            )
        sample_records = [r for r in records if r.kind == "sample"]
        channel_sets = {
            tuple(f.name for f in r.fields if f.name in SAMPLE_CHANNELS) for r in sample_records
        }
        if len(channel_sets) != 1 or not next(iter(channel_sets)):
            raise packet.fail(
                "records", "sample records that all carry the same sample channels", channel_sets
            )
        channels = next(iter(channel_sets))
    if not channels:
        raise packet.fail("framing", "a packet layout that yields sample channels", "none")
    dev = top.sub("device", {})
    dev.unknown({"factory_rate_hz", "streams", "answers"})
    answers = tuple((a.hex("write"), a.hex("answer")) for a in dev.subs("answers"))
    answers_char = gatt.get("answers", str, "a characteristic UUID", None)
    if answers and not answers_char:
        raise ProfileError(
            f"{path.name}: field 'gatt.answers': expected the characteristic the device "
            "answers on (device.answers are given), found nothing (missing)"
        )
    device = DeviceSpec(
        factory_rate_hz=dev.integer("factory_rate_hz", "a rate in Hz", None, 1, 10_000),
        streams=dev.choice("streams", STREAMS, "after-start" if top.has("start") else "always"),
        answers=answers,
    )
    rates = top.sub("rates", {})
    rate_writes = {}
    for key, value in rates.get("writes", dict, "a table of rate -> writes", {}).items():
        if not key.isdigit() or not isinstance(value, list):
            raise rates.fail(f"writes.{key}", "a rate in Hz with an array of writes", value)
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                raise rates.fail(f"writes.{key}[{i}]", "a table {hex = ...}", v)
        rate_writes[int(key)] = _writes(
            [TomlReader(path.name, v, f"rates.writes.{key}", ProfileError) for v in value]
        )
    default_rate = rates.integer("default_hz", "a rate in Hz from 1 to 10000", 100, 1, 10_000)
    if rate_writes and default_rate not in rate_writes:
        raise rates.fail("default_hz", f"one of {sorted(rate_writes)}", default_rate)
    return Profile(
        id=top.get("id", str, "the profile id"),
        model=top.get("model", str, "the device model"),
        source=top.get("source", str, "where the protocol facts come from"),
        path=path,
        name_prefixes=_texts(match, "name_prefixes", "a list of names"),
        service_uuids=tuple(u.lower() for u in _texts(match, "service_uuids", "a list of UUIDs")),
        service=gatt.get("service", str, "a service UUID").lower(),
        notify=gatt.get("notify", str, "a characteristic UUID").lower(),
        write=(gatt.get("write", str, "a characteristic UUID", None) or None),
        framing=framing,
        records=tuple(records),
        channels=channels,
        rate_writes=rate_writes,
        default_rate_hz=default_rate,
        start=_writes(top.subs("start")),
        settings=settings,
        json=json_spec,
        pmd=pmd_spec,
        device_timestamps=framing == "polar-pmd"
        or (json_spec is not None and json_spec.time_key is not None),
        battery=gatt.get("battery", bool, "true or false", False),
        face_normal=_axis(top.sub("axes", {})),
        min_mtu=gatt.get("min_mtu", int, "an ATT MTU in bytes", 23),
        answers_char=answers_char.lower() if answers_char else None,
        device=device,
    )


def _toml_files(directory: Traversable) -> list[Traversable]:
    return sorted(
        (p for p in directory.iterdir() if p.name.endswith(".toml") and p.is_file()),
        key=lambda p: p.name,
    )


def load_all(directory: Traversable = PROFILE_DIR) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for path in _toml_files(directory):
        prof = load_profile(path)
        if prof.id in profiles:
            raise ProfileError(
                f"{path.name}: id {prof.id!r} is already used by {profiles[prof.id].path.name}"
            )
        profiles[prof.id] = prof
    return profiles


def match(known: dict[str, Profile], name: str | None, service_uuids: list[str]) -> Profile | None:
    """The profile for an advertisement: by name prefix first (the Polar profiles share a
    service UUID), then by service UUID."""
    uuids = {u.lower() for u in service_uuids}
    by_name = [
        p for p in known.values() if name and any(name.startswith(x) for x in p.name_prefixes)
    ]
    by_uuid = [p for p in known.values() if uuids & set(p.service_uuids)]
    candidates = by_name or by_uuid
    return candidates[0] if candidates else None


def get(profile_id: str, directory: Traversable = PROFILE_DIR) -> Profile:
    path = directory / f"{profile_id}.toml"
    if not path.is_file():
        known = ", ".join(p.name.removesuffix(".toml") for p in _toml_files(directory))
        raise ProfileError(f"no profile {profile_id!r}; known: {known}")
    return load_profile(path)
