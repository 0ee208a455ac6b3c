"""The gateway's native JetStream path: spooled frames deleted only on the stream's ack,
and a frame sent twice stored once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from collector.jetstream_publisher import JetStreamPublisher
from collector.spool import Spool
from poise.core import topics, wire
from poise.jetstream import layout
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


async def _stream_messages(server) -> int:
    import nats

    nc = await nats.connect(server.url, **server.connect_kwargs("admin"))
    info = await nc.jetstream().stream_info(layout.STREAM)
    await nc.close()
    return int(info.state.messages)


def _items(n: int) -> list[tuple[str, bytes]]:
    t0 = time.time_ns() - 10**11
    out = []
    for seq in range(n):
        frame = wire.Frame("s1", seq * 10, t0 + seq * 10**8, 10**7, wire.IMU6,
                           np.full((10, 6), seq, np.float32))
        out.append((topics.raw("clinic", "p01", "s1"), wire.encode(frame)))
    return out


def test_native_publisher_drains_the_spool_and_resends_are_stored_once(nats_server, tmp_path):
    spool = Spool(tmp_path / "spool.db")
    pub = JetStreamPublisher(nats_server.url, spool, site="clinic", gateway_id="gw1",
                             username=nats_server.login("gateway")[0], password=nats_server.login("gateway")[1])
    pub.start()
    try:
        items = _items(300)
        pub.publish(items[:200])
        assert pub.wait_drained(20)
        pub.publish(items[100:])  # the first 100 of these are resends (an ack lost, say)
        assert pub.wait_drained(20)
        wait_until(lambda: asyncio.run(_stream_messages(nats_server)) == 300, 10, "300 stored")
        # at least the 100 resends were recognised by the stream as duplicates (a frame whose
        # acknowledgement came too late on a busy machine is sent again, and is one more)
        assert pub.stats.acked >= 400
        assert pub.stats.replayed >= 100
        assert pub.stats.acked - pub.stats.replayed == 300
    finally:
        pub.stop()
        spool.close()


def test_native_publisher_keeps_frames_it_may_not_publish(nats_server, tmp_path):
    """A gateway of another site is refused by the server: nothing leaves the spool."""
    spool = Spool(tmp_path / "spool.db")
    pub = JetStreamPublisher(nats_server.url, spool, site="othersite", gateway_id="gw1",
                             username=nats_server.login("gateway")[0], password=nats_server.login("gateway")[1],
                             ack_timeout_s=0.5)
    pub.start()
    try:
        items = [(t.replace("/clinic/", "/othersite/"), p) for t, p in _items(5)]
        pub.publish(items)
        assert not pub.wait_drained(3)
        assert pub.pending() == 5
        assert asyncio.run(_stream_messages(nats_server)) == 0
    finally:
        pub.stop(drain_timeout_s=0)
        spool.close()


def test_collect_virtual_straight_to_jetstream(nats_server, tmp_path):
    """The shipped example gateway, its sensors simulated as BLE peripherals, on the
    native path: every frame it reports sent is in the stream."""
    import os
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "gateway.example.toml"
    config = tmp_path / "gateway.toml"
    config.write_text(example.read_text().replace('site = "clinic-a"', 'site = "clinic"', 1))
    user, password = nats_server.login("gateway", "clinic")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POISE_GATEWAY_MQTT")}
    env.update(POISE_GATEWAY_MQTT_USER=user, POISE_GATEWAY_MQTT_PASSWORD=password)
    res = subprocess.run(
        [sys.executable, "-m", "poise.cli", "collect", "--config", str(config), "--virtual",
         "--duration", "5", "--spool", str(tmp_path / "spool.db"), "--nats", nats_server.url],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    stored = asyncio.run(_stream_messages(nats_server))
    assert stored > 0
    assert Spool(tmp_path / "spool.db").counts()[0] == 0  # nothing left unsent
