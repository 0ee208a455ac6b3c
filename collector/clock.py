"""Clock model: one timeline for samples of a sensor that has no timestamps of its own.

BLE delivers notifications in bursts at connection events, so a sample's host arrival time
is its true time plus a latency that is never negative and varies by tens of ms. The
device's sample clock is steady but off nominal: a few hundred ppm for a crystal, 0.5-3 % for
the RC oscillators of cheap sensors. So sample k is at
``t_k = t0 + k * period`` and every arrival lies on or above that line: the model fits the
*lower envelope* of (sample index, arrival time): a line through the per-block minima of the
arrival residuals, over a sliding window. Bursts and jitter only ever raise arrivals, so
they do not pull the line; drift shows as its slope.

Pure: arrival times come in as arguments, never from a clock. They must come from a
monotonic timeline (``HostTime``): a wall clock that NTP steps would look like a gap.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClockParams:
    nominal_rate_hz: float
    block_s: float = 1.0  # residual minima are taken per block of this length
    window_s: float = 30.0  # blocks older than this no longer shape the line
    # a fitted slope beyond this is clamped (a stalled stream). 5 %: RC oscillators run up to
    # 3 % off nominal, and a device 3 % slow has a period 3.1 % long
    max_drift_ppm: float = 50_000.0
    max_slew: float = 0.05  # corrections bend time by at most this fraction of a period per sample
    gap_s: float = 0.15  # arrivals this much later than the line mean samples were lost ...
    gap_periods: float = 8.0  # ... and at least this many sample periods


class HostTime:
    """The gateway's arrival timeline: Unix-epoch nanoseconds that only the monotonic clock
    advances. Anchored to the wall clock once, when created, so an NTP step later (routine on
    a Raspberry Pi after boot) does not jump arrival times and is not mistaken for a gap.
    Start the gateway after the clock is synchronised (systemd: ``After=time-sync.target``)."""

    def __init__(
        self,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._monotonic_ns = monotonic_ns
        self._offset_ns = wall_ns() - monotonic_ns()

    def now_ns(self) -> int:
        return self._monotonic_ns() + self._offset_ns


class HostClock:
    """Feed each decoded batch with its arrival time; get a time for every sample."""

    def __init__(self, params: ClockParams) -> None:
        self.params = params
        self.nominal_period_ns = 1e9 / params.nominal_rate_hz
        self._block_len = max(1, round(params.block_s * params.nominal_rate_hz))
        self._max_blocks = max(2, round(params.window_s / params.block_s))
        self._blocks: deque[tuple[float, float]] = deque()  # (k of the minimum, min residual)
        self._cur_block = -1
        self._cur_min: tuple[float, float] | None = None
        self._k = 0  # samples seen
        self._last_ns: int | None = None
        self._ref_ns: int | None = None  # arrival of the first batch: residuals relative to it
        self.period_ns = self.nominal_period_ns
        self._slope = 0.0
        self._closed_intercept = float("inf")
        self.lost_samples = 0  # samples the device measured that never arrived
        self._pending: tuple[int, int, float] | None = None  # a gap being refined
        self._frozen = (0.0, 0.0)  # the line before that gap

    @property
    def refining_gap(self) -> bool:
        """A gap was just detected and its size is still being refined."""
        return self._pending is not None

    def _refit_closed(self) -> None:
        """Slope and intercept from the closed blocks; runs once per block."""
        ks = np.array([p[0] for p in self._blocks])
        rs = np.array([p[1] for p in self._blocks])
        slope = 0.0
        if len(ks) >= 2 and np.ptp(ks) > 0:
            slope = float(np.polyfit(ks, rs, 1)[0])
            limit = self.nominal_period_ns * self.params.max_drift_ppm * 1e-6
            slope = float(np.clip(slope, -limit, limit))
        self._slope = slope
        # lower envelope: the line with that slope that no block minimum lies below
        self._closed_intercept = float(np.min(rs - slope * ks)) if len(ks) else float("inf")

    def settle(self) -> None:
        """End of a stream: finish refining a gap with the arrivals seen so far."""
        if self._pending is None:
            return
        first, _until, best = self._pending
        self._pending = None
        if best != float("inf"):
            fix = round(best / self.nominal_period_ns)
            if fix:
                self._k += fix
                self.lost_samples += fix
                self._shift_since(first, fix)

    def _shift_since(self, k_from: int, fix: int) -> None:
        d = fix * self.nominal_period_ns
        self._blocks = deque((k + fix, r - d) if k >= k_from else (k, r) for k, r in self._blocks)
        if self._cur_min is not None and self._cur_min[0] >= k_from:
            self._cur_min = (self._cur_min[0] + fix, self._cur_min[1] - d)
        if self._blocks:
            self._refit_closed()

    def _fit(self) -> tuple[float, float]:
        """(intercept residual, period) of the lower envelope line."""
        intercept = self._closed_intercept
        if self._cur_min is not None:
            intercept = min(intercept, self._cur_min[1] - self._slope * self._cur_min[0])
        return intercept, self.nominal_period_ns + self._slope

    def stamp(self, n_samples: int, arrival_ns: int) -> npt.NDArray[np.int64]:
        """Times (ns) for ``n_samples`` decoded from one notification that arrived at
        ``arrival_ns``; the last of them is the newest sample."""
        if n_samples <= 0:
            return np.empty(0, dtype=np.int64)
        if self._ref_ns is None:
            self._ref_ns = arrival_ns
        k_last = self._k + n_samples - 1
        residual = (arrival_ns - self._ref_ns) - k_last * self.nominal_period_ns
        jump = False
        if self._blocks:
            # during a gap's refinement the line stays as it was before the gap, so that
            # refits mixing both sides of the gap cannot bias the correction
            icpt, slope = (
                self._frozen if self._pending is not None else (self._closed_intercept, self._slope)
            )
            late_ns = residual - (icpt + slope * k_last)
            gap_ns = max(self.params.gap_s * 1e9, self.params.gap_periods * self.nominal_period_ns)
            if late_ns > gap_ns:
                # The device went on measuring while nothing reached us (a drop, a stall, a
                # full FIFO): those samples are lost. Count them and move the index on.
                lost = round(late_ns / self.nominal_period_ns)
                self._k += lost
                self.lost_samples += lost
                k_last += lost
                residual -= lost * self.nominal_period_ns
                self._pending = (k_last - n_samples + 1, k_last + self._block_len, float("inf"))
                self._frozen = (self._closed_intercept, self._slope)
                jump = True
            elif self._pending is not None:
                # refine with the earliest arrivals after the gap: the lowest residual is the
                # device's real timing, as the line's is before it
                first, until, best = self._pending
                best = min(best, late_ns)
                if k_last < until:
                    self._pending = (first, until, best)
                else:
                    self._pending = None
                    fix = round(best / self.nominal_period_ns)
                    if fix:
                        self._k += fix
                        self.lost_samples += fix
                        k_last += fix
                        residual -= fix * self.nominal_period_ns
                        jump = fix > 0  # time never jumps back: slewing takes it there
                        # minima recorded since the gap used the old index: move them too,
                        # or the envelope would keep the error for a whole window
                        self._shift_since(first, fix)
        block = k_last // self._block_len
        if block != self._cur_block:
            if self._cur_min is not None:
                self._blocks.append(self._cur_min)
                while len(self._blocks) > self._max_blocks:
                    self._blocks.popleft()
                self._refit_closed()
            self._cur_block = block
            self._cur_min = (float(k_last), residual)
        elif self._cur_min is None or residual < self._cur_min[1]:
            self._cur_min = (float(k_last), residual)
        intercept, period = self._fit()
        self.period_ns = period
        ks = np.arange(self._k, self._k + n_samples, dtype=np.float64)
        target = self._ref_ns + intercept + ks * period
        if self._last_ns is None or jump:
            out = np.round(target).astype(np.int64)
            if self._last_ns is not None:
                out = np.maximum(out, self._last_ns + 1 + np.arange(n_samples, dtype=np.int64))
        else:
            # Slew towards the fitted line instead of jumping: a refit (a lower arrival seen,
            # old minima leaving the window) then bends time by at most max_slew per sample
            # and never makes it run backwards or bunch up.
            max_slew = self.params.max_slew * period
            out = np.empty(n_samples, dtype=np.int64)
            prev = float(self._last_ns)
            for i, tgt in enumerate(target):
                nxt = prev + period
                prev = nxt + min(max(tgt - nxt, -max_slew), max_slew)
                out[i] = round(prev)
        self._last_ns = int(out[-1])
        self._k += n_samples
        return out


class DeviceClock:
    """For devices that timestamp their samples (Polar PMD, JSON sketches): the device's
    clock mapped onto the host's. The offset is the lower envelope of (arrival - device
    time) over a sliding window, as for HostClock: latency only ever makes arrivals later."""

    def __init__(self, window_s: float = 30.0, block_s: float = 1.0) -> None:
        self._blocks: deque[tuple[int, int]] = deque()  # (device time, min offset) per block
        self._block_ns = int(block_s * 1e9)
        self._window_ns = int(window_s * 1e9)
        self._cur: tuple[int, int] | None = None  # (block start device time, min offset)
        self.offset_ns: int | None = None

    def observe(self, device_ns: int, arrival_ns: int) -> None:
        """A notification whose newest sample has ``device_ns`` arrived at ``arrival_ns``."""
        off = arrival_ns - device_ns
        if self._cur is None or device_ns - self._cur[0] >= self._block_ns:
            if self._cur is not None:
                self._blocks.append(self._cur)
            self._cur = (device_ns, off)
            while self._blocks and device_ns - self._blocks[0][0] > self._window_ns:
                self._blocks.popleft()
        elif off < self._cur[1]:
            self._cur = (self._cur[0], off)
        self.offset_ns = min([b[1] for b in self._blocks] + [self._cur[1]])

    def to_host(self, device_ns: int) -> int:
        if self.offset_ns is None:
            raise ValueError("no notification observed yet")
        return device_ns + self.offset_ns
