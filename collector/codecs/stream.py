"""``stream`` framing: the notify characteristic is a byte stream. A record may be split
across notifications and several may share one; records are found by their headers, and
bytes that are not a record are skipped and counted (resynchronisation)."""

from __future__ import annotations

from collector.codecs.base import MAX_BUFFER_BYTES, Rows, Sample
from collector.codecs.records import RecordCodec
from collector.profiles import Profile


class StreamCodec(RecordCodec):
    splittable = True

    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(profile, strict=strict, settings=settings)
        self._buf = bytearray()
        self._longest_header = max(len(r.header) for r in self._by_header)

    def pending_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Sample]:
        carried = len(self._buf)  # bytes kept from earlier notifications
        self._buf += data
        buf = self._buf
        out = []
        pos = 0
        while pos < len(buf):
            rec = self._match(buf, pos)
            if rec is None:
                if len(buf) - pos < self._longest_header and any(
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
                break  # the record continues in the next notification
            sample = self._decode_record(rec, buf, pos)
            if sample is not None:
                out.append(sample)
            pos += rec.length
        del buf[:pos]
        if len(buf) > MAX_BUFFER_BYTES:  # cannot happen with sane records; bound memory anyway
            self.stats.skipped_bytes += len(buf)
            buf.clear()
        return out

    def encode(
        self, rows: Rows, first_index: int, rate_hz: float, mtu: int
    ) -> list[tuple[bytes, int]]:
        """Records back to back, cut into notifications of whole records filling the MTU."""
        length = self._sample_layout.rec.length
        recs = self.encode_records(rows)
        size = max(length, (mtu - 3) // length * length)
        return [
            (recs[i : i + size], len(recs[i : i + size]) // length)
            for i in range(0, len(recs), size)
        ]
