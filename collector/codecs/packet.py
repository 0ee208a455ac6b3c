"""``packet`` framing: each notification holds whole records (one or more), so nothing is
carried between notifications; a record may have no header when it is the only kind."""

from __future__ import annotations

from collector.codecs.base import Rows, Sample
from collector.codecs.records import RecordCodec


class PacketCodec(RecordCodec):
    def feed(self, data: bytes) -> list[Sample]:
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

    def encode(
        self, rows: Rows, first_index: int, rate_hz: float, mtu: int
    ) -> list[tuple[bytes, int]]:
        """As many whole records per notification as the MTU holds."""
        length = self._sample_layout.rec.length
        per = max(1, (mtu - 3) // length)
        recs = self.encode_records(rows)
        step = per * length
        return [
            (recs[i : i + step], len(recs[i : i + step]) // length)
            for i in range(0, len(recs), step)
        ]
