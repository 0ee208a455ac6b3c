"""The MQTT version every poise client speaks, from one setting.

``POISE_MQTT_PROTOCOL`` is ``5`` (the default; Mosquitto) or ``3.1.1`` (brokers that speak
only that, such as NATS's MQTT listener). ``poise stack up --broker nats`` puts it in the
``env`` it prints, so a site moves to NATS without touching any command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paho.mqtt.enums import MQTTProtocolVersion

VERSIONS = ("5", "3.1.1")


def mqtt_protocol(value: str | None = None) -> str:
    """``5`` or ``3.1.1``: the value given, else the environment's, else ``5``."""
    text = value if value is not None else os.environ.get("POISE_MQTT_PROTOCOL", "5")
    if text not in VERSIONS:
        raise ValueError(f"POISE_MQTT_PROTOCOL: expected 5 or 3.1.1, found {text!r}")
    return text


def paho_protocol(value: str | None = None) -> MQTTProtocolVersion:
    """The paho ``protocol=`` constant for that version."""
    from paho.mqtt.enums import MQTTProtocolVersion

    if mqtt_protocol(value) == "5":
        return MQTTProtocolVersion.MQTTv5
    return MQTTProtocolVersion.MQTTv311
