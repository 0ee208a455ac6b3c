"""What every codec shares: the sample, the error, the stats, the base class.

Codecs: one module per framing, each holding both directions of its wire format.

- ``decode``: the gateway's side. Feed each notification in order (``feed``) and get the
  samples it completed, in SI units, each with only the channels it has; feed the device's
  answers to configuration writes (``answer``), which may carry facts the data needs
  (Polar's FACTOR).
- ``encode``: the device's side, used by the virtual sensors, so they send exactly the bytes
  the decoder reads, and a new framing is tested from both ends.

The codec is chosen from ``CODECS`` by the profile's ``framing``: no code here or elsewhere
branches on a profile id; what differs between devices is profile data. Pure and bounded:
the only state is the protocol's own; every failure is a ``DecodeError`` with a reason and
a byte offset (``strict``) or is counted in ``stats``. Nothing here imports a BLE library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collector.profiles import Profile

MAX_BUFFER_BYTES = 4096
Rows = npt.NDArray[np.float64]  # (n, len(profile.channels)) SI values, one row per sample


class DecodeError(ValueError):
    """Input that does not decode; ``offset`` is the byte offset in the notification."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Sample:
    channels: tuple[str, ...]  # the sample channels this sample has (a shared tuple)
    values: tuple[float, ...]  # SI units, in the order of ``channels``
    extra: dict[str, float] = field(default_factory=dict)  # other fields, SI units
    device_time_ns: int | None = None  # the device's own clock, ns since the Unix epoch

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.channels, self.values, strict=True))


@dataclass
class DecoderStats:
    records: int = 0
    samples: int = 0
    other_records: int = 0
    skipped_bytes: int = 0  # bytes dropped while resynchronising (a stream that lost bytes)
    errors: int = 0  # notifications (or lines) that could not be decoded
    answers: int = 0  # device answers to configuration writes
    refused: int = 0  # ... of which said the write failed


class Codec:
    """The base of every framing's codec: settings resolved, stats, error handling."""

    splittable = False  # True: a notification may end mid-record (a byte stream)

    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        self.profile = profile
        self.strict = strict
        self.settings = profile.resolve(settings)
        self.stats = DecoderStats()
        self.last_refusal: str | None = None

    # --- the gateway's side ---
    def feed(self, data: bytes) -> list[Sample]:
        raise NotImplementedError

    def answer(self, data: bytes) -> None:
        """The device's answer to a configuration write (on the profile's answers char)."""
        self.stats.answers += 1

    def pending_bytes(self) -> int:
        return 0

    def _fail(self, reason: str, offset: int) -> None:
        self.stats.errors += 1
        if self.strict:
            raise DecodeError(reason, offset)

    # --- the device's side ---
    def encode(
        self, rows: Rows, first_index: int, rate_hz: float, mtu: int
    ) -> list[tuple[bytes, int]]:
        """Notifications (bytes, samples completed by it) carrying ``rows`` (SI units, the
        profile's channels), the first of which is the device's sample ``first_index``."""
        raise NotImplementedError

    def device_answer(self, write: bytes) -> bytes | None:
        """What the device answers to ``write`` (profile data), or None."""
        for w, a in self.profile.device.answers:
            if w == write:
                return a
        return None
