"""What every command module shares: argument types, credentials from the environment,
output helpers and the error a user can fix (``UsageError``, exit code 2)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np


class UsageError(ValueError):
    """A problem with the input that the user can fix; printed without a traceback, exit 2."""


def package_version() -> str:
    try:
        return version("poise")
    except PackageNotFoundError:
        return "unknown"


def hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:1883, found {text!r}"
        )
    return host, int(port)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {text!r}")
    return value


def count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text!r}")
    return int(text)


ROLES = ("gateway", "ingest", "worker", "console", "reader", "admin")


def _secret(name: str) -> str | None:
    """``NAME`` from the environment, or the content of the file ``NAME_FILE`` names (as
    container secrets are given)."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise UsageError(f"{name}_FILE={path}: cannot read: {exc.strerror}") from None
    return None


def _role_var(role: str, service: str, what: str) -> str | None:
    """``POISE_{ROLE}_{SERVICE}_{WHAT}`` first, then the generic ``POISE_{SERVICE}_{WHAT}``."""
    return _secret(f"POISE_{role.upper()}_{service}_{what}") or _secret(f"POISE_{service}_{what}")


def _ca_file(role: str, service: str) -> str | None:
    """``POISE_{ROLE}_{SERVICE}_CA`` or ``POISE_{SERVICE}_CA``: a CA file (a path, not a
    secret; checked to be readable, so a typo fails at start with its name) or ``system`` for
    the machine's trust store."""
    name = f"POISE_{role.upper()}_{service}_CA"
    path = os.environ.get(name) or os.environ.get(name := f"POISE_{service}_CA")
    if not path or path == "system":
        return path or None
    if not os.access(path, os.R_OK):
        raise UsageError(f"{name}={path}: no readable CA file there")
    return path


def influx_auth(role: str = "ingest") -> Any:
    """InfluxDB credentials of ``role`` from the environment (never from arguments), with the
    CA file of ``POISE_{ROLE}_INFLUX_CA`` / ``POISE_INFLUX_CA`` for an https URL."""
    from poise.core.influx import Auth

    ca = _ca_file(role, "INFLUX")
    token = _role_var(role, "INFLUX", "TOKEN")
    if token:
        return Auth(token=token, ca_file=ca)
    user = _role_var(role, "INFLUX", "USER")
    if user:
        return Auth(username=user, password=_role_var(role, "INFLUX", "PASSWORD") or "", ca_file=ca)
    return Auth(ca_file=ca)


def mqtt_credentials(role: str = "gateway") -> tuple[str | None, str | None]:
    """MQTT user and password of ``role`` from the environment (never from arguments)."""
    return _role_var(role, "MQTT", "USER"), _role_var(role, "MQTT", "PASSWORD")


def mqtt_ca(role: str = "gateway") -> str | None:
    """TLS to the broker: ``POISE_{ROLE}_MQTT_CA`` or ``POISE_MQTT_CA`` (a CA file or
    ``system``); None means plain MQTT, for a broker on the same machine only."""
    return _ca_file(role, "MQTT")


def mqtt_setup(client: Any, role: str) -> None:
    """Log a paho client in as ``role`` and turn on TLS when configured: the one call every
    MQTT client of ours makes before ``connect`` (credentials and CA from the environment)."""
    from poise.core.tls import configure_mqtt

    user, password = mqtt_credentials(role)
    if user is not None:
        client.username_pw_set(user, password)
    configure_mqtt(client, mqtt_ca(role))


def json_clean(x: Any) -> Any:
    """JSON-ready: non-finite floats become null, numpy scalars plain numbers."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_clean(v) for v in x]
    if isinstance(x, np.generic):
        return json_clean(x.item())
    return x


def print_json(obj: Any) -> None:
    print(json.dumps(json_clean(obj)))


def table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>12}  {unit}")


def fail(command: str, message: str, code: int = 2) -> int:
    """Print ``poise COMMAND: message`` on stderr and return the exit code."""
    print(f"poise {command}: {message}", file=sys.stderr)
    return code
