"""``json-lines`` framing: one JSON object per line, possibly split across notifications
(a Nordic UART sketch). Keys map to channels; a line has the channels whose keys it holds."""

from __future__ import annotations

import json
import math

from collector.codecs.base import MAX_BUFFER_BYTES, Codec, Rows, Sample
from collector.profiles import Profile


class JsonLinesCodec(Codec):
    splittable = True

    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(profile, strict=strict, settings=settings)
        assert profile.json is not None
        self.spec = profile.json
        self._buf = bytearray()
        self._order = {c: i for i, c in enumerate(profile.channels)}
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}  # shared channel tuples

    def pending_bytes(self) -> int:
        return len(self._buf)

    def _line(self, line: bytes) -> Sample:
        spec = self.spec
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        got: dict[str, float] = {}
        for key, (name, to_si) in spec.fields.items():
            if key in obj:
                v = float(obj[key])
                if not math.isfinite(v):
                    raise ValueError(f"{key} is not finite")
                got[name] = v * to_si
        if not got:
            raise ValueError("no known field")
        shape = tuple(got)  # in the order of the profile's keys, so one tuple per key set
        chans = self._shapes.get(shape)
        if chans is None:
            chans = self._shapes[shape] = tuple(sorted(got, key=self._order.__getitem__))
        dev_t = None
        if spec.time_key and spec.time_key in obj:
            dev_t = round(float(obj[spec.time_key]) * spec.time_to_ns)
        return Sample(chans, tuple(got[c] for c in chans), {}, dev_t)

    def feed(self, data: bytes) -> list[Sample]:
        base = -len(self._buf)  # offset in this notification of the buffer's first byte
        self._buf += data
        out = []
        while (nl := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:nl]).strip()
            line_start = max(base, 0)
            del self._buf[: nl + 1]
            base += nl + 1
            if not line:
                continue
            try:
                sample = self._line(line)
            except (ValueError, TypeError, OverflowError):
                self._fail("not a JSON sample line", line_start)
                continue
            self.stats.records += 1
            self.stats.samples += 1
            out.append(sample)
        if len(self._buf) > MAX_BUFFER_BYTES:
            self._fail("line too long (no newline)", 0)
            self.stats.skipped_bytes += len(self._buf)
            self._buf.clear()
        return out

    def encode(
        self, rows: Rows, first_index: int, rate_hz: float, mtu: int
    ) -> list[tuple[bytes, int]]:
        """Lines with the time key (device ms), cut at the MTU: lines get split."""
        spec = self.spec
        keys = {name: (key, to_si) for key, (name, to_si) in spec.fields.items()}
        time_key = spec.time_key or "t"
        text = ""
        for j, row in enumerate(rows):
            device_ns = (first_index + j) * 1e9 / rate_hz
            obj: dict[str, float] = {time_key: int(device_ns // spec.time_to_ns)}
            for c, v in zip(self.profile.channels, row, strict=True):
                key, to_si = keys[c]
                obj[key] = round(float(v) / to_si, 5)
            text += json.dumps(obj) + "\n"
        data = text.encode()
        room = mtu - 3
        out = [(data[i : i + room], 0) for i in range(0, len(data), room)]
        if out:
            out[-1] = (out[-1][0], len(rows))
        return out
