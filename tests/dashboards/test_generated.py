"""The committed dashboards are what the generators make, they validate against the JSON
Schema converted from Grafana's published dashboard types, and the query class refuses what
the derived-data tables do not have."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dashboards import build
from dashboards.influxql import Select, tag_values

SCHEMA = Path(build.__file__).parent / "schema" / "dashboard.schema.json"


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert build.main(["--out", str(out)]) == 0
    fresh, committed = build.outputs(out), build.outputs(build.GENERATED)
    assert len(fresh) == len(committed) == len(build.DASHBOARDS) + 1
    for new, old in zip(fresh, committed, strict=True):
        assert new.read_text(encoding="utf-8") == old.read_text(encoding="utf-8"), (
            f"{old.name} is stale: run python -m dashboards.build"
        )
    assert build.main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
def test_dashboard_validates_against_grafana_schema(name: str) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    doc = json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_schema_catches_a_wrong_dashboard() -> None:
    """The schema is strict enough to matter: a misspelt panel key and a bad type fail."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    doc = json.loads((build.GENERATED / "live-session.json").read_text(encoding="utf-8"))
    doc["panels"][0]["titel"] = "typo"
    doc["refresh"] = 1
    messages = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    assert any("titel" in m for m in messages)
    assert any("is not of type" in m for m in messages)


def test_live_session_refreshes_every_second() -> None:
    doc = json.loads((build.GENERATED / "live-session.json").read_text(encoding="utf-8"))
    assert doc["refresh"] == "1s"
    assert "1s" in doc["timepicker"]["refresh_intervals"]


def test_every_dashboard_has_a_unique_uid_and_only_influxql_targets() -> None:
    uids = set()
    for name in build.DASHBOARDS:
        doc = json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))
        uids.add(doc["uid"])
        for panel in doc["panels"]:
            assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
            for t in panel["targets"]:
                assert t["datasource"] == {"type": "influxdb", "uid": "poise-influxdb"}
                assert t["rawQuery"] is True
                assert "$timeFilter" in t["query"]
    assert len(uids) == len(build.DASHBOARDS)


def test_query_class_renders_influxql() -> None:
    q = (
        Select("sway_live")
        .where_var("patient", "patient")
        .field("rms_m_s2", "mean", "rms")
        .field_sum("baseline_rms_m_s2", "mdc_rms_m_s2", 1, "mean", "upper")
        .group_by_time()
        .group_by("condition")
    )
    assert q.render() == (
        'SELECT mean("rms_m_s2") AS "rms", mean("baseline_rms_m_s2") + mean("mdc_rms_m_s2") '
        'AS "upper" FROM "derived"."sway_live" WHERE $timeFilter AND "patient" =~ /^$patient$/ '
        'GROUP BY time($__interval), "condition" fill(none)'
    )
    inner = Select("sensor_status").field("silent_s", "last", "s").group_by("patient", "sensor")
    outer = (
        Select.over(inner).where_field("s", "<", 5.0).field("s", "count", "n").group_by("patient")
    )
    assert outer.render() == (
        'SELECT count("s") AS "n" FROM (SELECT last("silent_s") AS "s" FROM '
        '"derived"."sensor_status" WHERE $timeFilter GROUP BY "patient", "sensor") '
        'WHERE "s" < 5.0 GROUP BY "patient"'
    )
    assert tag_values("trial_summary", "condition", ("patient", "patient")) == (
        'SHOW TAG VALUES FROM "derived"."trial_summary" WITH KEY = "condition" '
        'WHERE "patient" =~ /^$patient$/'
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Select("sway_lve"), "unknown measurement"),
        (lambda: Select("sway_live").field("rms"), "no field 'rms'"),
        (lambda: Select("sway_live").where_var("sensor", "sensor"), "no tag 'sensor'"),
        (lambda: Select("intensity_live").field("zone", "mean"), r"mean\(\) of str field"),
        (lambda: Select("alert").field("value", alias='x" OR 1'), "alias"),
        (lambda: Select("alert").render(), "selects no field"),
        (lambda: Select("trial_summary").where_field("kind", "=", "a'b"), "plain word"),
    ],
)
def test_query_class_refuses_what_the_tables_lack(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make().render()


def test_docs_describe_every_panel() -> None:
    docs = (Path(build.__file__).parents[1] / "docs" / "dashboards.md").read_text(encoding="utf-8")
    for name in build.DASHBOARDS:
        doc = json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))
        assert f"`{doc['uid']}`" in docs
        for panel in doc["panels"]:
            title = "ROM: *joint motion*" if panel["title"].startswith("ROM: ") else panel["title"]
            assert title.lower() in docs.lower(), f"docs/dashboards.md lacks {title!r}"
