"""Fixed-layout records, the part ``stream`` and ``packet`` share: a record is a header and a
table of fields (offset, type, scale, unit). Decoding is one ``struct`` per record layout;
encoding is one numpy structured array per batch, the exact inverse (values rounded to the
field's integer type and clipped at its range, as a device saturates)."""

from __future__ import annotations

import struct

import numpy as np

from collector.codecs.base import Codec, Rows, Sample
from collector.profiles import Profile, RecordSpec

_NP = {"b": "i1", "B": "u1", "h": "i2", "H": "u2", "i": "i4", "I": "u4", "q": "i8", "Q": "u8",
       "f": "f4", "d": "f8"}  # fmt: skip


class _Layout:
    """One record kind, compiled: its struct, factor raw -> SI per field, where each sample
    channel sits, and the extra fields."""

    def __init__(self, rec: RecordSpec, profile: Profile, scales: dict[str, float]) -> None:
        self.rec = rec
        fields = sorted(rec.fields, key=lambda f: f.offset)
        fmt, pos = (fields[0].fmt[0] if fields else "<"), 0
        for f in fields:
            if f.offset < pos:
                raise ValueError(f"fields overlap at byte {f.offset} in record {rec.header.hex()}")
            fmt += "x" * (f.offset - pos) + f.fmt[1:]
            pos = f.offset + f.size
        self.struct = struct.Struct(fmt)
        names = [f.name for f in fields]
        self.channels = tuple(c for c in profile.channels if c in names)
        self.slots = [names.index(c) for c in self.channels] if rec.kind == "sample" else []
        self.extra = [(n, i) for i, n in enumerate(names) if n not in profile.channels]
        self.factors = [
            (scales[f.scale_setting] if f.scale_setting else f.scale) * f.to_si for f in fields
        ]
        self.fields = fields

    def decode(self, buf: bytes | bytearray, pos: int) -> Sample:
        raw = self.struct.unpack_from(buf, pos)
        scaled = [r * f for r, f in zip(raw, self.factors, strict=True)]
        return Sample(
            self.channels,
            tuple(scaled[i] for i in self.slots),
            {name: scaled[i] for name, i in self.extra},
        )

    def encode(self, rows: Rows, profile_channels: tuple[str, ...]) -> bytes:
        rec = self.rec
        n = rows.shape[0]
        dtype = np.dtype(
            {
                "names": [f.name for f in self.fields],
                "formats": [f.fmt[0] + _NP[f.fmt[-1]] for f in self.fields],
                "offsets": [f.offset for f in self.fields],
                "itemsize": rec.length,
            }
        )
        out = np.zeros(n, dtype=dtype)
        for f, factor in zip(self.fields, self.factors, strict=True):
            if f.name not in profile_channels:
                continue  # extras (a device's own angles, ...): zero
            raw = rows[:, profile_channels.index(f.name)] / factor
            kind = np.dtype(_NP[f.fmt[-1]])
            if kind.kind in "iu":
                info = np.iinfo(kind)
                raw = np.clip(np.round(raw), info.min, info.max)
            out[f.name] = raw
        data = out.view(np.uint8).reshape(n, rec.length)
        data[:, : len(rec.header)] = np.frombuffer(rec.header, dtype=np.uint8)
        return data.tobytes()


class RecordCodec(Codec):
    """The base of the fixed-layout framings."""

    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(profile, strict=strict, settings=settings)
        scales = {
            name: st.scales[self.settings[name]]
            for name, st in profile.settings.items()
            if st.scales
        }
        self._by_header = sorted(profile.records, key=lambda r: -len(r.header))
        self._layouts = {id(r): _Layout(r, profile, scales) for r in profile.records}
        self._sample_layout = next(
            self._layouts[id(r)] for r in profile.records if r.kind == "sample"
        )

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
        self.stats.samples += 1
        return self._layouts[id(rec)].decode(buf, pos)

    def encode_records(self, rows: Rows) -> bytes:
        """The device's sample records for ``rows``, back to back."""
        return self._sample_layout.encode(rows, self.profile.channels)
