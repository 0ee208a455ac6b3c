"""The generic decoder: notification bytes in, samples in SI units out, driven by a Profile.

Pure and stateful only where the protocol is: a ``stream`` profile treats the notify
characteristic as a byte stream (a record may be split across notifications, several may
share one) and resynchronises on record headers; a ``packet`` profile expects whole records
in each notification. Nothing here imports a BLE library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from collector.profiles import Profile, RecordSpec

MAX_BUFFER_BYTES = 4096


class DecodeError(ValueError):
    """Input that does not decode; ``offset`` is the byte offset in the notification."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Sample:
    values: tuple[float, ...]  # SI units, in the order of Profile.channels
    extra: dict[str, float] = field(default_factory=dict)  # other fields, SI units


@dataclass
class DecoderStats:
    records: int = 0
    samples: int = 0
    other_records: int = 0
    skipped_bytes: int = 0  # bytes dropped while resynchronising (a stream that lost bytes)


def _compile(
    rec: RecordSpec, channels: tuple[str, ...]
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
    return struct.Struct(fmt), [f.scale * f.to_si for f in fields], slots, extra


class Decoder:
    """Feed it each notification in order; it returns the samples completed by it.

    ``strict`` raises DecodeError on bytes that are not a record (the ``poise decode``
    command); otherwise they are skipped and counted in ``stats`` (the collector)."""

    def __init__(self, profile: Profile, *, strict: bool = False) -> None:
        self.profile = profile
        self.strict = strict
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._fed = 0  # bytes fed so far, for offsets across notifications
        self._by_header = sorted(profile.records, key=lambda r: -len(r.header))
        self._compiled = {id(r): _compile(r, profile.channels) for r in profile.records}

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

    def feed(self, data: bytes) -> list[Sample]:
        if self.profile.framing == "packet":
            return self._feed_packet(data)
        return self._feed_stream(data)

    def _feed_packet(self, data: bytes) -> list[Sample]:
        out = []
        pos = 0
        while pos < len(data):
            rec = self._match(data, pos)
            if rec is None or pos + rec.length > len(data):
                reason = "unknown record header" if rec is None else "record cut short"
                if self.strict:
                    raise DecodeError(reason, pos)
                self.stats.skipped_bytes += len(data) - pos
                break
            sample = self._decode_record(rec, data, pos)
            if sample is not None:
                out.append(sample)
            pos += rec.length
        self._fed += len(data)
        return out

    def _feed_stream(self, data: bytes) -> list[Sample]:
        carried = len(self._buf)  # bytes kept from earlier notifications
        self._buf += data
        self._fed += len(data)
        buf = self._buf
        out = []
        pos = 0
        while pos < len(buf):
            rec = self._match(buf, pos)
            if rec is None:
                if len(buf) - pos < max(len(r.header) for r in self._by_header) and any(
                    r.header.startswith(bytes(buf[pos:])) for r in self._by_header
                ):
                    break  # a header split across notifications: wait for the rest
                if self.strict:
                    raise DecodeError(
                        "no record header (lost bytes or wrong profile)", max(pos - carried, 0)
                    )
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

    def pending_bytes(self) -> int:
        return len(self._buf)
