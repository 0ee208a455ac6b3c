"""Ingest from JetStream through a SIGKILL: every frame stored once, bad frames refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from poise.core import topics, wire
from poise.jetstream import layout
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

PERIOD_NS = 10_000_000


def _frame(sensor: str, seq: int, t0_ns: int) -> bytes:
    data = np.full((10, 6), seq % 7, np.float32)
    return wire.encode(wire.Frame(sensor, seq, t0_ns + seq * 10 * PERIOD_NS, PERIOD_NS, wire.IMU6, data))


def _mqtt311(server, role: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{role}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv311, clean_session=False)
    c.username_pw_set(*server.login(role))
    c.connect("127.0.0.1", server.mqtt_port)
    c.loop_start()
    return c


def _ingest_proc(server, stack, log_path) -> subprocess.Popen[bytes]:
    info = stack.info()
    user, password = server.login("ingest")
    env = {k: v for k, v in {**os.environ, **stack.env}.items()
           if not k.startswith("POISE_INGEST_MQTT_")}
    env.update(POISE_INGEST_MQTT_USER=user, POISE_INGEST_MQTT_PASSWORD=password)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "poise.cli", "ingest", "--nats", server.url,
             "--influx", info.influx_url, "--database", info.database, "--stats-every-s", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )


def test_frames_over_mqtt_311_and_native_jetstream_are_stored_once_through_a_kill(
    nats_server, stack, influx, tmp_path
):
    log_path = tmp_path / "ingest.log"
    t0 = time.time_ns() - 60 * 10**9
    patients = ["p01", "p02", "p03", "p04"]
    produced = {"n": 0}
    gw = _mqtt311(nats_server, "gateway")

    def publish_mqtt(count: int) -> None:
        for seq in range(count):
            for i, p in enumerate(patients[:3]):
                info = gw.publish(topics.raw("clinic", p, f"s{i}"), _frame(f"s{i}", seq, t0), qos=1)
                info.wait_for_publish(5)
                produced["n"] += 10
            time.sleep(0.01)

    ingest = _ingest_proc(nats_server, stack, log_path)
    writer = threading.Thread(target=publish_mqtt, args=(200,))
    writer.start()
    time.sleep(1.0)
    ingest.send_signal(signal.SIGKILL)  # mid-stream, as a crash would
    ingest.wait(10)
    writer.join()

    # the native path: a message id per frame, so a re-publish within the window is dropped
    async def publish_native() -> list[bool]:
        import nats

        nc = await nats.connect(nats_server.url, **nats_server.connect_kwargs("gateway"))
        js = nc.jetstream()
        dup = []
        for seq in range(50):
            payload = _frame("s9", seq, t0)
            for _ in range(2):
                ack = await js.publish(layout.raw_subject("clinic", "p04", "s9"), payload,
                                       headers={"Nats-Msg-Id": f"s9:{seq}"})
                dup.append(bool(ack.duplicate))
        await nc.close()
        return dup

    dups = asyncio.run(publish_native())
    assert sum(dups) == 50  # every second copy was recognised as a duplicate
    produced["n"] += 50 * 10

    ingest = _ingest_proc(nats_server, stack, log_path)
    try:
        wait_until(lambda: influx.count_samples() >= produced["n"], 45, "all samples stored")
        time.sleep(1.0)
        assert influx.count_samples() == produced["n"] == (200 * 3 + 50) * 10
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(20)
        gw.disconnect()
        gw.loop_stop()
    log = log_path.read_text()
    assert "Traceback" not in log, log[-2000:]
    final = json.loads(log.strip().splitlines()[-1])
    # the second run wrote frames the first had received but not acknowledged, or had not
    # received yet: the kill was mid-stream
    assert final["frames_written"] > 50, final


def test_malformed_frame_is_counted_dead_lettered_and_the_rest_stored(nats_server, stack, influx):
    t0 = time.time_ns() - 60 * 10**9
    got: list[tuple[str, str]] = []

    async def main() -> dict:
        import nats

        admin = await nats.connect(nats_server.url, **nats_server.connect_kwargs("admin"))

        async def on_dead(msg) -> None:
            got.append((msg.headers.get("Poise-Reason", ""), msg.headers.get("Poise-Subject", "")))

        await admin.subscribe(f"{layout.DEAD_LETTER_PREFIX}.>", cb=on_dead)
        js = admin.jetstream()
        await js.publish(layout.raw_subject("clinic", "p01", "s1"), b"\x00garbage")
        for seq in range(5):
            await js.publish(layout.raw_subject("clinic", "p01", "s1"), _frame("s1", seq, t0))
        from poise.jetstream.ingest import NatsIngest

        client = stack.influx_client("ingest")
        ing = NatsIngest(nats_server.url, client,
                         **nats_server.connect_kwargs("ingest"))
        stop = asyncio.Event()
        task = asyncio.create_task(ing.run(stop))
        for _ in range(100):
            if ing.stats.frames_written >= 5 and got:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await admin.close()
        client.close()
        return ing.stats.as_dict()

    stats = asyncio.run(main())
    assert stats["frames_written"] == 5
    assert stats["frames_rejected"] == 1
    assert got
    assert got[0][0] != ""
    assert got[0][1].startswith("poise.v1.p.")
    assert influx.count_samples() == 50


def test_a_gateway_cannot_publish_another_sites_frames(nats_server, stack, influx):
    """NATS answers an MQTT publish it refuses with a PUBACK all the same, which is why the
    gateway's native JetStream path, whose acknowledgement comes from the stream, exists."""
    gw = _mqtt311(nats_server, "gateway")
    t0 = time.time_ns() - 60 * 10**9
    info = gw.publish(topics.raw("othersite", "p01", "s1"), _frame("s1", 0, t0), qos=1)
    info.wait_for_publish(5)
    gw.disconnect()
    gw.loop_stop()

    async def stream_count() -> int:
        import nats

        nc = await nats.connect(nats_server.url, **nats_server.connect_kwargs("admin"))
        si = await nc.jetstream().stream_info(layout.STREAM)
        await nc.close()
        return int(si.state.messages)

    time.sleep(0.5)
    assert asyncio.run(stream_count()) == 0
