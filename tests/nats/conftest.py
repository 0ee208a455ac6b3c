"""A real nats-server (JetStream + MQTT listener) per test, started by the project."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from poise.jetstream.server import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", site="clinic")
    server.start()
    try:
        yield server
    finally:
        server.stop()
