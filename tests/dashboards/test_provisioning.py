"""The Grafana provisioning files: they parse, name the data source the dashboards use, load
the generated dashboards, and hold one alert rule per alert kind of the worker whose query
finds exactly the open episodes on a real InfluxDB."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from dashboards import alerts, build
from dashboards.interpolate import interpolate
from poise.core.derived import ALERT_KINDS
from poise.core.influx import DERIVED_RP, InfluxV1, point_line
from tests.dashboards.clinic import BALANCE, SITE, write_clinic

PROVISIONING = Path(build.__file__).parent / "provisioning"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_datasource_is_the_one_the_dashboards_use() -> None:
    doc = _yaml(PROVISIONING / "datasources" / "poise-influxdb.yaml")
    (ds,) = doc["datasources"]
    assert ds["uid"] == "poise-influxdb"
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["dbName"] == "poise"
    # credentials come from Grafana's environment, never from the file
    assert ds["user"].startswith("$")
    assert ds["secureJsonData"]["password"] == "$__file{/run/secrets/reader_password}"
    assert ds["url"].startswith("$")


def test_dashboard_provider_loads_the_generated_folder() -> None:
    doc = _yaml(PROVISIONING / "dashboards" / "poise.yaml")
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/poise"


def test_one_alert_rule_per_worker_alert_kind() -> None:
    doc = _yaml(PROVISIONING / "alerting" / "poise-alerts.yaml")
    assert doc == alerts.provisioning()
    (group,) = doc["groups"]
    rules = group["rules"]
    assert [r["labels"]["alert_kind"] for r in rules] == list(ALERT_KINDS)
    assert len({r["uid"] for r in rules}) == len(rules)
    for r in rules:
        refs = {d["refId"]: d for d in r["data"]}
        assert r["condition"] in refs
        assert refs["A"]["datasourceUid"] == "poise-influxdb"
        assert refs["B"]["model"]["expression"] == "A"
        assert refs["C"]["model"]["expression"] == "B"
        assert len(r["uid"]) <= 40  # Grafana's limit on a rule uid


@pytest.mark.integration
def test_alert_queries_find_the_open_episodes(influx: InfluxV1) -> None:
    """The clinic has one open episode: p-001's sway above baseline."""
    now_ms = int(time.time() * 1000)
    write_clinic(influx, now_ms * 1_000_000)
    assert _open_episodes(influx, now_ms) == {("sway_above_baseline", SITE, BALANCE): 1}
    # the worker rewrites the episode's point when it ends: the rule stops firing
    (row,) = influx.query('SELECT * FROM "derived"."alert"', epoch="ns")[0]["values"]
    ended = point_line(
        "alert",
        {"site": SITE, "patient": BALANCE, "algorithm_version": "1",
         "session": f"{BALANCE}-s-now", "trial": "t-b-1", "kind": "sway_above_baseline"},
        {"active": False, "end_ns": now_ms * 1_000_000, "value": 0.09, "threshold": 0.062,
         "unit": "m/s²", "evidence": "{}"},
        row[0],
    )  # fmt: skip
    influx.write([ended], rp=DERIVED_RP)
    assert _open_episodes(influx, now_ms) == {}


def _open_episodes(influx: InfluxV1, now_ms: int) -> dict[tuple[str, str, str], int]:
    found = {}
    for r in alerts.provisioning()["groups"][0]["rules"]:
        a = r["data"][0]
        q = interpolate(
            a["model"]["query"],
            from_ms=now_ms - a["relativeTimeRange"]["from"] * 1000,
            to_ms=now_ms + 1000,
            variables={},
        )
        for s in influx.query(q):
            found[(r["labels"]["alert_kind"], s["tags"]["site"], s["tags"]["patient"])] = s[
                "values"
            ][-1][1]
    return found
