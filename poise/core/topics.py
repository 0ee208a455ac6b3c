"""MQTT topic scheme, version 1, and the pseudonymous ids that appear in it.

Topics carry ids only: ``[A-Za-z0-9_-]{1,64}``, never a name or other identifying data.
"""

from __future__ import annotations

from dataclasses import dataclass

from poise.core.ids import ID_RE, IdError, check_id

__all__ = ["ID_RE", "IdError", "RawKey", "TopicError", "check_id"]

PREFIX = "poise/v1"
RAW_ALL = f"{PREFIX}/raw/+/+/+"
# malformed or implausible payloads, with their reason (MQTT v5 user properties)
DEADLETTER_INGEST = f"{PREFIX}/deadletter/ingest"
STATUS_ALL = f"{PREFIX}/status/+/+"


class TopicError(IdError):
    """A topic that does not follow the scheme (an IdError: a bad id is a bad topic)."""


def _id(kind: str, value: str) -> str:
    try:
        return check_id(kind, value)
    except IdError as exc:
        raise TopicError(str(exc)) from None


@dataclass(frozen=True)
class RawKey:
    site: str
    patient: str
    sensor: str


def raw(site: str, patient: str, sensor: str) -> str:
    return f"{PREFIX}/raw/{_id('site', site)}/{_id('patient', patient)}/{_id('sensor', sensor)}"


def parse_raw(topic: str) -> RawKey:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:3]) != f"{PREFIX}/raw":
        raise TopicError(f"not a raw-frame topic ({PREFIX}/raw/SITE/PATIENT/SENSOR): {topic!r}")
    site, patient, sensor = parts[3:]
    return RawKey(_id("site", site), _id("patient", patient), _id("sensor", sensor))


def parse_status(topic: str) -> tuple[str, str]:
    """(site, sensor or gateway id) of a status topic."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/status":
        raise TopicError(f"not a status topic ({PREFIX}/status/SITE/SENSOR): {topic!r}")
    return _id("site", parts[3]), _id("sensor", parts[4])


def status(site: str, sensor: str) -> str:
    return f"{PREFIX}/status/{_id('site', site)}/{_id('sensor', sensor)}"


def session(site: str, patient: str) -> str:
    return f"{PREFIX}/session/{_id('site', site)}/{_id('patient', patient)}"


def metrics(site: str, patient: str) -> str:
    return f"{PREFIX}/metrics/{_id('site', site)}/{_id('patient', patient)}"


def alerts(site: str, patient: str) -> str:
    return f"{PREFIX}/alerts/{_id('site', site)}/{_id('patient', patient)}"
