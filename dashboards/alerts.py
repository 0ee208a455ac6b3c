"""Grafana alert rules that mirror the worker's alerts: one rule per alert kind of
``poise.core.derived.ALERT_KINDS``, firing per site and patient while the worker has an
episode of that kind open (an ``alert`` point with ``active = true``).

The worker decides; Grafana only routes the alert to the clinic's contact points (e-mail,
chat, pager). Written as ``dashboards/provisioning/alerting/poise-alerts.yaml`` by
``python -m dashboards.build``; the content is JSON, which YAML reads as it is.
"""

from __future__ import annotations

from typing import Any

from dashboards.influxql import DATASOURCE_UID, Select
from poise.core.derived import ALERT_KINDS

FOLDER = "poise"
GROUP = "poise-worker-alerts"
EVALUATE_EVERY = "10s"
LOOKBACK_S = 6 * 3600  # an episode opens within a session; sessions are shorter than this

SUMMARY = {
    "loss_of_balance": "Loss of balance during a balance trial",
    "sway_above_baseline": "Sway above the patient's baseline by more than the MDC",
    "sensor_silent": "A sensor stopped streaming",
    "battery_low": "A sensor's battery is low",
    "rom_past_limit": "A repetition went past the prescribed maximum ROM",
    "pain_above_limit": "Pain reported above the prescription's limit",
}
SEVERITY = {
    "loss_of_balance": "critical",
    "pain_above_limit": "critical",
    "rom_past_limit": "warning",
    "sway_above_baseline": "warning",
    "sensor_silent": "warning",
    "battery_low": "info",
}


def open_episodes(kind: str) -> Select:
    return (
        Select("alert")
        .where_tag("kind", kind)
        .where_field("active", "=", True)
        .field("value", "count", "open")
        .group_by("site", "patient")
    )


def rule(kind: str) -> dict[str, Any]:
    return {
        "uid": f"poise-{kind.replace('_', '-')}",
        "title": f"poise: {kind}",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": LOOKBACK_S, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "query": open_episodes(kind).render(),
                    "rawQuery": True,
                    "resultFormat": "time_series",
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "replaceNN", "replaceWithValue": 0},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        # no alert episode in the look-back is the normal state, not missing data
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "annotations": {
            "summary": SUMMARY[kind],
            "description": "Patient {{ $labels.patient }} at site {{ $labels.site }}: the "
            "poise worker has an open " + kind + " episode. Open the Live session dashboard.",
        },
        "labels": {"source": "poise", "alert_kind": kind, "severity": SEVERITY[kind]},
    }


def provisioning() -> dict[str, Any]:
    missing = set(ALERT_KINDS) - set(SUMMARY)
    if missing:
        raise ValueError(f"alert kinds without a rule summary: {sorted(missing)}")
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": EVALUATE_EVERY,
                "rules": [rule(kind) for kind in ALERT_KINDS],
            }
        ],
    }
