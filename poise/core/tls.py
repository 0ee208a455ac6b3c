"""TLS for every client of ours: one place that turns a CA setting into a verifying context.

The setting is a CA file (what ``poise stack up --tls`` makes, or a clinic's own CA) or the
word ``system`` for the machine's trust store (a broker with a public certificate). MQTT
clients (paho) call :func:`configure_mqtt`; HTTP clients (httpx, the InfluxDB client) pass
:func:`client_context` as ``verify``. The server's certificate and host name are always
verified; there is no switch to turn that off.
"""

from __future__ import annotations

import ssl
from typing import Any

SYSTEM = "system"


def client_context(ca: str | None = None) -> ssl.SSLContext:
    """A context that verifies the server against the CA file ``ca`` (or, for None or
    ``"system"``, the system's CAs), TLS 1.2 at least."""
    ctx = ssl.create_default_context(cafile=None if ca in (None, SYSTEM) else ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def configure_mqtt(client: Any, ca: str | None) -> bool:
    """Turn on TLS for a paho ``Client`` when a CA setting is given; returns whether TLS is
    on. Call it before ``connect``."""
    if not ca:
        return False
    client.tls_set_context(client_context(ca))
    return True
