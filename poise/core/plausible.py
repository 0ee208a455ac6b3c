"""Plausibility limits on stored samples: what no body-worn sensor can report.

A frame stamped decades away or holding values no IMU can measure is a broken device, a
broken clock or a forged message; storing it would put a confident wrong number in the
record. The ingest refuses such a frame with a reason and counts it (docs/wire-format.md,
"Plausibility"). The limits are generous: ten times what commodity IMUs measure at their
widest range, so no real motion comes near them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from poise.core.wire import Frame

YEAR_2000_NS = 946_684_800 * 10**9


@dataclass(frozen=True)
class Limits:
    earliest_ns: int = YEAR_2000_NS  # no poise data is older
    future_s: float = 24 * 3600.0  # a gateway clock may run ahead, not by more than a day
    acc_m_s2: float = 1600.0  # ±16 g sensors saturate at 157 m/s²
    gyr_rad_s: float = 350.0  # ±2000 °/s sensors saturate at 35 rad/s
    mag_ut: float = 50_000.0  # ±4900 µT is the widest common magnetometer range

    def bound(self, channel: str) -> float:
        return {"acc": self.acc_m_s2, "gyr": self.gyr_rad_s, "mag": self.mag_ut}.get(
            channel[:3], float("inf")
        )


LIMITS = Limits()


def frame_problem(frame: Frame, now_ns: int, limits: Limits = LIMITS) -> tuple[str, str] | None:
    """(reason, detail) when the frame is implausible, else None."""
    n = frame.n_samples
    if n == 0:
        return None
    # Python integers: the last time cannot wrap around as an int64 would
    first = int(frame.t0_ns)
    last = first + (n - 1) * int(frame.period_ns)
    if first < limits.earliest_ns:
        return ("implausible_time", f"first sample at {first} ns, before the year 2000")
    if last > now_ns + int(limits.future_s * 1e9):
        ahead_s = (last - now_ns) / 1e9
        return ("implausible_time", f"last sample {ahead_s:.0f} s in the future")
    # one reduction over the whole frame (the ingest's hot path); a frame holding NaN or
    # infinity (which the wire decoder refuses anyway) takes the column-by-column way
    peaks = np.abs(frame.data).max(axis=0)
    if np.isfinite(peaks).all():
        over = np.flatnonzero(peaks > _bounds(limits, frame.channels))
        if not over.size:
            return None
        i = int(over[0])
        name, worst = frame.channels[i], float(peaks[i])
        return ("implausible_value", f"{name} reaches {worst:.4g}, beyond ±{limits.bound(name):g}")
    for i, name in enumerate(frame.channels):
        column = frame.data[:, i]
        finite = column[np.isfinite(column)]
        if finite.size and float(np.max(np.abs(finite))) > limits.bound(name):
            worst = float(np.max(np.abs(finite)))
            return (
                "implausible_value",
                f"{name} reaches {worst:.4g}, beyond ±{limits.bound(name):g}",
            )
    return None


@lru_cache(maxsize=256)
def _bounds(limits: Limits, channels: tuple[str, ...]) -> npt.NDArray[np.float64]:
    return np.array([limits.bound(name) for name in channels], dtype=np.float64)
