"""Shared fixtures. Integration tests run against real Mosquitto and InfluxDB processes that
poise.stack starts on free loopback ports, one throwaway stack per test that needs one,
secured as in production: no anonymous access, the role ACL, InfluxDB auth on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from poise.core.influx import InfluxV1
from poise.stack import LocalStack

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Sites whose gateways have a login on the test stack from the start; the first is the
# gateway user of ``stack.env``. ``stack.mqtt_login("gateway", site)`` adds any other site.
TEST_SITES = ("t", "clinic", "clinic-a", "demo", "site1", "s1", "a", "b")


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A running LocalStack with one login per role (docs/security.md).

    Credentials, per role (gateway, ingest, worker, console, reader, admin):

    - ``stack.env``: the ``POISE_*`` variables ``poise stack up`` prints. They are also set in
      ``os.environ`` for the test, so code that calls ``poise.cli.common.mqtt_credentials(role)``
      or ``influx_auth(role)`` logs in as that role; subprocesses inherit them
      (``env={**os.environ}``). The gateway user there is site ``t``.
    - ``stack.mqtt_kwargs(role, site=None)``: ``username``, ``password``, ``tls_ca`` keyword
      arguments for ``Publisher(...)`` and ``Ingest(...)``; a gateway logs in as its site.
    - ``stack.mqtt_login(role, site=None)``: ``(user, password)``; ``stack.mqtt_client(role)``:
      a logged-in paho client.
    - ``stack.influx_auth(role)`` (an ``Auth``) and ``stack.influx_client(role)``.

    The ``influx`` fixture is an admin client: tests may create, write and count freely.
    """
    s = LocalStack(tmp_path / "stack", sites=TEST_SITES)
    s.start()
    for key, value in s.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def influx(stack: LocalStack) -> Iterator[InfluxV1]:
    """An InfluxDB client of the stack's admin role on its database."""
    client = stack.influx_client("admin")
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
