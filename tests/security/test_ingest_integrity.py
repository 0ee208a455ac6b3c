"""Ingest integrity on the real stack: a frame whose sensor belongs to another site than the
publishing gateway's is refused and counted, never stored."""

from __future__ import annotations

import time

import numpy as np
import pytest

from poise.core import topics, wire
from poise.ingest import Ingest, SensorSites
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def test_sensor_sites_bind_on_first_sight_and_release_on_request():
    s = SensorSites()
    assert s.admit("a", "s1")
    assert s.admit("a", "s1")
    assert not s.admit("b", "s1")
    assert s.announce("b", "s2")
    assert not s.admit("a", "s2")
    assert not s.announce("a", "s2")
    s.release("a", "s2")  # not a's to release
    assert s.site_of("s2") == "b"
    s.release("b", "s2")
    assert s.admit("a", "s2")


def _payload(sensor: str, i: int) -> bytes:
    f = wire.Frame(
        sensor,
        i * 10,
        time.time_ns() + i * 10**8,
        10_000_000,
        wire.IMU6,
        np.full((10, 6), i, np.float32),
    )
    return wire.encode(f)


def test_a_gateway_cannot_write_into_a_sensor_of_another_site(stack, influx):
    info = stack.info()
    ing = Ingest(
        info.mqtt_host, info.mqtt_port, influx, client_id="ing-int", **stack.mqtt_kwargs("ingest")
    )
    ing.start()
    assert ing.subscribed.wait(10)
    site_a = stack.mqtt_client("gateway", "a")
    site_b = stack.mqtt_client("gateway", "b")
    for c in (site_a, site_b):
        c.connect(info.mqtt_host, info.mqtt_port)
        c.loop_start()
    try:
        # site b announces its sensor s-b1 (retained status, as every gateway does)
        site_b.publish(
            topics.status("b", "s-b1"), b'{"online": true}', qos=1, retain=True
        ).wait_for_publish(5)
        wait_until(lambda: ing.sites.site_of("s-b1") == "b", 10, "the status of s-b1")
        site_a.publish(topics.raw("a", "p1", "s-a1"), _payload("s-a1", 0), qos=1).wait_for_publish(
            5
        )
        wait_until(lambda: influx.count_samples() == 10 and ing.idle(), 20, "site a's frame")
        # a gateway of site a sends frames of site b's sensor; site b's gateway sends frames of
        # site a's sensor (under its own site: the ACL allows nothing else). Both are refused.
        site_a.publish(topics.raw("a", "p1", "s-b1"), _payload("s-b1", 1), qos=1).wait_for_publish(
            5
        )
        site_b.publish(topics.raw("b", "p9", "s-a1"), _payload("s-a1", 2), qos=1).wait_for_publish(
            5
        )
        site_b.publish(topics.raw("b", "p9", "s-b1"), _payload("s-b1", 3), qos=1).wait_for_publish(
            5
        )
        wait_until(lambda: influx.count_samples() == 20 and ing.idle(), 20, "site b's frame")
        time.sleep(0.3)
        assert dict(ing.stats.rejected) == {"foreign_sensor": 2}
        assert influx.count_samples("site = 'a'") == 10
        assert influx.count_samples("site = 'b' AND sensor = 's-b1'") == 10
        assert influx.count_samples("sensor = 's-a1' AND site = 'b'") == 0
    finally:
        for c in (site_a, site_b):
            c.loop_stop()
            c.disconnect()
        ing.stop()
