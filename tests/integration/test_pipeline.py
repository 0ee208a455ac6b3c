"""The data path on real services: simulated sensors -> collector -> Mosquitto -> ingest ->
InfluxDB. Every test checks that exactly the published samples are stored: a lost sample
lowers the count, a duplicate (a point at a new timestamp) raises it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from collector.publisher import Publisher
from collector.spool import Spool
from poise.core import topics, wire
from poise.core.influx import InfluxV1
from poise.ingest import Ingest
from poise.simulate import SimConfig, Simulation
from poise.stack import AUTOSAVE_INTERVAL_S, LocalStack
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def _publisher(stack: LocalStack, spool: Path, gw: str = "gw1") -> Publisher:
    info = stack.info()
    pub = Publisher(
        info.mqtt_host,
        info.mqtt_port,
        Spool(spool),
        site="t",
        gateway_id=gw,
        **stack.mqtt_kwargs("gateway", "t"),
    )
    pub.start()
    return pub


def _ingest(stack: LocalStack, influx: InfluxV1) -> Ingest:
    info = stack.info()
    ing = Ingest(
        info.mqtt_host,
        info.mqtt_port,
        influx,
        client_id="ingest-under-test",
        **stack.mqtt_kwargs("ingest"),
    )
    ing.start()
    assert ing.subscribed.wait(10), "ingest did not subscribe"
    # The broker queues frames for the ingest's session from now on; it is on the broker's
    # disk (and so survives a broker crash) from its next autosave on.
    time.sleep(AUTOSAVE_INTERVAL_S + 0.5)
    return ing


def _stored_per_sensor(influx: InfluxV1) -> dict[str, int]:
    series = influx.query('SELECT count("acc_x") FROM "raw"."imu" GROUP BY "sensor"')
    return {s["tags"]["sensor"]: int(s["values"][0][1]) for s in series}


def _run_sim(cfg: SimConfig, pub: Publisher, during=None):
    """Run the simulation in a thread; ``during(sim)`` runs meanwhile (fault injection)."""
    sim = Simulation(cfg)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("res", sim.run(pub.publish)))
    th.start()
    if during:
        during(sim)
    th.join(300)
    return sim, box["res"]


def test_n_samples_published_are_n_points_stored(stack, influx, tmp_path):
    ing = _ingest(stack, influx)
    pub = _publisher(stack, tmp_path / "spool.db")
    try:
        sim, res = _run_sim(SimConfig(site="t", patients=2, duration_s=20, speed=0, seed=1), pub)
        assert pub.wait_drained(60)
        assert res.samples_published == 2 * 3 * 2000
        wait_until(
            lambda: influx.count_samples() >= res.samples_published and ing.idle(),
            60,
            "every sample in InfluxDB",
        )
        assert _stored_per_sensor(influx) == res.per_sensor
        assert influx.count_samples() == res.samples_published
        # The stored values are the decoded ones, bit for bit (float32), at the frame times.
        sensor = next(iter(sim.sensors))
        rows = influx.query(
            f"SELECT acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z FROM raw.imu "
            f"WHERE sensor = '{sensor}' ORDER BY time LIMIT 5"
        )[0]["values"]
        trace = sim.traces[sim.sensors[sensor].patient][sim.sensors[sensor].placement]
        stored = np.array([r[1:] for r in rows], dtype=np.float32)
        truth = np.concatenate([trace.acc[:5], trace.gyr[:5]], axis=1)
        assert np.abs(stored - truth).max() < 0.003  # WitMotion quantization
        assert ing.stats.rejected == {}
    finally:
        pub.stop()
        ing.stop()


def test_broker_killed_and_restarted_mid_stream_loses_nothing(stack, influx, tmp_path):
    ing = _ingest(stack, influx)
    pub = _publisher(stack, tmp_path / "spool.db")

    def crash_broker(sim: Simulation) -> None:
        wait_until(lambda: ing.stats.samples_written > 3000, 30, "ingest under way")
        stack.mosquitto.kill()  # SIGKILL: no chance to save its state
        time.sleep(3)
        stack.mosquitto.start(keep_port=True)

    try:
        cfg = SimConfig(site="t", patients=2, duration_s=40, speed=8, seed=2)
        _sim, res = _run_sim(cfg, pub, during=crash_broker)
        assert pub.wait_drained(90), "the publisher could not deliver its spool after the restart"
        wait_until(
            lambda: influx.count_samples() >= res.samples_published and ing.idle(),
            90,
            "every sample in InfluxDB",
        )
        time.sleep(1)  # let any late redelivery land: it must not add points
        assert _stored_per_sensor(influx) == res.per_sensor
        assert influx.count_samples() == res.samples_published
        assert pub.stats.disconnects >= 1
        assert pub.stats.replayed > 0, "frames acknowledged just before the crash were not replayed"
        assert ing.stats.connects >= 2
    finally:
        pub.stop()
        ing.stop()


def test_influxdb_down_for_10_s_mid_stream_loses_nothing(stack, influx, tmp_path):
    ing = _ingest(stack, influx)
    pub = _publisher(stack, tmp_path / "spool.db")

    def outage(sim: Simulation) -> None:
        wait_until(lambda: ing.stats.samples_written > 3000, 30, "ingest under way")
        stack.influx.stop()
        time.sleep(10)
        stack.influx.start(keep_port=True)

    try:
        cfg = SimConfig(site="t", patients=2, duration_s=60, speed=4, seed=3)
        _sim, res = _run_sim(cfg, pub, during=outage)
        assert pub.wait_drained(90)
        wait_until(
            lambda: influx.count_samples() >= res.samples_published and ing.idle(),
            120,
            "every sample in InfluxDB",
        )
        time.sleep(1)
        assert _stored_per_sensor(influx) == res.per_sensor
        assert influx.count_samples() == res.samples_published
        assert ing.stats.write_retries >= 1, "the outage was not noticed: the test did not test it"
    finally:
        pub.stop()
        ing.stop()


def test_ingest_crash_and_restart_redelivers_without_duplicates(stack, influx, tmp_path):
    info = stack.info()
    ing = _ingest(stack, influx)
    pub = _publisher(stack, tmp_path / "spool.db")
    holder = {"ing": ing}

    def crash_ingest(sim: Simulation) -> None:
        wait_until(lambda: ing.stats.samples_written > 3000, 30, "ingest under way")
        # Abrupt: drop the MQTT connection without acknowledging what is in hand.
        ing._stop.set()
        ing._client._sock_close()  # what a killed process leaves the broker with
        ing._client.loop_stop()
        time.sleep(2)
        holder["ing"] = Ingest(
            info.mqtt_host,
            info.mqtt_port,
            influx,
            client_id="ingest-under-test",
            **stack.mqtt_kwargs("ingest"),
        )
        holder["ing"].start()

    try:
        cfg = SimConfig(site="t", patients=1, duration_s=40, speed=8, seed=4)
        _sim, res = _run_sim(cfg, pub, during=crash_ingest)
        assert pub.wait_drained(60)
        wait_until(
            lambda: influx.count_samples() >= res.samples_published and holder["ing"].idle(),
            60,
            "every sample in InfluxDB",
        )
        time.sleep(1)
        assert influx.count_samples() == res.samples_published
    finally:
        pub.stop()
        holder["ing"].stop()


def test_malformed_payloads_are_counted_and_ingestion_goes_on(stack, influx, tmp_path):
    info = stack.info()
    ing = _ingest(stack, influx)
    client = stack.mqtt_client("gateway", "t")
    client.connect(info.mqtt_host, info.mqtt_port)
    client.loop_start()
    good = wire.Frame("s1", 0, time.time_ns(), 10_000_000, wire.IMU6, np.ones((10, 6), np.float32))
    payload = wire.encode(good)
    bad = [
        (topics.raw("t", "p1", "s1"), b"this is not a poise frame, just some text"),
        (topics.raw("t", "p1", "s1"), payload[:-1]),
        (topics.raw("t", "p1", "s2"), payload),  # sensor in topic and payload differ
        (topics.raw("t", "p1", "s1"), payload[:40] + bytes([payload[40] ^ 1]) + payload[41:]),
    ]
    try:
        for t, p in [*bad, (topics.raw("t", "p1", "s1"), payload)]:
            client.publish(t, p, qos=1).wait_for_publish(5)
        wait_until(lambda: influx.count_samples() == 10 and ing.idle(), 30, "the good frame stored")
        assert dict(ing.stats.rejected) == {
            "bad_magic": 1,
            "truncated": 1,
            "sensor_mismatch": 1,
            "bad_crc": 1,
        }
    finally:
        client.loop_stop()
        client.disconnect()
        ing.stop()


def test_collector_restart_sends_what_its_spool_still_holds(stack, influx, tmp_path):
    """Frames spooled while the broker was away are sent by the next collector process."""
    info = stack.info()
    ing = _ingest(stack, influx)
    spool_path = tmp_path / "spool.db"
    stack.mosquitto.stop()
    login = stack.mqtt_kwargs("gateway", "t")
    pub = Publisher(
        info.mqtt_host, info.mqtt_port, Spool(spool_path), site="t", gateway_id="gw1", **login
    )
    pub.start()
    frames = [
        wire.Frame(
            "s1",
            i * 10,
            time.time_ns() + i * 100_000_000,
            10_000_000,
            wire.IMU6,
            np.full((10, 6), i, np.float32),
        )
        for i in range(30)
    ]
    pub.publish([(topics.raw("t", "p1", "s1"), wire.encode(f)) for f in frames])
    assert not pub.wait_drained(1)
    pub.stop(drain_timeout_s=0)  # the collector exits with 30 frames unsent
    pub.spool.close()
    stack.mosquitto.start(keep_port=True)
    pub2 = Publisher(
        info.mqtt_host, info.mqtt_port, Spool(spool_path), site="t", gateway_id="gw1", **login
    )
    pub2.start()
    try:
        assert pub2.wait_drained(30)
        wait_until(lambda: influx.count_samples() == 300, 30, "the 300 spooled samples stored")
    finally:
        pub2.stop()
        ing.stop()
