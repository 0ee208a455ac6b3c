"""Clock model: one timeline for samples of a sensor that has no timestamps of its own.

BLE delivers notifications in bursts at connection events, so a sample's host arrival time
is its true time plus a latency that is never negative and varies by tens of ms. The
device's sample clock is steady but off by up to a few hundred ppm. So sample k is at
``t_k = t0 + k * period`` and every arrival lies on or above that line: the model fits the
*lower envelope* of (sample index, arrival time): a line through the per-block minima of the
arrival residuals, over a sliding window. Bursts and jitter only ever raise arrivals, so
they do not pull the line; drift shows as its slope.

Pure: arrival times come in as arguments, never from a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClockParams:
    nominal_rate_hz: float
    block_s: float = 1.0  # residual minima are taken per block of this length
    window_s: float = 30.0  # blocks older than this no longer shape the line
    max_drift_ppm: float = 1000.0  # a fitted slope beyond this is clamped (a stalled stream)
    max_slew: float = 0.05  # corrections bend time by at most this fraction of a period per sample


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

    @property
    def samples_seen(self) -> int:
        return self._k

    def _refit_closed(self) -> None:
        """Slope and intercept from the closed blocks; runs once per block."""
        ks = np.array([p[0] for p in self._blocks])
        rs = np.array([p[1] for p in self._blocks])
        slope = 0.0
        if len(ks) >= 3 and np.ptp(ks) > 0:
            slope = float(np.polyfit(ks, rs, 1)[0])
            limit = self.nominal_period_ns * self.params.max_drift_ppm * 1e-6
            slope = float(np.clip(slope, -limit, limit))
        self._slope = slope
        # lower envelope: the line with that slope that no block minimum lies below
        self._closed_intercept = float(np.min(rs - slope * ks)) if len(ks) else float("inf")

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
        if self._last_ns is None:
            out = np.round(target).astype(np.int64)
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
