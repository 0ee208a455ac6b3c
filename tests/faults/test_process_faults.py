"""A bad day, with real processes: the ingest, the broker and the gateway are SIGKILLed in
the middle of a session and restarted, and InfluxDB is stopped for 30 s; after each,
InfluxDB holds exactly the samples the gateway produced (a loss lowers the count, a
duplicate at a new timestamp raises it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.spool import Spool
from poise.core import wire
from poise.stack import AUTOSAVE_INTERVAL_S
from tests.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SITE = "t"  # the stack's first site: the gateway login of stack.env


def _poise(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "poise.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _ingest(stack, log: Path) -> subprocess.Popen[bytes]:
    info = stack.info()
    return _poise(
        ["ingest", "--mqtt", f"{info.mqtt_host}:{info.mqtt_port}", "--influx", info.influx_url,
         "--database", info.database, "--client-id", "fault-ingest", "--stats-every-s", "1"],
        log,
    )  # fmt: skip


def _gateway(stack, spool: Path, duration_s: float, log: Path) -> subprocess.Popen[bytes]:
    info = stack.info()
    return _poise(
        ["simulate", "--mqtt", f"{info.mqtt_host}:{info.mqtt_port}", "--site", SITE,
         "--patients", "2", "--duration", str(duration_s), "--speed", "1",
         "--spool", str(spool), "--drain-timeout", "120"],
        log,
    )  # fmt: skip


def _last_json(log: Path) -> dict:
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON result in {log}:\n{log.read_text()[-2000:]}")


def _spooled_samples(path: Path) -> int:
    """Every sample a killed gateway produced: its spool holds each frame, acknowledged or
    not, for the replay window (30 s) after its acknowledgement."""
    spool = Spool(path)
    try:
        rows = spool.acked_since(0) + spool.unacked_after(0, 10**9)
        return sum(wire.decode(payload).n_samples for _id, _topic, payload in rows)
    finally:
        spool.close()


def _no_tracebacks(*logs: Path) -> None:
    for log in logs:
        text = log.read_text() if log.exists() else ""
        assert "Traceback" not in text, (log.name, text[-3000:])


def test_ingest_and_broker_killed_and_influxdb_stopped_30_s_lose_nothing(stack, influx, tmp_path):
    logs = {n: tmp_path / f"{n}.log" for n in ("ingest", "ingest2", "gateway")}
    ingest = _ingest(stack, logs["ingest"])
    time.sleep(3 + AUTOSAVE_INTERVAL_S)  # the ingest's session is on the broker's disk
    gateway = _gateway(stack, tmp_path / "spool.db", 24.0, logs["gateway"])
    try:
        time.sleep(5)
        ingest.send_signal(signal.SIGKILL)  # the ingest dies mid-session ...
        ingest.wait(10)
        ingest = _ingest(stack, logs["ingest2"])  # ... and is started again
        time.sleep(4)
        stack.mosquitto.kill()  # the broker dies: gateway and ingest reconnect
        stack.mosquitto.start(keep_port=True)
        time.sleep(4)
        stack.influx.stop()  # InfluxDB away for 30 s: the ingest retries, the broker queues
        time.sleep(30)
        stack.influx.start(keep_port=True)
        assert gateway.wait(180) == 0, logs["gateway"].read_text()[-3000:]
        produced = _last_json(logs["gateway"])["samples_published"]
        wait_until(lambda: influx.count_samples() >= produced, 120, "every sample stored")
        time.sleep(2)
        assert influx.count_samples() == produced
    finally:
        for p in (ingest, gateway):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    _no_tracebacks(*logs.values())


def test_gateway_killed_and_restarted_sends_what_its_spool_kept(stack, influx, tmp_path):
    logs = {n: tmp_path / f"{n}.log" for n in ("ingest", "gw1", "gw2")}
    spool = tmp_path / "spool.db"
    ingest = _ingest(stack, logs["ingest"])
    time.sleep(3 + AUTOSAVE_INTERVAL_S)
    try:
        stack.mosquitto.kill()  # the gateway produces while the broker is away ...
        gw = _gateway(stack, spool, 30.0, logs["gw1"])
        time.sleep(6)
        gw.send_signal(signal.SIGKILL)  # ... and dies with frames only in its spool
        gw.wait(10)
        first = _spooled_samples(spool)
        assert first > 0
        stack.mosquitto.start(keep_port=True)
        gw = _gateway(stack, spool, 4.0, logs["gw2"])  # the next run sends them first
        assert gw.wait(120) == 0, logs["gw2"].read_text()[-3000:]
        second = _last_json(logs["gw2"])["samples_published"]
        wait_until(lambda: influx.count_samples() >= first + second, 60, "every sample stored")
        time.sleep(2)
        assert influx.count_samples() == first + second
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(30)
    _no_tracebacks(*logs.values())


def test_a_full_spool_gives_up_its_oldest_frames_and_counts_them(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_frames=100)
    try:
        spool.put([("t", f"frame {i}".encode()) for i in range(60)])
        spool.ack([1, 2, 3, 4, 5], now_ns=1)
        spool.put([("t", f"frame {i}".encode()) for i in range(60, 150)])
        rows = spool.unacked_after(0, 1000) + spool.acked_since(0)
        assert len(rows) == 100
        assert min(i for i, _t, _p in rows) == 51  # the 50 oldest gave way ...
        assert spool.dropped == 45  # ... 5 of them already acknowledged, 45 never sent
        assert spool.counts() == (100, 0)
    finally:
        spool.close()
    again = Spool(tmp_path / "spool.db", max_frames=100)  # the limit holds across restarts
    try:
        again.put([("t", b"one more")])
        assert sum(again.counts()) == 100
    finally:
        again.close()
