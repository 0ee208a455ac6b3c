"""Shared fixtures. Integration tests run against real Mosquitto and InfluxDB processes that
poise.stack starts on free loopback ports, one throwaway stack per test that needs one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from poise.core.influx import InfluxV1
from poise.stack import LocalStack

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    s = LocalStack(tmp_path / "stack")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def influx(stack: LocalStack) -> Iterator[InfluxV1]:
    info = stack.info()
    client = InfluxV1(info.influx_url, info.database)
    try:
        yield client
    finally:
        client.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate``; fail the test naming ``what`` if it stays false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
