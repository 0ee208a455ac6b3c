"""The worker end to end on real Mosquitto and InfluxDB: a scripted clinic session of two
patients through the real gateway path, the ingest, and ``poise worker`` as its own process,
SIGKILLed in the middle of a trial and restarted. The summaries must match the simulation's
truth, the alerts must be the expected ones (none for patient 1), bad events are refused and
counted, and a recomputation from the raw samples gives the same summaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from collector.publisher import Publisher
from collector.spool import Spool
from poise.clinic import plan_clinic, run_clinic
from poise.core import topics
from poise.core.influx import InfluxV1, point_line
from poise.ingest import Ingest
from poise.worker.core import Job
from poise.worker.service import run_job
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
SITE = "clinic"  # a site with a gateway login on the test stack
DAY_NS = 86_400 * 10**9


def _start_worker(info: Any, tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)
    with log.open("ab") as err:
        proc = _popen(info, tmp, ready, err)
    wait_until(ready.exists, 60, "the worker to subscribe")
    return proc


def _popen(info: Any, tmp: Path, ready: Path, err: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "poise.cli", "worker"),
            *("--mqtt", f"{info.mqtt_host}:{info.mqtt_port}"),
            *("--influx", info.influx_url, "--database", info.database),
            *("--state", str(tmp / "worker.state.json"), "--ready-file", str(ready)),
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _rows(influx: InfluxV1, q: str) -> list[dict[str, Any]]:
    out = []
    for s in influx.query(q):
        for v in s.get("values", []):
            out.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return out


def test_clinic_session_with_a_worker_killed_mid_trial(stack, influx, tmp_path):
    info = stack.info()
    start_ns = time.time_ns() - 600 * 10**9  # sample times in the recent past
    plans = plan_clinic(2, seed=1)
    # patient 2's own earlier quiet-stance sessions (eyes open): a low, steady baseline
    influx.ensure_schema()
    history = [
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
    ]
    influx.write(history, rp="derived")

    ingest = Ingest(
        info.mqtt_host, info.mqtt_port, influx, client_id="t-ingest", **stack.mqtt_kwargs("ingest")
    )
    ingest.start()
    log = tmp_path / "worker.log"
    worker = _start_worker(info, tmp_path, log)
    pub = Publisher(
        info.mqtt_host,
        info.mqtt_port,
        Spool(tmp_path / "spool.db"),
        site=SITE,
        gateway_id="gw1",
        **stack.mqtt_kwargs("gateway", SITE),
    )
    pub.start()
    events = stack.mqtt_client("console")
    events.connect(info.mqtt_host, info.mqtt_port)
    events.loop_start()
    sent: list[mqtt.MQTTMessageInfo] = []
    killed = threading.Event()
    restarted: dict[str, subprocess.Popen[bytes]] = {}

    def publish_event(patient: str, payload: bytes) -> None:
        sent.append(events.publish(topics.session(SITE, patient), payload, qos=1))
        doc = json.loads(payload)
        if doc["type"] == "session_start" and patient == "p001":
            # a trial stop without its start, in the open session
            stray = {"v": 1, "type": "trial_stop", "id": "e-x2", "t_ns": doc["t_ns"],
                     "session": doc["session"], "trial": "t-9"}  # fmt: skip
            sent.append(events.publish(topics.session(SITE, patient), json.dumps(stray), qos=1))
        if doc["type"] == "trial_start" and doc["exercise"] == "tug" and patient == "p002":
            # a battery running low on patient 2's shank sensor (gateway status)
            status = {"kind": "sensor", "online": True, "battery_pct": 9.0, "gateway": "gw1"}
            pub.publish_status("p002-shank", status)
        rom = doc["type"] == "trial_start" and doc["exercise"] == "rom/knee_flexion"
        if rom and not killed.is_set():
            # kill the worker a moment into the knee trial, restart it at once
            killed.set()
            time.sleep(0.5)
            worker.send_signal(signal.SIGKILL)
            worker.communicate(timeout=10)
            restarted["w"] = _start_worker(info, tmp_path, log)

    try:
        res = run_clinic(plans, SITE, pub.publish, publish_event, speed=0.0, start_ns=start_ns)
        assert pub.wait_drained(60)
        # bad events: refused and counted, never a crash
        bad = [
            ("p001", b"{not json"),
            ("p009", json.dumps({"v": 1, "type": "trial_stop", "id": "e-x1",
                                 "t_ns": start_ns, "session": "s-none", "trial": "t-1"}).encode()),
            ("p001", json.dumps({"v": 1, "type": "note", "id": "bad id!",
                                 "t_ns": start_ns, "session": "s-p001-clinic"}).encode()),
        ]  # fmt: skip
        for patient, payload in bad:
            sent.append(events.publish(topics.session(SITE, patient), payload, qos=1))
        for m in sent:
            m.wait_for_publish(10)
        assert killed.is_set()
        n_trials = sum(len(p.trials) for p in plans)

        def summaries_done() -> bool:
            n = influx.scalar('SELECT count("duration_s") FROM "derived"."session_summary"')
            t = influx.scalar(
                'SELECT count("kind") FROM "derived"."trial_summary" WHERE session =~ /clinic/'
            )
            return n == len(plans) and t == n_trials

        wait_until(summaries_done, 120, "every trial and session summary")
    finally:
        w = restarted.get("w", worker)
        w.send_signal(signal.SIGTERM)
        out, _ = w.communicate(timeout=30)
        pub.stop(drain_timeout_s=1)
        events.disconnect()
        events.loop_stop()
        ingest.stop()
    stats = json.loads(out.decode().strip().splitlines()[-1])
    assert res["samples_published"] > 0
    refused = stats["refused"]
    assert refused.get("malformed_json") == 1
    assert refused.get("unknown_session") == 1
    assert refused.get("trial_not_started") == 1
    assert refused.get("bad_id") == 1

    # --- trial summaries against the truth ---
    rows = _rows(
        influx,
        'SELECT * FROM "derived"."trial_summary" WHERE session =~ /clinic/ GROUP BY trial',
    )
    by_trial = {r["trial"]: r for r in rows}
    assert len(by_trial) == n_trials
    for p in plans:
        for tr in p.trials:
            got = by_trial[tr.id]
            assert got["algorithm_version"]
            if tr.exercise.startswith("steadi_4stage/"):
                assert got["passed"] is tr.truth["passed"], tr.id
                assert got["hold_s"] == pytest.approx(tr.truth["held_s"], abs=0.5), tr.id
            elif tr.exercise == "chair_stand_30s":
                assert got["stands"] == tr.truth["stands"], tr.id
            elif tr.exercise == "tug":
                assert got["tug_s"] == pytest.approx(tr.truth["duration_s"], abs=1.0), tr.id
            elif tr.exercise == "rom/knee_flexion":
                assert got["rep_count"] == tr.truth["reps"], tr.id
                assert got["rom_deg"] == pytest.approx(max(tr.truth["rom_deg"]), abs=5.0), tr.id
                assert got["correct_count"] == tr.truth["reps"] - tr.truth["past_limit"], tr.id
            else:
                assert got["rms_m_s2"] > 0, tr.id
    reps = _rows(influx, 'SELECT * FROM "derived"."repetition" GROUP BY trial')
    assert len(reps) == sum(t.truth.get("reps", 0) for p in plans for t in p.trials)

    # --- session summaries ---
    sess = {r["session"]: r for r in _rows(
        influx, 'SELECT * FROM "derived"."session_summary" GROUP BY session')}  # fmt: skip
    for p in plans:
        s = sess[p.session]
        assert s["duration_s"] == pytest.approx(p.duration_s, abs=0.5)
        assert s["pain_0_10"] == p.pain_0_10
        assert s["fatigue_borg"] == p.fatigue_borg
        assert s["trials"] == len(p.trials)
        assert s["reps"] == 6
        assert s["adherence_pct"] == pytest.approx(100.0)
        assert 0 < s["active_s"] <= s["duration_s"] + 5
        assert s["enmo_mean_mg"] > 0

    # --- alerts: the expected ones, once each; none for patient 1 ---
    alerts = _rows(influx, 'SELECT * FROM "derived"."alert" GROUP BY patient, kind')
    kinds = {
        p.patient: sorted(a["kind"] for a in alerts if a["patient"] == p.patient) for p in plans
    }
    assert kinds["p001"] == [], alerts
    assert kinds["p002"] == sorted(
        [*plans[1].expected_alerts, "battery_low", "sway_above_baseline"]
    ), alerts
    assert all(a["algorithm_version"] for a in alerts)
    lob = next(a for a in alerts if a["kind"] == "loss_of_balance")
    tandem = next(t for t in plans[1].trials if t.exercise == "steadi_4stage/tandem")
    assert (lob["time"] - start_ns) / 1e9 == pytest.approx(tandem.start_s + 6.0, abs=0.6)
    silent = next(a for a in alerts if a["kind"] == "sensor_silent")
    assert silent["sensor"] == "p002-thigh"
    assert silent["active"] is False

    # --- live scores were written and carry their algorithm version ---
    for m in ("sway_live", "sway_trace", "joint_live", "intensity_live"):
        n = influx.scalar(f'SELECT count(*) FROM "derived"."{m}"')
        assert n, m

    # --- the same summaries recomputed from the stored raw samples (no worker state) ---
    state = json.loads((tmp_path / "worker.state.json").read_text())
    assert state["pending_jobs"] == []
    assert state["sessions"] == []
    p = plans[0]
    rom = next(t for t in p.trials if t.exercise == "rom/knee_flexion")
    job = Job(
        "trial",
        SITE,
        p.patient,
        {
            "info": {"session": p.session, "trial": rom.id, "exercise": rom.exercise,
                     "condition": {}, "side": "right", "aborted": False,
                     "start_ns": start_ns + round(rom.start_s * 1e9),
                     "stop_ns": start_ns + round(rom.stop_s * 1e9)},
            "placements": [{"sensor": "p001-thigh", "segment": "thigh", "side": "right"},
                           {"sensor": "p001-shank", "segment": "shank", "side": "right"}],
            "prescription": None,
            "ap_axis": "-z",
        },
    )  # fmt: skip
    points, _ = run_job(influx, job)
    assert points[0].fields["rep_count"] == by_trial[rom.id]["rep_count"]
    assert points[0].fields["rom_deg"] == pytest.approx(by_trial[rom.id]["rom_deg"], abs=1e-6)

    # --- poise rescore: the same versions rewrite the same points with the same values ---
    from poise.cli import main

    before = {r["trial"]: r for r in rows}
    argv = ["rescore", "--influx", info.influx_url, "--database", info.database]
    assert main([*argv, "--site", SITE, "--patient", "p002"]) == 0
    again = _rows(
        influx,
        'SELECT * FROM "derived"."trial_summary" WHERE session =~ /clinic/ GROUP BY trial',
    )
    assert len(again) == len(rows)
    for r in again:
        for key in ("rep_count", "stands", "tug_s", "hold_s", "rms_m_s2", "rom_deg"):
            if before[r["trial"]].get(key) is not None:
                assert r[key] == pytest.approx(before[r["trial"]][key], rel=1e-9), (r["trial"], key)
    assert main([*argv, "--site", SITE, "--patient", "Jane Doe"]) == 2
