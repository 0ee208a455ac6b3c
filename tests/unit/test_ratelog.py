"""Bounded rates for what a flood must not multiply: log lines and dead letters."""

from __future__ import annotations

import logging

import pytest

from poise.core.ratelog import RateLimit, RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_rate_limit_allows_a_burst_then_the_rate_per_key():
    clock = Clock()
    rl = RateLimit(per_s=2.0, burst=5, clock=clock)
    assert [rl.allow("a") for _ in range(7)] == [True] * 5 + [False] * 2
    assert rl.allow("b")  # another reason has its own bucket
    clock.t = 1.0  # two tokens back
    assert [rl.allow("a") for _ in range(3)] == [True, True, False]
    clock.t = 100.0  # refilled, never beyond the burst
    assert sum(rl.allow("a") for _ in range(10)) == 5
    assert rl.withheld == {"a": 2 + 1 + 5}


def test_rate_limit_refuses_nonsense_parameters():
    with pytest.raises(ValueError, match="per_s >= 0 and burst >= 1"):
        RateLimit(per_s=1.0, burst=0)


def test_rate_limited_log_counts_what_it_holds_back(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.ratelog"), every_s=10.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="t.ratelog")
    assert rl.warning("x", "bad %s", 1)
    assert not any(rl.warning("y", "bad %s", 2) for _ in range(4))
    clock.t = 11.0
    assert rl.warning("x", "bad %s", 3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad 1", "bad 3 (and 4 more in the last 11 s: y 4)"]
