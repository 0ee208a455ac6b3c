"""The generic decoder: notification bytes in, samples in SI units out, driven by a Profile.

Framings (see firmware_profiles/README.md):

- ``stream``: the notify characteristic is a byte stream (a record may be split across
  notifications, several may share one); records are found by their headers, and bytes that
  are not a record are skipped and counted (resynchronisation).
- ``packet``: whole records in each notification.
- ``json-lines``: one JSON object per line, possibly split across notifications.
- ``polar-pmd``: Polar Measurement Data frames, raw or delta-compressed, with the device's
  timestamp of the last sample.

Pure and bounded: the only state is the protocol's own (a partial record or line, the last
Polar timestamp); buffers are capped. Every failure is a ``DecodeError`` with a reason and a
byte offset. Nothing here imports a BLE library.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

from collector.profiles import POLAR_EPOCH_NS, Profile, RecordSpec

MAX_BUFFER_BYTES = 4096
NAN = float("nan")


class DecodeError(ValueError):
    """Input that does not decode; ``offset`` is the byte offset in the notification."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Sample:
    values: tuple[float, ...]  # SI units, in the order of Profile.channels; NaN: not in this sample
    extra: dict[str, float] = field(default_factory=dict)  # other fields, SI units
    device_time_ns: int | None = None  # the device's own clock, ns since the Unix epoch


@dataclass
class DecoderStats:
    records: int = 0
    samples: int = 0
    other_records: int = 0
    skipped_bytes: int = 0  # bytes dropped while resynchronising (a stream that lost bytes)
    errors: int = 0  # notifications (or lines) that could not be decoded


def _compile(
    rec: RecordSpec, channels: tuple[str, ...], scales: dict[str, float]
) -> tuple[struct.Struct, list[float], list[int], list[tuple[str, int]]]:
    """One struct for the whole record (fields in offset order, gaps as pad bytes), the
    factor raw -> SI per field, where each sample channel sits, and the extra fields."""
    fields = sorted(rec.fields, key=lambda f: f.offset)
    fmt, pos = (fields[0].fmt[0] if fields else "<"), 0
    for f in fields:
        if f.offset < pos:
            raise ValueError(f"fields overlap at byte {f.offset} in a record of {rec.header.hex()}")
        fmt += "x" * (f.offset - pos) + f.fmt[1:]
        pos = f.offset + f.size
    names = [f.name for f in fields]
    slots = [names.index(c) for c in channels] if rec.kind == "sample" else []
    extra = [(n, i) for i, n in enumerate(names) if n not in channels]
    factors = [(scales[f.scale_setting] if f.scale_setting else f.scale) * f.to_si for f in fields]
    return struct.Struct(fmt), factors, slots, extra


class Decoder:
    """Feed it each notification in order; it returns the samples completed by it.

    ``strict`` raises DecodeError on bytes that are not a record (the ``poise decode``
    command); otherwise they are skipped and counted in ``stats`` (the collector).
    ``settings`` are the profile's settings (``--set``), e.g. a range or Polar's FACTOR."""

    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        self.profile = profile
        self.strict = strict
        self.settings = profile.resolve(settings)
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._by_header = sorted(profile.records, key=lambda r: -len(r.header))
        scales = {
            name: st.scales[self.settings[name]]
            for name, st in profile.settings.items()
            if st.scales
        }
        self._compiled = {id(r): _compile(r, profile.channels, scales) for r in profile.records}
        self._last_pmd_ns: dict[int, int] = {}  # Polar: last sample time per measurement type

    # --- dispatch ---
    def feed(self, data: bytes) -> list[Sample]:
        framing = self.profile.framing
        if framing == "packet":
            return self._feed_packet(data)
        if framing == "json-lines":
            return self._feed_json(data)
        if framing == "polar-pmd":
            return self._feed_pmd(data)
        return self._feed_stream(data)

    def pending_bytes(self) -> int:
        return len(self._buf)

    def _fail(self, reason: str, offset: int) -> None:
        self.stats.errors += 1
        if self.strict:
            raise DecodeError(reason, offset)

    # --- fixed-layout records ---
    def _match(self, buf: bytes | bytearray, pos: int) -> RecordSpec | None:
        for rec in self._by_header:
            if buf.startswith(rec.header, pos):
                return rec
        return None

    def _decode_record(self, rec: RecordSpec, buf: bytes | bytearray, pos: int) -> Sample | None:
        self.stats.records += 1
        if rec.kind != "sample":
            self.stats.other_records += 1
            return None
        layout, factors, slots, extra_names = self._compiled[id(rec)]
        raw = layout.unpack_from(buf, pos)
        scaled = [r * f for r, f in zip(raw, factors, strict=True)]
        self.stats.samples += 1
        return Sample(
            tuple(scaled[i] for i in slots),
            {name: scaled[i] for name, i in extra_names},
        )

    def _feed_packet(self, data: bytes) -> list[Sample]:
        out = []
        pos = 0
        while pos < len(data):
            rec = self._match(data, pos)
            if rec is None or pos + rec.length > len(data):
                reason = "unknown record header" if rec is None else "record cut short"
                self._fail(reason, pos)
                self.stats.skipped_bytes += len(data) - pos
                break
            sample = self._decode_record(rec, data, pos)
            if sample is not None:
                out.append(sample)
            pos += rec.length
        return out

    def _feed_stream(self, data: bytes) -> list[Sample]:
        carried = len(self._buf)  # bytes kept from earlier notifications
        self._buf += data
        buf = self._buf
        out = []
        pos = 0
        longest_header = max(len(r.header) for r in self._by_header)
        while pos < len(buf):
            rec = self._match(buf, pos)
            if rec is None:
                if len(buf) - pos < longest_header and any(
                    r.header.startswith(bytes(buf[pos:])) for r in self._by_header
                ):
                    break  # a header split across notifications: wait for the rest
                self._fail("no record header (lost bytes or wrong profile)", max(pos - carried, 0))
                nxt = min(
                    (i for r in self._by_header if (i := buf.find(r.header, pos + 1)) >= 0),
                    default=len(buf),
                )
                self.stats.skipped_bytes += nxt - pos
                pos = nxt
                continue
            if pos + rec.length > len(buf):
                break  # record continues in the next notification
            sample = self._decode_record(rec, buf, pos)
            if sample is not None:
                out.append(sample)
            pos += rec.length
        del buf[:pos]
        if len(buf) > MAX_BUFFER_BYTES:  # cannot happen with sane records; bound memory anyway
            self.stats.skipped_bytes += len(buf)
            buf.clear()
        return out

    # --- JSON lines ---
    def _feed_json(self, data: bytes) -> list[Sample]:
        spec = self.profile.json
        assert spec is not None
        base = -len(self._buf)  # offset in this notification of the buffer's first byte
        self._buf += data
        out = []
        chans = self.profile.channels
        while (nl := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:nl]).strip()
            line_start = max(base, 0)
            del self._buf[: nl + 1]
            base += nl + 1
            if not line:
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                values = [NAN] * len(chans)
                for key, (name, to_si) in spec.fields.items():
                    if key in obj:
                        v = float(obj[key])
                        if not math.isfinite(v):
                            raise ValueError(f"{key} is not finite")
                        values[chans.index(name)] = v * to_si
                if all(math.isnan(v) for v in values):
                    raise ValueError("no known field")
                dev_t = None
                if spec.time_key and spec.time_key in obj:
                    dev_t = round(float(obj[spec.time_key]) * spec.time_to_ns)
            except (ValueError, TypeError, OverflowError):
                self._fail("not a JSON sample line", line_start)
                continue
            self.stats.records += 1
            self.stats.samples += 1
            out.append(Sample(tuple(values), {}, dev_t))
        if len(self._buf) > MAX_BUFFER_BYTES:
            self._fail("line too long (no newline)", 0)
            self.stats.skipped_bytes += len(self._buf)
            self._buf.clear()
        return out

    # --- Polar PMD ---
    def _feed_pmd(self, data: bytes) -> list[Sample]:
        spec = self.profile.pmd
        assert spec is not None
        if len(data) < 10:
            self._fail("PMD frame shorter than its 10-byte header", len(data))
            return []
        mtype = data[0]
        if mtype not in spec.types:
            self._fail(f"measurement type {mtype} not in this profile", 0)
            return []
        group = spec.types[mtype]
        (t_last,) = struct.unpack_from("<Q", data, 1)
        frame_type = data[9]
        compressed = bool(frame_type & 0x80)
        payload = data[10:]
        try:
            if compressed:
                raw = _pmd_delta(payload, 3)
                factor = float(self.settings[spec.factor_setting]) if spec.factor_setting else 1.0
                to_si = factor * spec.compressed_to_si[group]
            else:
                width = {0: 1, 1: 2, 2: 3}.get(frame_type & 0x7F)
                if width is None:
                    raise DecodeError(f"unknown raw frame type {frame_type}", 9)
                raw = _pmd_raw(payload, 3, width)
                to_si = spec.raw_to_si[group]
        except DecodeError as exc:
            self._fail(exc.reason, exc.offset + (10 if exc.offset >= 0 else 0))
            return []
        except KeyError:
            self._fail(f"no unit for {group} frames of type {frame_type}", 9)
            return []
        n = len(raw)
        if n == 0:
            return []
        t_last_ns = POLAR_EPOCH_NS + t_last
        prev = self._last_pmd_ns.get(mtype)
        nominal = 1e9 / self.profile.default_rate_hz
        period = nominal
        if prev is not None and t_last_ns > prev:
            # spread the samples back to the previous frame's last one, as Polar's SDK does,
            # unless a frame went missing or came out of order in between
            measured = (t_last_ns - prev) / n
            if 0.8 * nominal <= measured <= 1.25 * nominal:
                period = measured
        if prev is None or t_last_ns > prev:
            self._last_pmd_ns[mtype] = t_last_ns
        chans = self.profile.channels
        slots = [chans.index(f"{group}_{a}") for a in "xyz"]
        out = []
        for i, sample in enumerate(raw):
            values = [NAN] * len(chans)
            for slot, v in zip(slots, sample, strict=True):
                values[slot] = v * to_si
            # integer arithmetic: ns since 1970 exceed float64's exact integers
            out.append(Sample(tuple(values), {}, t_last_ns - round((n - 1 - i) * period)))
        self.stats.records += 1
        self.stats.samples += n
        return out


def _sign_extend(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _pmd_raw(payload: bytes, channels: int, width: int) -> list[tuple[int, ...]]:
    step = channels * width
    if len(payload) % step:
        raise DecodeError(
            f"raw payload of {len(payload)} bytes is not whole {step}-byte samples", len(payload)
        )
    out = []
    for pos in range(0, len(payload), step):
        out.append(
            tuple(
                _sign_extend(
                    int.from_bytes(payload[pos + c * width : pos + (c + 1) * width], "little"),
                    8 * width,
                )
                for c in range(channels)
            )
        )
    return out


def _pmd_delta(payload: bytes, channels: int, ref_width: int = 2) -> list[tuple[int, ...]]:
    """Polar's delta compression: a reference sample (int16 per channel), then blocks of
    ``[bits u8][count u8][count x channels deltas of 'bits' bits, LSB first]``; each delta is
    sign-extended and added to the previous sample (polar-ble-sdk, BlePMDClient)."""
    need = channels * ref_width
    if len(payload) < need:
        raise DecodeError("compressed frame cut short in its reference sample", len(payload))
    ref = [
        _sign_extend(
            int.from_bytes(payload[c * ref_width : (c + 1) * ref_width], "little"), 8 * ref_width
        )
        for c in range(channels)
    ]
    out = [tuple(ref)]
    pos = need
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise DecodeError("delta block header cut short", pos)
        bits, count = payload[pos], payload[pos + 1]
        if not 1 <= bits <= 32:
            raise DecodeError(f"delta width {bits} bits", pos)
        pos += 2
        nbytes = (bits * channels * count + 7) // 8
        if pos + nbytes > len(payload):
            raise DecodeError(f"delta block of {count} samples x {bits} bits cut short", pos)
        stream = int.from_bytes(payload[pos : pos + nbytes], "little")
        mask = (1 << bits) - 1
        bit = 0
        for _ in range(count):
            prev = out[-1]
            deltas = []
            for _c in range(channels):
                deltas.append(_sign_extend((stream >> bit) & mask, bits))
                bit += bits
            out.append(tuple(p + d for p, d in zip(prev, deltas, strict=True)))
        pos += nbytes
    return out
