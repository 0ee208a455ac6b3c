"""Device status, one schema: the retained JSON a gateway publishes per sensor on
``poise/v1/status/SITE/SENSOR`` and for itself on ``poise/v1/status/SITE/GATEWAY`` (with a
last will saying it went offline). Real gateways, ``collect --virtual``, ``poise simulate``
and the demo all build it here, and readers (console, ingest) read these keys.

No names: ids are pseudonymous, and a status carries no patient id (the topic names only
site and sensor).
"""

from __future__ import annotations

from typing import Any

STATUS_VERSION = 1
STATES = ("idle", "scanning", "connecting", "streaming", "reconnecting", "stopped")
# the counters of a sensor status, all whole numbers
COUNTERS = (
    "connects",
    "drops",
    "stalls",
    "notifications",
    "samples",
    "frames",
    "lost_samples",
    "duplicates",
    "skipped_bytes",
)


def sensor_status(
    *,
    state: str,
    profile: str,
    placement: str | None,
    rate_hz: float,
    counters: dict[str, int],
    effective_rate_hz: float | None = None,
    jitter_ms: float | None = None,
    battery_pct: int | None = None,
    rssi_dbm: int | None = None,
) -> dict[str, Any]:
    """One sensor's status. ``rate_hz`` is the configured rate; ``lost_pct`` the share of
    measured samples that never arrived."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, found {state!r}")
    unknown = set(counters) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown counters {sorted(unknown)}")
    c = {k: int(counters.get(k, 0)) for k in COUNTERS}
    measured = c["samples"] + c["lost_samples"]
    return {
        "v": STATUS_VERSION,
        "kind": "sensor",
        "online": state == "streaming",
        "state": state,
        "profile": profile,
        "placement": placement,
        "rate_hz": rate_hz,
        "effective_rate_hz": effective_rate_hz,
        "lost_pct": round(100.0 * c["lost_samples"] / measured, 3) if measured else 0.0,
        "jitter_ms": jitter_ms,
        "battery_pct": battery_pct,
        "rssi_dbm": rssi_dbm,
        **c,
    }


def gateway_status(online: bool) -> dict[str, Any]:
    return {"v": STATUS_VERSION, "kind": "gateway", "online": online}
