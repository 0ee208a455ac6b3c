"""Upload the generated dashboards and the alert rules to an existing Grafana through its HTTP
API (grafana-client), for a clinic whose Grafana is not started from this project's
provisioning files. Idempotent: running it twice leaves the same state.

What it does, in order: make sure the folder exists; save every dashboard into it
(overwriting the previous version); create or update each alert rule, then set the rule
group's evaluation interval. With ``datasource_uid`` the references to the ``poise-influxdb``
data source are rewritten to the clinic's own InfluxDB data source.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboards import alerts, build
from dashboards.influxql import DATASOURCE_UID


@dataclass
class PushReport:
    folder_created: bool = False
    dashboards: list[str] = field(default_factory=list)
    rules_created: list[str] = field(default_factory=list)
    rules_updated: list[str] = field(default_factory=list)


def load_dashboards(folder: Path = build.GENERATED) -> dict[str, dict[str, Any]]:
    out = {}
    for name in build.DASHBOARDS:
        path = folder / f"{name}.json"
        out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _rewrite_datasource(obj: Any, uid: str) -> Any:
    """Every ``{"type": "influxdb", "uid": "poise-influxdb"}`` and ``datasourceUid``."""
    if isinstance(obj, dict):
        out = {k: _rewrite_datasource(v, uid) for k, v in obj.items()}
        if out.get("uid") == DATASOURCE_UID and out.get("type") == "influxdb":
            out["uid"] = uid
        if out.get("datasourceUid") == DATASOURCE_UID:
            out["datasourceUid"] = uid
        return out
    if isinstance(obj, list):
        return [_rewrite_datasource(v, uid) for v in obj]
    return obj


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(text[:-1]) * units[text[-1]]


def push(
    api: Any,
    *,
    folder_uid: str = alerts.FOLDER,
    folder_title: str = "poise",
    datasource_uid: str | None = None,
    with_alerts: bool = True,
    message: str = "poise dashboards push",
    not_found: Callable[[Exception], bool],
) -> PushReport:
    """``api`` is a ``grafana_client.GrafanaApi``; ``not_found`` tells a 404 from other
    errors (kept as a parameter so this module needs no import of the client)."""
    report = PushReport()
    try:
        api.folder.get_folder(folder_uid)
    except Exception as exc:
        if not not_found(exc):
            raise
        api.folder.create_folder(folder_title, uid=folder_uid)
        report.folder_created = True

    for name, doc in load_dashboards().items():
        body = copy.deepcopy(doc)
        if datasource_uid:
            body = _rewrite_datasource(body, datasource_uid)
        body["id"] = None  # Grafana matches by uid; an id would pin one instance's row
        api.dashboard.update_dashboard(
            {"dashboard": body, "folderUid": folder_uid, "overwrite": True, "message": message}
        )
        report.dashboards.append(name)

    if not with_alerts:
        return report
    (group,) = alerts.provisioning()["groups"]
    rules = []
    for rule in group["rules"]:
        body = {**rule, "folderUID": folder_uid, "ruleGroup": group["name"], "orgID": 1}
        if datasource_uid:
            body = _rewrite_datasource(body, datasource_uid)
        rules.append(body)
        try:
            api.alertingprovisioning.get_alertrule(rule["uid"])
        except Exception as exc:
            if not not_found(exc):
                raise
            api.alertingprovisioning.create_alertrule(body)
            report.rules_created.append(rule["uid"])
        else:
            api.alertingprovisioning.update_alertrule(rule["uid"], body)
            report.rules_updated.append(rule["uid"])
    api.alertingprovisioning.update_rule_group(
        folder_uid,
        group["name"],
        {
            "title": group["name"],
            "folderUid": folder_uid,
            "interval": _seconds(group["interval"]),
            "rules": rules,
        },
    )
    return report
