"""Workers join, leave and die; every partition's state ends exactly right."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from poise.core import wire
from poise.jetstream import layout
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

PERIOD_NS = 10_000_000


def _worker(server, member: str, log_path):
    user, password = server.login("worker")
    env = {**os.environ, "POISE_WORKER_MQTT_USER": user, "POISE_WORKER_MQTT_PASSWORD": password}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "tests.nats.count_worker", server.url, member],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


async def _admin(server):
    import nats

    return await nats.connect(server.url, **server.connect_kwargs("admin"))


async def _publish(server, patients, seq_from: int, seq_to: int, t0: int) -> int:
    nc = await _admin(server)
    js = nc.jetstream()
    n = 0
    for seq in range(seq_from, seq_to):
        for p in patients:
            data = np.zeros((10, 6), np.float32)
            frame = wire.Frame("s1", seq * 10, t0 + seq * 10 * PERIOD_NS, PERIOD_NS, wire.IMU6, data)
            await js.publish(layout.raw_subject("clinic", p, "s1"), wire.encode(frame),
                             headers={"Nats-Msg-Id": f"{p}:s1:{seq}"})
            n += 10
    await nc.close()
    return n


async def _checkpointed(server) -> tuple[dict[str, int], dict[int, str]]:
    nc = await _admin(server)
    js = nc.jetstream()
    ckpt = await js.key_value(layout.KV_CHECKPOINTS)
    leases = await js.key_value(layout.KV_LEASES)
    totals: dict[str, int] = {}
    owners: dict[int, str] = {}
    for k in range(layout.PARTITIONS):
        try:
            doc = json.loads((await ckpt.get(f"p{k}")).value)
            for p, v in doc["state"]["samples"].items():
                totals[p] = totals.get(p, 0) + v
        except Exception:
            pass
        with contextlib.suppress(Exception):
            owners[k] = (await leases.get(f"p{k}")).value.decode()
    await nc.close()
    return totals, owners


def _balanced(server, members: tuple[str, str]) -> bool:
    owners = list(asyncio.run(_checkpointed(server))[1].values())
    return len(owners) == layout.PARTITIONS and all(owners.count(m) == 8 for m in members)


def test_killed_worker_hands_over_and_a_joining_worker_takes_a_share(nats_server, tmp_path):
    patients = [f"p{i:02d}" for i in range(24)]
    t0 = time.time_ns() - 600 * 10**9
    a = _worker(nats_server, "wa", tmp_path / "a.log")
    b = _worker(nats_server, "wb", tmp_path / "b.log")
    c = None
    try:
        produced = asyncio.run(_publish(nats_server, patients, 0, 40, t0))
        wait_until(lambda: _balanced(nats_server, ("wa", "wb")), 30, "8 partitions each for wa, wb")
        produced += asyncio.run(_publish(nats_server, patients, 40, 80, t0))
        a.send_signal(signal.SIGKILL)  # mid-stream, no chance to checkpoint or release
        a.wait(10)
        produced += asyncio.run(_publish(nats_server, patients, 80, 120, t0))
        wait_until(lambda: set(asyncio.run(_checkpointed(nats_server))[1].values()) == {"wb"},
                   30, "the killed worker's partitions taken over")
        c = _worker(nats_server, "wc", tmp_path / "c.log")
        produced += asyncio.run(_publish(nats_server, patients, 120, 160, t0))
        wait_until(lambda: set(asyncio.run(_checkpointed(nats_server))[1].values()) == {"wb", "wc"},
                   30, "the joining worker owning a share")
        expected = dict.fromkeys(patients, 1600)

        def settled() -> bool:
            return asyncio.run(_checkpointed(nats_server))[0] == expected

        wait_until(settled, 30, "every sample counted in the checkpoints")
        time.sleep(2.0)
        totals, _owners = asyncio.run(_checkpointed(nats_server))
        assert totals == expected  # none lost, none counted twice
        assert sum(totals.values()) == produced
        wait_until(lambda: _balanced(nats_server, ("wb", "wc")), 30, "8 partitions each for wb, wc")
    finally:
        for proc in (a, b, c):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
    for name in ("b", "c"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in log, log[-3000:]
