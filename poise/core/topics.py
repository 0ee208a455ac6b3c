"""MQTT topic scheme, version 1, and the pseudonymous ids that appear in it.

Topics carry ids only: ``[A-Za-z0-9_-]{1,64}``, never a name or other identifying data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PREFIX = "poise/v1"
RAW_ALL = f"{PREFIX}/raw/+/+/+"


class TopicError(ValueError):
    """A topic or id that does not follow the scheme."""


def check_id(kind: str, value: str) -> str:
    if not ID_RE.fullmatch(value):
        raise TopicError(
            f"{kind} id {value!r} must match [A-Za-z0-9_-]{{1,64}} (pseudonymous ids only)"
        )
    return value


@dataclass(frozen=True)
class RawKey:
    site: str
    patient: str
    sensor: str


def raw(site: str, patient: str, sensor: str) -> str:
    return (
        f"{PREFIX}/raw/{check_id('site', site)}/{check_id('patient', patient)}/"
        f"{check_id('sensor', sensor)}"
    )


def parse_raw(topic: str) -> RawKey:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:3]) != f"{PREFIX}/raw":
        raise TopicError(f"not a raw-frame topic ({PREFIX}/raw/SITE/PATIENT/SENSOR): {topic!r}")
    site, patient, sensor = parts[3:]
    return RawKey(check_id("site", site), check_id("patient", patient), check_id("sensor", sensor))


def status(site: str, sensor: str) -> str:
    return f"{PREFIX}/status/{check_id('site', site)}/{check_id('sensor', sensor)}"


def session(site: str, patient: str) -> str:
    return f"{PREFIX}/session/{check_id('site', site)}/{check_id('patient', patient)}"


def metrics(site: str, patient: str) -> str:
    return f"{PREFIX}/metrics/{check_id('site', site)}/{check_id('patient', patient)}"


def alerts(site: str, patient: str) -> str:
    return f"{PREFIX}/alerts/{check_id('site', site)}/{check_id('patient', patient)}"
