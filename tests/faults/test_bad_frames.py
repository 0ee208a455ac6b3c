"""Bad frames at the ingest: refused with a reason, counted, sent to the dead-letter topic
(at a bounded rate per reason: a flood's rest is counted), logged at a bounded rate;
implausible times and values are not stored."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from poise.core import topics, wire
from poise.ingest import Ingest
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
SITE = "t"


def _frame(sid: str, seq: int, t0_ns: int, value: float = 1.0) -> bytes:
    data = np.full((10, 6), value, np.float32)
    return wire.encode(wire.Frame(sid, seq * 10, t0_ns + seq * 10**8, 10**7, wire.IMU6, data))


def test_a_flood_of_bad_frames_is_counted_dead_lettered_and_logged_a_few_times(
    stack, influx, caplog
):
    info = stack.info()
    dead: list[tuple[str, str]] = []
    admin = stack.mqtt_client("admin")
    admin.on_message = lambda c, u, m: dead.append(
        (dict(m.properties.UserProperty).get("reason", ""), m.topic)
    )
    admin.on_connect = lambda c, *a: c.subscribe(topics.DEADLETTER_INGEST, qos=0)
    admin.connect(info.mqtt_host, info.mqtt_port)
    admin.loop_start()
    ing = Ingest(info.mqtt_host, info.mqtt_port, stack.influx_client("ingest"),
                 client_id="t-flood", **stack.mqtt_kwargs("ingest"))  # fmt: skip
    gw = stack.mqtt_client("gateway", SITE)
    gw.connect(info.mqtt_host, info.mqtt_port)
    gw.loop_start()
    caplog.set_level(logging.WARNING, logger="poise.ingest")
    ing.start()
    try:
        assert ing.subscribed.wait(10)
        time.sleep(0.5)
        t0 = time.time_ns() - 10**11
        topic = topics.raw(SITE, "p001", "s1")
        infos = [gw.publish(topic, b"\x00 not a frame", qos=1) for _ in range(2000)]
        infos += [gw.publish(topic, _frame("s1", k, t0), qos=1) for k in range(20)]
        far = 200 * 365 * 86_400 * 10**9  # the year 2200
        infos.append(gw.publish(topic, _frame("s1", 100, t0 + far), qos=1))
        infos.append(gw.publish(topic, _frame("s1", 200, t0, value=3e38), qos=1))
        for i in infos:
            i.wait_for_publish(30)
        wait_until(lambda: ing.stats.frames_written >= 20
                   and sum(ing.stats.rejected.values()) >= 2002, 60, "every frame handled")  # fmt: skip
        wait_until(
            lambda: len(dead) + ing.stats.deadletters_withheld >= 2002, 20, "the dead letters"
        )
    finally:
        ing.stop()
        ing.influx.close()
        for c in (gw, admin):
            c.disconnect()
            c.loop_stop()
    assert influx.count_samples() == 200  # the 20 good frames, nothing implausible
    assert ing.stats.rejected["implausible_time"] == 1
    assert ing.stats.rejected["implausible_value"] == 1
    assert sum(ing.stats.rejected.values()) == 2002
    # every refusal is either a dead letter or counted as withheld; a flood of one reason
    # does not crowd out the rare ones (a bucket per reason)
    assert len(dead) + ing.stats.deadletters_withheld == 2002
    assert ing.stats.deadletters_withheld > 0
    assert len(dead) <= ing.p.deadletter_burst + 2 + 60 * ing.p.deadletter_per_s
    reasons = {r for r, _t in dead}
    assert {"implausible_time", "implausible_value"} <= reasons
    assert all(r for r, _t in dead)
    rejected_lines = [r for r in caplog.records if "rejected a frame" in r.getMessage()]
    assert 1 <= len(rejected_lines) <= 5, len(rejected_lines)  # not 2,002 lines
