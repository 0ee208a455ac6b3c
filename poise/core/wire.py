"""Raw frame wire format, version 1 (docs/wire-format.md is the byte-by-byte reference).

A frame carries consecutive, evenly spaced samples of one sensor. Layout, little-endian::

    off  size  field
      0     2  magic b"PF"
      2     1  version (1)
      3     1  flags (reserved, 0)
      4     8  first_sample_seq  u64  index of the first sample in the sensor's stream
     12     8  t0_ns             i64  time of the first sample, ns since the Unix epoch (UTC)
     20     4  period_ns         u32  sample period, ns (> 0)
     24     2  n_samples         u16  (>= 1)
     26     1  n_channels        u8   (1..32)
     27     1  sensor_len        u8   (1..64)
     28     L  sensor id, ASCII [A-Za-z0-9_-]
   28+L     C  channel codes, one byte each (CHANNELS), no repeats
 28+L+C  4·N·C float32 samples, sample-major (s0c0, s0c1, ..., s1c0, ...)
    end     4  CRC-32 (IEEE, as zlib.crc32) of every preceding byte

Pure: no I/O. ``decode`` never raises anything but ``WireError``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from poise.core.channels import CHANNEL_CODES, CHANNELS, IMU6, IMU9
from poise.core.ids import ID_RE

MAGIC = b"PF"
VERSION = 1
HEADER = struct.Struct("<2sBBQqIHBB")
CRC = struct.Struct("<I")
MAX_CHANNELS = 32
MAX_SAMPLES = 65535

__all__ = ["CHANNELS", "CHANNEL_CODES", "IMU6", "IMU9", "Frame", "WireError", "decode", "encode"]


class WireError(ValueError):
    """A payload that is not a valid v1 frame. ``reason`` is a short stable code for counters."""

    def __init__(self, reason: str, detail: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{reason}: {detail}{where}")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Frame:
    """Consecutive samples of one sensor; sample i is at ``t0_ns + i * period_ns``."""

    sensor_id: str
    first_sample_seq: int
    t0_ns: int
    period_ns: int
    channels: tuple[str, ...]
    data: npt.NDArray[np.float32] = field(repr=False)  # shape (n_samples, n_channels)

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    def times_ns(self) -> npt.NDArray[np.int64]:
        return self.t0_ns + np.arange(self.n_samples, dtype=np.int64) * self.period_ns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.sensor_id == other.sensor_id
            and self.first_sample_seq == other.first_sample_seq
            and self.t0_ns == other.t0_ns
            and self.period_ns == other.period_ns
            and self.channels == other.channels
            and np.array_equal(self.data, other.data)
        )

    __hash__ = None  # type: ignore[assignment]


def encode(frame: Frame) -> bytes:
    """Serialize a frame; raises ValueError on a frame that could not be decoded again."""
    if not ID_RE.fullmatch(frame.sensor_id):
        raise ValueError(f"sensor id {frame.sensor_id!r} is not [A-Za-z0-9_-]{{1,64}}")
    try:
        codes = bytes(CHANNEL_CODES[name] for name in frame.channels)
    except KeyError as exc:
        raise ValueError(
            f"unknown channel {exc.args[0]!r}; known: {sorted(CHANNEL_CODES)}"
        ) from None
    if len(set(codes)) != len(codes) or not 1 <= len(codes) <= MAX_CHANNELS:
        raise ValueError(f"channels must be 1..{MAX_CHANNELS} distinct names: {frame.channels}")
    data = np.ascontiguousarray(frame.data, dtype="<f4")
    if data.ndim != 2 or data.shape[1] != len(codes) or not 1 <= data.shape[0] <= MAX_SAMPLES:
        raise ValueError(f"data shape {data.shape} does not fit {len(codes)} channels")
    if not np.isfinite(data).all():
        raise ValueError("data holds NaN or infinity; the wire format carries finite values only")
    if not 0 < frame.period_ns < 2**32:
        raise ValueError(f"period_ns {frame.period_ns} outside 1..2^32-1")
    sid = frame.sensor_id.encode("ascii")
    head = HEADER.pack(
        MAGIC,
        VERSION,
        0,
        frame.first_sample_seq,
        frame.t0_ns,
        frame.period_ns,
        data.shape[0],
        len(codes),
        len(sid),
    )
    body = head + sid + codes + data.tobytes()
    return body + CRC.pack(zlib.crc32(body))


def decode(payload: bytes) -> Frame:
    """Parse and validate a v1 frame. Raises WireError with a reason code and byte offset."""
    n = len(payload)
    if n < HEADER.size + CRC.size:
        raise WireError("truncated", f"{n} bytes, a frame has at least {HEADER.size + CRC.size}", n)
    magic, version, flags, seq, t0_ns, period_ns, n_samples, n_channels, sid_len = (
        HEADER.unpack_from(payload)
    )
    if magic != MAGIC:
        raise WireError("bad_magic", f"expected {MAGIC!r}, found {magic!r}", 0)
    if version != VERSION:
        raise WireError("unsupported_version", f"version {version}, this reader knows {VERSION}", 2)
    expected = HEADER.size + sid_len + n_channels + 4 * n_samples * n_channels + CRC.size
    if n < expected:
        raise WireError("truncated", f"{n} bytes, header announces {expected}", n)
    if n > expected:
        raise WireError("trailing_bytes", f"{n} bytes, header announces {expected}", expected)
    (crc,) = CRC.unpack_from(payload, n - CRC.size)
    if zlib.crc32(memoryview(payload)[: n - CRC.size]) != crc:
        raise WireError("bad_crc", "checksum does not match the content", n - CRC.size)
    # Past the CRC the bytes are as sent; the checks below catch a buggy sender.
    if flags != 0:
        raise WireError("bad_flags", f"reserved flags must be 0, found {flags}", 3)
    if period_ns == 0:
        raise WireError("bad_period", "period_ns is 0", 20)
    if n_samples == 0:
        raise WireError("no_samples", "n_samples is 0", 24)
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise WireError("bad_channels", f"n_channels {n_channels} outside 1..{MAX_CHANNELS}", 26)
    off = HEADER.size
    sid_bytes = payload[off : off + sid_len]
    sid = sid_bytes.decode("ascii", errors="replace")
    # The character set only: the wire is a byte format. Whether an id is pseudonymous (not
    # a name or a date) is decided where ids enter: config, CLI, topics, events.
    if not ID_RE.fullmatch(sid):
        raise WireError("bad_sensor_id", "sensor id is not [A-Za-z0-9_-]{1,64}", off)
    off += sid_len
    names = []
    for i, code in enumerate(payload[off : off + n_channels]):
        if code not in CHANNELS:
            raise WireError("unknown_channel", f"channel code {code}", off + i)
        names.append(CHANNELS[code][0])
    if len(set(names)) != len(names):
        raise WireError("duplicate_channel", f"channels {names}", off)
    off += n_channels
    data = np.frombuffer(payload, dtype="<f4", count=n_samples * n_channels, offset=off)
    if not np.isfinite(data).all():
        bad = int(np.flatnonzero(~np.isfinite(data))[0])
        raise WireError("non_finite", "NaN or infinity in the samples", off + 4 * bad)
    return Frame(
        sensor_id=sid,
        first_sample_seq=seq,
        t0_ns=t0_ns,
        period_ns=period_ns,
        channels=tuple(names),
        data=data.reshape(n_samples, n_channels),  # read-only view of the payload
    )
