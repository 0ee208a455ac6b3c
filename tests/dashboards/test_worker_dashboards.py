"""The dashboards on what the real worker writes: the scripted clinic session of two patients
(poise.clinic) played through the gateway path into real Mosquitto, the ingest and the
worker (in this process) into a real InfluxDB, then every dashboard query run as Grafana
would send it (dashboards.interpolate) by the read-only role Grafana uses.

The live session view is looked at as a therapist would: at the end of every trial, for the
patient doing it. The other views at the end of the session."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from collector.ble import SensorStats
from collector.publisher import Publisher
from collector.spool import Spool
from dashboards import build
from dashboards.check import PanelQuery, panel_queries, resolve_variables
from dashboards.interpolate import interpolate
from poise.clinic import plan_clinic, run_clinic
from poise.core import topics
from poise.core.influx import InfluxV1, point_line
from poise.ingest import Ingest
from poise.stack import LocalStack
from poise.worker.service import WorkerService
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
SITE = "clinic"
DAY_NS = 86_400 * 10**9
BALANCE = ("quiet_stance", "steadi_4stage/")
# 10x real time: fast, yet each session event reaches the worker before the frames that
# follow it (events and frames travel on different topics; as fast as possible, frames of a
# trial can overtake its start and the live scores of that trial go missing)
SPEED = 10.0


def _doc(name: str) -> dict[str, Any]:
    return json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))


def _status(plan: Any, short: str, battery_pct: int) -> dict[str, Any]:
    """A gateway's status message as collector.ble.SensorStats.as_status makes it."""
    stats = SensorStats(
        state="streaming", samples=1000, battery_pct=battery_pct, rssi_dbm=-58,
        effective_rate_hz=99.8, jitter_ms=3.5,
    )  # fmt: skip
    fields = {k: v for k, v in asdict(stats).items() if k != "state"}
    return {"kind": "sensor", "online": True, "state": "streaming", "gateway": "gw1",
            "profile": "virtual", "placement": short, **fields}  # fmt: skip


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("worker-dash")
    stack = LocalStack(tmp / "stack", sites=[SITE])
    stack.start()
    info = stack.info()
    plans = plan_clinic(2, seed=1)
    start_ns = time.time_ns() - round(max(p.duration_s for p in plans) * 1e9) - 60 * 10**9
    admin = stack.influx_client("admin")
    admin.ensure_schema()
    # patient 2's earlier quiet-stance trials: the baseline the live band is drawn from
    admin.write(
        [
            point_line(
                "trial_summary",
                {
                    "site": SITE,
                    "patient": "p002",
                    "algorithm_version": "sway-1.0",
                    "session": f"s-old{i}",
                    "trial": f"t-old{i}",
                    "exercise": "quiet_stance",
                    "condition": "eyes=open",
                    "side": "none",
                },
                {"kind": "sway", "rms_m_s2": rms, "duration_s": 12.0},
                start_ns - (3 - i) * DAY_NS,
            )
            for i, rms in enumerate((0.010, 0.011, 0.012))
        ],
        rp="derived",
    )
    ingest_db = stack.influx_client("ingest")
    ingest = Ingest(
        info.mqtt_host,
        info.mqtt_port,
        ingest_db,
        client_id="t-ingest",
        **stack.mqtt_kwargs("ingest"),
    )
    ingest.start()
    worker_db = stack.influx_client("worker")
    user, password = stack.mqtt_login("worker")
    worker = WorkerService(
        info.mqtt_host, info.mqtt_port, worker_db, tmp / "worker.state.json",
        username=user, password=password,
    )  # fmt: skip
    worker.start()
    assert worker.subscribed.wait(30)
    pub = Publisher(
        info.mqtt_host, info.mqtt_port, Spool(tmp / "spool.db"), site=SITE, gateway_id="gw1",
        **stack.mqtt_kwargs("gateway", SITE),
    )  # fmt: skip
    pub.start()
    events = stack.mqtt_client("console")
    events.connect(info.mqtt_host, info.mqtt_port)
    events.loop_start()
    sent = []
    by_patient = {p.patient: p for p in plans}

    def publish_event(patient: str, payload: bytes) -> None:
        sent.append(events.publish(topics.session(SITE, patient), payload, qos=1))
        if json.loads(payload)["type"] in ("session_start", "trial_start"):
            time.sleep(0.2)  # the worker has the session before the status arrives
            for short in ("lowerback", "thigh", "shank"):
                battery = 9 if (patient, short) == ("p002", "shank") else 80
                pub.publish_status(
                    by_patient[patient].sensor(short), _status(by_patient[patient], short, battery)
                )

    reader = stack.influx_client("reader")
    try:
        run_clinic(plans, SITE, pub.publish, publish_event, speed=SPEED, start_ns=start_ns)
        assert pub.wait_drained(60)
        for m in sent:
            m.wait_for_publish(10)

        def summaries_done() -> bool:
            n = admin.scalar('SELECT count("duration_s") FROM "derived"."session_summary"')
            return n == len(plans)

        wait_until(summaries_done, 180, "both session summaries")
        yield reader, plans, start_ns
    finally:
        worker.stop()
        pub.stop(drain_timeout_s=1)
        events.disconnect()
        events.loop_stop()
        ingest.stop()
        for c in (reader, admin, ingest_db, worker_db):
            c.close()
        stack.stop()


def _tag_values(influx: InfluxV1):
    def run(q: str) -> list[str]:
        return sorted({row[1] for s in influx.query(q) for row in s.get("values", [])})

    return run


def _series(
    influx: InfluxV1,
    pq: PanelQuery,
    chosen: dict[str, list[str]],
    now_ms: int,
    window_ms: int | None = None,
) -> list[dict[str, Any]]:
    window = window_ms or pq.window_ms
    q = interpolate(pq.query, from_ms=now_ms - window, to_ms=now_ms, variables=chosen)
    return influx.query(q, epoch="ms")


def _filled(series: list[dict[str, Any]], column: str) -> bool:
    return any(
        row[s["columns"].index(column)] is not None
        for s in series
        if column in s["columns"]
        for row in s["values"]
    )


def test_live_session_during_each_trial(clinic) -> None:
    influx, plans, start_ns = clinic
    doc = _doc("live-session")
    filled: set[str] = set()
    for plan in plans:
        end_ms = (start_ns + round(plan.duration_s * 1e9)) // 1_000_000 + 5000
        whole = end_ms - start_ns // 1_000_000 + 1000
        _, chosen = resolve_variables(
            doc, _tag_values(influx), now_ms=end_ms, choose={"patient": [plan.patient]}
        )
        swayed = []
        for trial in plan.trials:
            now_ms = (start_ns + round(trial.stop_s * 1e9)) // 1_000_000 + 1000
            got = {
                (pq.panel, pq.ref_id): (pq, _series(influx, pq, chosen, now_ms))
                for pq in panel_queries(doc)
            }
            for (panel, _ref), (pq, series) in got.items():
                wanted = [c for c in pq.columns if "baseline" not in c]
                if series and all(_filled(series, c) for c in wanted):
                    filled.add(panel)
            sway = got[("Sway RMS against the baseline band", "A")][1]
            if trial.exercise == "quiet_stance":
                swayed.append(_filled(sway, "sway RMS"))
            if trial.exercise == "rom/knee_flexion":
                joint = got[("Joint angle, target and limit", "A")][1]
                for column in ("angle", "target", "limit"):
                    assert _filled(joint, column), column
                assert {s["tags"]["joint"] for s in joint} == {"knee"}
                reps = got[("Repetitions", "A")][1]
                # the live count confirms a repetition once the next trough is seen: the last
                # one may still be pending at the trial's end
                assert trial.truth["reps"] - 1 <= reps[0]["values"][-1][1] <= trial.truth["reps"]
                correct = got[("Repetitions", "B")][1]
                expected = trial.truth["reps"] - trial.truth["past_limit"]
                assert correct[0]["values"][-1][1] == expected
            sensors = got[("Sensors", "A")][1]
            assert {s["tags"]["sensor"] for s in sensors} == {
                plan.sensor(x) for x in ("lowerback", "thigh", "shank")
            }
            # rate, loss and silence as the gateway reports them
            for column in ("rate_hz", "lost_pct", "silent_s", "battery_pct", "rssi_dbm"):
                assert _filled(sensors, column), column
        # live sway during every quiet stance
        assert swayed, plan.patient
        assert all(swayed), plan.patient
        by_panel = {pq.panel: pq for pq in panel_queries(doc)}
        sway = _series(
            influx, by_panel["Sway RMS against the baseline band"], chosen, end_ms, whole
        )
        band = all(_filled(sway, c) for c in ("baseline", "baseline + MDC", "baseline - MDC"))
        # only patient 2 has the three earlier trials a baseline needs
        assert band is (plan.patient == "p002"), plan.patient
        # alert marks over the whole session: patient 2's, none for patient 1
        alerts = _series(influx, by_panel["annotation Alerts"], chosen, end_ms, whole)
        kinds = {s["tags"]["kind"] for s in alerts}
        if plan.patient == "p001":
            # nothing clinical; on a heavily loaded machine the 10x replay can stall one
            # sensor's frames long enough for the worker to call it silent
            assert kinds <= {"sensor_silent"}
        else:
            assert set(plan.expected_alerts) <= kinds
    # every panel shows data at some point of the session; open alerts only while one is
    # open, which a look at the end of a trial need not catch
    panels = {p["title"] for p in doc["panels"]}
    assert filled >= panels - {"Open alerts"}


def test_overview_progress_and_device_health_at_the_end(clinic) -> None:
    influx, plans, start_ns = clinic
    end_ms = (start_ns + round(max(p.duration_s for p in plans) * 1e9)) // 1_000_000 + 5000
    empty: set[str] = set()
    for name in ("clinic-overview", "patient-progress", "device-health"):
        doc = _doc(name)
        options, chosen = resolve_variables(doc, _tag_values(influx), now_ms=end_ms)
        assert all(options.values()), (name, options)
        patients = [[p.patient] for p in plans] if "patient" in options else [None]
        for patient in patients:
            if patient:
                _, chosen = resolve_variables(
                    doc, _tag_values(influx), now_ms=end_ms, choose={"patient": patient}
                )
            for pq in panel_queries(doc):
                series = _series(influx, pq, chosen, end_ms)
                if not (series and all(_filled(series, c) for c in pq.columns)):
                    empty.add(
                        f"{name}: {pq.panel} {pq.ref_id}" + (f" ({patient[0]})" if patient else "")
                    )
    rom_unused = {
        f"patient-progress: ROM: {j} A ({p.patient})"
        for p in plans
        for j in (
            "elbow flexion",
            "ankle dorsiflexion",
            "hip flexion",
            "shoulder flexion",
            "shoulder abduction",
        )
    }
    expected_empty = set(rom_unused)
    # the session stop ends every alert episode: none is open at the end
    expected_empty.add("clinic-overview: Active patients D")
    # only patient 2 has the earlier trials a baseline (and so the band) needs
    expected_empty.add("patient-progress: Sway per condition, with the MDC band B (p001)")
    assert empty == expected_empty
    # the overview: both patients with their three sensors streaming, patient 2's low battery
    doc = _doc("clinic-overview")
    _, chosen = resolve_variables(doc, _tag_values(influx), now_ms=end_ms)
    rows = {pq.ref_id: _series(influx, pq, chosen, end_ms) for pq in panel_queries(doc)}
    online = {s["tags"]["patient"]: s["values"][-1][1] for s in rows["A"]}
    battery = {s["tags"]["patient"]: s["values"][-1][1] for s in rows["E"]}
    assert online == {"p001": 3, "p002": 3}
    assert battery == {"p001": 80.0, "p002": 9.0}


def test_session_summaries_reach_the_progress_view(clinic) -> None:
    influx, plans, start_ns = clinic
    doc = _doc("patient-progress")
    end_ms = (start_ns + round(max(p.duration_s for p in plans) * 1e9)) // 1_000_000 + 5000
    for plan in plans:
        _, chosen = resolve_variables(
            doc, _tag_values(influx), now_ms=end_ms, choose={"patient": [plan.patient]}
        )
        by_panel = {pq.panel: pq for pq in panel_queries(doc)}
        feel = _series(influx, by_panel["Pain and fatigue"], chosen, end_ms)
        (row,) = [v for v in feel[0]["values"] if v[1] is not None]
        assert row[1:] == [plan.pain_0_10, plan.fatigue_borg]
        # the TUG as the panel shows it, against the session's truth and the 12 s line
        tug = _series(influx, by_panel["Timed Up and Go"], chosen, end_ms)
        (shown,) = [v[1] for v in tug[0]["values"] if v[1] is not None]
        (truth,) = [t.truth["duration_s"] for t in plan.trials if t.exercise == "tug"]
        assert shown == pytest.approx(truth, abs=1.0)
        assert (shown >= 12.0) is (truth >= 12.0)
    assert Path(build.GENERATED).is_dir()
