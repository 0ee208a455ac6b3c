"""A clinic session through NATS JetStream: gateways on the native path, ingest and two
workers as their own processes; the worker that owns patient 2's partition is SIGKILLed in the
middle of the knee trial, the ingest is SIGKILLed during the chair stand, and a third worker
joins during the TUG. Every frame is stored exactly once, and every trial and session summary
is identical to a one-worker run of the same session on Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from collector.jetstream_publisher import JetStreamPublisher
from collector.publisher import Publisher
from collector.spool import Spool
from poise.clinic import plan_clinic, run_clinic
from poise.core import topics
from poise.core.influx import InfluxV1
from poise.ingest import Ingest
from poise.jetstream import layout
from poise.stack import LocalStack
from poise.worker.service import WorkerService
from tests.conftest import TEST_SITES, wait_until

pytestmark = pytest.mark.integration
SITE = "clinic"
SUMMARY_FIELDS = ("kind", "rep_count", "correct_count", "rom_deg", "stands", "tug_s", "hold_s",
                  "passed", "rms_m_s2", "duration_s")
SESSION_FIELDS = ("duration_s", "trials", "reps", "adherence_pct", "active_s", "enmo_mean_mg",
                  "pain_0_10", "fatigue_borg")


def _rows(influx: InfluxV1, q: str) -> list[dict[str, Any]]:
    out = []
    for s in influx.query(q):
        for v in s.get("values", []):
            out.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return out


def _summaries(influx: InfluxV1) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    trials = {r["trial"]: r for r in _rows(
        influx, 'SELECT * FROM "derived"."trial_summary" GROUP BY trial')}  # fmt: skip
    sessions = {r["session"]: r for r in _rows(
        influx, 'SELECT * FROM "derived"."session_summary" GROUP BY session')}  # fmt: skip
    return trials, sessions


def _done(influx: InfluxV1, plans) -> bool:
    n = influx.scalar('SELECT count("duration_s") FROM "derived"."session_summary"') or 0
    t = influx.scalar('SELECT count("kind") FROM "derived"."trial_summary"') or 0
    return n == len(plans) and t == sum(len(p.trials) for p in plans)


def _env(stack: LocalStack, role: str) -> dict[str, str]:
    return {**os.environ, **stack.env, "PYTHONUNBUFFERED": "1"}


def _proc(stack: LocalStack, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "poise.cli", *args], env=_env(stack, ""),
                                stdout=out, stderr=subprocess.STDOUT)


def _owner_of(stack: LocalStack, patient: str) -> str | None:
    async def main() -> str | None:
        import nats

        nc = await nats.connect(stack.info().nats_url, **stack.mosquitto.connect_kwargs("admin"))
        try:
            kv = await nc.jetstream().key_value(layout.KV_LEASES)
            return (await kv.get(f"p{layout.partition_of(patient)}")).value.decode()
        except Exception:
            return None
        finally:
            await nc.close()

    return asyncio.run(main())


def _reference_on_mosquitto(tmp: Path, plans, start_ns: int):
    """The same session, one worker, Mosquitto: the summaries the NATS run must equal."""
    with LocalStack(tmp / "ref", sites=TEST_SITES) as ref:
        info = ref.info()
        influx = ref.influx_client("admin")
        clients = [ref.influx_client("ingest"), ref.influx_client("worker")]
        ingest = Ingest(info.mqtt_host, info.mqtt_port, clients[0],
                        client_id="ref-ingest", **ref.mqtt_kwargs("ingest"))
        ingest.start()
        kw = ref.mqtt_kwargs("worker")
        worker = WorkerService(info.mqtt_host, info.mqtt_port, clients[1],
                               tmp / "ref-worker.json", username=kw["username"],
                               password=kw["password"])
        worker.start()
        wait_until(worker.subscribed.is_set, 30, "the reference worker to subscribe")
        pub = Publisher(info.mqtt_host, info.mqtt_port, Spool(tmp / "ref-spool.db"), site=SITE,
                        gateway_id="gw1", **ref.mqtt_kwargs("gateway", SITE))
        pub.start()
        events = ref.mqtt_client("console")
        events.connect(info.mqtt_host, info.mqtt_port)
        events.loop_start()
        sent = []
        try:
            run_clinic(plans, SITE, pub.publish,
                       lambda patient, payload: sent.append(
                           events.publish(topics.session(SITE, patient), payload, qos=1)),
                       speed=0.0, start_ns=start_ns)
            assert pub.wait_drained(60)
            for m in sent:
                m.wait_for_publish(10)
            wait_until(lambda: _done(influx, plans), 180, "the reference summaries")
            return _summaries(influx), influx.count_samples()
        finally:
            pub.stop(drain_timeout_s=1)
            events.disconnect()
            events.loop_stop()
            worker.stop()
            ingest.stop()
            influx.close()
            for c in clients:
                c.close()


def test_clinic_on_nats_with_workers_killed_and_joining_equals_one_worker_on_mosquitto(tmp_path):
    start_ns = time.time_ns() - 900 * 10**9
    plans = plan_clinic(2, seed=1)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    with LocalStack(tmp_path / "nats", sites=TEST_SITES, broker="nats") as stack:
        info = stack.info()
        influx = stack.influx_client("admin")
        url = info.nats_url
        assert url is not None

        def start(name: str, args: list[str]) -> None:
            procs[name] = _proc(stack, args, logs / f"{name}.log")

        db = ["--influx", info.influx_url, "--database", info.database]
        start("ingest", ["ingest", "--nats", url, *db])
        start("wa", ["worker", "--nats", url, "--member", "wa", *db])
        start("wb", ["worker", "--nats", url, "--member", "wb", *db])
        wait_until(lambda: _owner_of(stack, "p002") in ("wa", "wb"), 30, "partitions owned")
        gw_user, gw_password = stack.mqtt_login("gateway", SITE)
        pub = JetStreamPublisher(url, Spool(tmp_path / "spool.db"), site=SITE, gateway_id="gw1",
                                 username=gw_user, password=gw_password)
        c_user, c_password = stack.mqtt_login("console")
        evpub = JetStreamPublisher(url, Spool(tmp_path / "events.db"), site=SITE,
                                   gateway_id="console", username=c_user, password=c_password)
        pub.start()
        evpub.start()
        done: set[str] = set()

        def publish_event(patient: str, payload: bytes) -> None:
            evpub.publish([(topics.session(SITE, patient), payload)])
            doc = json.loads(payload)
            if doc["type"] != "trial_start" or patient != "p002":
                return
            if doc["exercise"] == "rom/knee_flexion" and "kill" not in done:
                done.add("kill")
                pub.wait_drained(30)
                evpub.wait_drained(30)
                time.sleep(1.0)  # mid-trial: the owner has taken some of it in
                victim = _owner_of(stack, "p002")
                assert victim in procs, victim
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait(10)
                done.add(f"killed:{victim}")
            if doc["exercise"] == "chair_stand_30s" and "ingest" not in done:
                done.add("ingest")
                pub.wait_drained(30)
                procs["ingest"].send_signal(signal.SIGKILL)
                procs["ingest"].wait(10)
                start("ingest2", ["ingest", "--nats", url, *db])
            if doc["exercise"] == "tug" and "join" not in done:
                done.add("join")
                start("wc", ["worker", "--nats", url, "--member", "wc", *db])

        try:
            res = run_clinic(plans, SITE, pub.publish, publish_event, speed=0.0,
                             start_ns=start_ns)
            assert pub.wait_drained(60)
            assert evpub.wait_drained(60)
            assert {"kill", "ingest", "join"} <= done
            wait_until(lambda: influx.count_samples() >= res["samples_published"], 120,
                       "every sample stored")
            wait_until(lambda: _done(influx, plans), 240, "every trial and session summary")
            time.sleep(2.0)
            stored = influx.count_samples()
            trials, sessions = _summaries(influx)
        finally:
            pub.stop(drain_timeout_s=1)
            evpub.stop(drain_timeout_s=1)
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(30)
            influx.close()
    for name in procs:
        text = (logs / f"{name}.log").read_text()
        assert "Traceback" not in text, (name, text[-3000:])
    assert stored == res["samples_published"]  # every sample once, none lost, none doubled

    (ref_trials, ref_sessions), ref_stored = _reference_on_mosquitto(tmp_path, plans, start_ns)
    assert ref_stored == stored
    assert trials.keys() == ref_trials.keys()
    for trial, ref in ref_trials.items():
        for key in SUMMARY_FIELDS:
            if ref.get(key) is None:
                assert trials[trial].get(key) is None, (trial, key)
            elif isinstance(ref[key], float):
                assert trials[trial][key] == pytest.approx(ref[key], rel=1e-9, abs=1e-9), (trial, key)
            else:
                assert trials[trial][key] == ref[key], (trial, key)
    assert sessions.keys() == ref_sessions.keys()
    for session, ref in ref_sessions.items():
        for key in SESSION_FIELDS:
            if isinstance(ref.get(key), float):
                assert sessions[session][key] == pytest.approx(ref[key], rel=1e-9), (session, key)
            else:
                assert sessions[session].get(key) == ref.get(key), (session, key)
