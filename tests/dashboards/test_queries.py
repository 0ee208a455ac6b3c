"""Every query of every dashboard, with $timeFilter, $__interval and the template variables
substituted as Grafana substitutes them, runs on a real InfluxDB holding a small clinic's
derived data and returns the series and values the panel shows. Grafana itself cannot run
here; dashboards.interpolate does what its InfluxDB data source does to a query."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dashboards import build
from dashboards.check import PanelQuery, panel_queries, resolve_variables
from dashboards.interpolate import interpolate
from poise.core.influx import InfluxV1
from tests.dashboards.clinic import BALANCE, KNOWN, ROM, SITE, write_clinic

pytestmark = pytest.mark.integration


def _doc(name: str) -> dict[str, Any]:
    return json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))


def _tag_values(influx: InfluxV1):
    def run(q: str) -> list[str]:
        return sorted({row[1] for s in influx.query(q) for row in s.get("values", [])})

    return run


def _run(
    influx: InfluxV1, pq: PanelQuery, chosen: dict[str, list[str]], now_ms: int
) -> list[dict[str, Any]]:
    q = interpolate(pq.query, from_ms=now_ms - pq.window_ms, to_ms=now_ms, variables=chosen)
    return influx.query(q, epoch="ms")


def _column_values(series: list[dict[str, Any]], column: str) -> list[Any]:
    out = []
    for s in series:
        if column in s["columns"]:
            i = s["columns"].index(column)
            out += [row[i] for row in s["values"] if row[i] is not None]
    return out


def _check_panel(pq: PanelQuery, series: list[dict[str, Any]]) -> None:
    """The series the panel expects: every column it names has values, and every GROUP BY
    tag tells the series apart."""
    assert series, f"{pq.panel} ({pq.ref_id}): no series"
    for column in pq.columns:
        assert _column_values(series, column), f"{pq.panel} ({pq.ref_id}): column {column!r} empty"
    for tag in pq.group_tags:
        assert all(tag in s.get("tags", {}) for s in series), f"{pq.panel}: no {tag!r} tag"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory):
    from poise.stack import LocalStack

    stack = LocalStack(tmp_path_factory.mktemp("stack"), sites=[SITE])
    stack.start()
    now_ms = int(time.time() * 1000)
    try:
        with stack.influx_client("admin") as admin:
            write_clinic(admin, now_ms * 1_000_000)
        # the dashboards query as Grafana does: the read-only role
        with stack.influx_client("reader") as reader:
            yield reader, now_ms + 1000, stack
    finally:
        stack.stop()


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
def test_every_variable_query_returns_values(clinic, name: str) -> None:
    influx, now_ms, _ = clinic
    options, _ = resolve_variables(_doc(name), _tag_values(influx), now_ms=now_ms)
    for variable, values in options.items():
        assert values, f"{name}: variable {variable} has no values"
    assert options["site"] == [SITE]
    if "patient" in options:
        assert options["patient"] == [BALANCE, ROM]


def test_live_session_panels(clinic) -> None:
    influx, now_ms, _ = clinic
    doc = _doc("live-session")
    answered: dict[str, set[str]] = {}
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for patient in (BALANCE, ROM):
        _, chosen = resolve_variables(
            doc, _tag_values(influx), now_ms=now_ms, choose={"patient": [patient]}
        )
        for pq in panel_queries(doc):
            series = _run(influx, pq, chosen, now_ms)
            results[(patient, pq.panel, pq.ref_id)] = series
            if series:
                _check_panel(pq, series)
                answered.setdefault(pq.panel, set()).add(patient)
    # a balance patient fills the sway panels, a ROM patient the joint ones, both the rest
    assert answered["Sway trace (AP, ML)"] == {BALANCE}
    assert answered["Sway RMS against the baseline band"] == {BALANCE}
    assert answered["Joint angle, target and limit"] == {ROM}
    assert answered["Repetitions"] == {ROM}
    assert answered["Open alerts"] == {BALANCE}
    for panel in ("Intensity zone", "Sensors", "annotation Trials"):
        assert answered[panel] == {BALANCE, ROM}, panel
    # known answers
    rms = results[(BALANCE, "Sway RMS against the baseline band", "A")][0]
    last = dict(zip(rms["columns"], rms["values"][-1], strict=True))
    assert last["sway RMS"] == pytest.approx(KNOWN["sway_rms_now"])
    assert last["baseline + MDC"] == pytest.approx(0.062)
    assert last["baseline - MDC"] == pytest.approx(0.038)
    reps = results[(ROM, "Repetitions", "A")][0]
    assert reps["tags"] == {"joint": "knee"}
    assert reps["values"][-1][1] == KNOWN["reps_now"] - 1  # rep_count of the last 20 Hz point
    correct = results[(ROM, "Repetitions", "B")][0]
    assert correct["values"][0][1] == KNOWN["correct_reps"]
    sensors = results[(ROM, "Sensors", "A")]
    online = {s["tags"]["sensor"]: s["values"][0][s["columns"].index("online")] for s in sensors}
    assert online == {"s-sh-2": False, "s-th-2": True}


def test_clinic_overview_rows(clinic) -> None:
    influx, now_ms, _ = clinic
    doc = _doc("clinic-overview")
    _, chosen = resolve_variables(doc, _tag_values(influx), now_ms=now_ms)
    by_ref: dict[str, dict[str, dict[str, Any]]] = {}
    for pq in panel_queries(doc):
        series = _run(influx, pq, chosen, now_ms)
        _check_panel(pq, series)
        by_ref[pq.ref_id] = {
            s["tags"]["patient"]: dict(zip(s["columns"], s["values"][-1], strict=True))
            for s in series
        }
    online = {p: row["sensors online"] for p, row in by_ref["A"].items()}
    assert online == KNOWN["sensors_online"]
    battery = {p: row["lowest battery"] for p, row in by_ref["E"].items()}
    assert battery == KNOWN["lowest_battery"]
    alerts = {p: row["open alerts"] for p, row in by_ref["D"].items()}
    assert alerts == KNOWN["open_alerts"]
    assert set(by_ref["B"]) == {BALANCE}
    assert set(by_ref["C"]) == {ROM}


def test_patient_progress_panels(clinic) -> None:
    influx, now_ms, _ = clinic
    doc = _doc("patient-progress")
    answered: dict[str, set[str]] = {}
    for patient in (BALANCE, ROM):
        _, chosen = resolve_variables(
            doc, _tag_values(influx), now_ms=now_ms, choose={"patient": [patient]}
        )
        for pq in panel_queries(doc):
            series = _run(influx, pq, chosen, now_ms)
            if series:
                _check_panel(pq, series)
                answered.setdefault(pq.panel, set()).add(patient)
            if pq.panel == "Timed Up and Go" and patient == BALANCE:
                values = [v for v in series[0]["values"] if v[1] is not None]
                assert values[-1][1] == pytest.approx(KNOWN["tug_last_s"])
            if pq.panel == "Sway per condition, with the MDC band" and pq.ref_id == "A" and series:
                assert {s["tags"]["condition"] for s in series} == {
                    "eyes=open,surface=firm",
                    "eyes=closed,surface=foam",
                }
    for panel in ("Sway per condition, with the MDC band", "30 s chair stand", "Timed Up and Go",
                  "STEADI 4-stage balance: time held"):  # fmt: skip
        assert answered[panel] == {BALANCE}, panel
    assert answered["ROM: knee flexion"] == {ROM}
    for panel in ("Intensity per day", "Adherence", "Pain and fatigue", "annotation Sessions"):
        assert answered[panel] == {BALANCE, ROM}, panel
    # no data for joints nobody trained: those panels stay empty, and say nothing wrong
    assert "ROM: elbow flexion" not in answered


def test_device_health_panels(clinic) -> None:
    influx, now_ms, _ = clinic
    doc = _doc("device-health")
    _, chosen = resolve_variables(doc, _tag_values(influx), now_ms=now_ms)
    assert chosen["sensor"] == ["s-lb-1", "s-sh-2", "s-th-2"]
    for pq in panel_queries(doc):
        series = _run(influx, pq, chosen, now_ms)
        _check_panel(pq, series)
        assert {s["tags"]["sensor"] for s in series} == {"s-lb-1", "s-sh-2", "s-th-2"}, pq.panel


def test_check_command_runs_every_query(clinic, monkeypatch, capsys) -> None:
    from poise.cli import main

    influx, _, stack = clinic
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    assert main(["dashboards", "check", "--influx", influx.url, "--database", influx.database]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    panels = [r for r in rows if "panel" in r]
    assert len(panels) == sum(len(list(panel_queries(_doc(n)))) for n in build.DASHBOARDS)
    assert not [r for r in panels if "error" in r]
    assert {r["dashboard"] for r in rows} == set(build.DASHBOARDS)
