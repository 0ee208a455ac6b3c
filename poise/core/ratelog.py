"""Warnings at a bounded rate: a flood of bad input must not fill a disk with log lines.

The first occurrence is logged at once; later ones within ``every_s`` are only counted, and
the next line that gets through says how many were held back and for which reasons.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        log: logging.Logger,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.every_s = every_s
        self.clock = clock
        self._last = -float("inf")
        self._held: Counter[str] = Counter()

    def warning(self, reason: str, msg: str, *args: object) -> bool:
        """Log now (True) or count it under ``reason`` for the next line (False)."""
        now = self.clock()
        if now - self._last < self.every_s:
            self._held[reason] += 1
            return False
        if self._held:
            held = ", ".join(f"{r} {n}" for r, n in sorted(self._held.items()))
            self.log.warning(msg + " (and %d more in the last %.0f s: %s)", *args,
                             sum(self._held.values()), now - self._last, held)
            self._held.clear()
        else:
            self.log.warning(msg, *args)
        self._last = now
        return True


class RateLimit:
    """A token bucket per key: ``allow(key)`` is True at most ``burst`` times at once and
    ``per_s`` times a second on average after that. For work a flood must not multiply (a
    dead letter per refused frame): what is not allowed is counted in ``withheld``."""

    def __init__(
        self, per_s: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_s < 0 or burst < 1:
            raise ValueError(f"a rate limit needs per_s >= 0 and burst >= 1, got {per_s}, {burst}")
        self.per_s = per_s
        self.burst = burst
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.withheld: Counter[str] = Counter()

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, at = self._tokens.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_s)
        if tokens >= 1.0:
            self._tokens[key] = (tokens - 1.0, now)
            return True
        self._tokens[key] = (tokens, now)
        self.withheld[key] += 1
        return False
