"""Every refusal of the secure stack, against real Mosquitto and InfluxDB: nobody reads or
writes patient data without a login that allows it (docs/security.md)."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from poise.core import topics, wire
from poise.core.influx import Auth, InfluxError, InfluxV1
from poise.stack import LocalStack, acl_text
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy"


class Probe:
    """A paho client that records CONNACK, SUBACK, PUBACK reason codes and messages."""

    def __init__(self, stack: LocalStack, login: tuple[str, str] | None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if login is not None:
            self.client.username_pw_set(*login)
        self.connack: Any = None
        self.connected = threading.Event()
        self.pubacks: dict[int, Any] = {}
        self.suback = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.suback.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        info = stack.info()
        self.client.connect(info.mqtt_host, info.mqtt_port)
        self.client.loop_start()
        self.connected.wait(10)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = rc
        self.connected.set()

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        wait_until(lambda: info.mid in self.pubacks, 10, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.suback.clear()
        self.client.subscribe(topic, qos=1)
        assert self.suback.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _frame(sensor: str = "s1") -> bytes:
    f = wire.Frame(sensor, 0, time.time_ns(), 10_000_000, wire.IMU6, np.ones((10, 6), np.float32))
    return wire.encode(f)


def test_anonymous_and_wrong_password_clients_are_refused(stack):
    anonymous = Probe(stack, None)
    wrong = Probe(stack, ("t", "not-the-password"))
    unknown = Probe(stack, ("nobody", "x"))
    try:
        for p in (anonymous, wrong, unknown):
            assert p.connack is not None, "the broker did not answer"
            assert p.connack.is_failure
            assert str(p.connack) == "Not authorized"
    finally:
        for p in (anonymous, wrong, unknown):
            p.close()


def test_a_gateway_publishes_its_own_site_only_and_reads_nothing(stack):
    watcher = Probe(stack, stack.mqtt_login("admin"))
    gateway = Probe(stack, stack.mqtt_login("gateway", "t"))
    try:
        assert not gateway.connack.is_failure
        watcher.subscribe("poise/#")
        gateway.subscribe("poise/v1/raw/#")  # granted by 2.0.11, but nothing is delivered
        own = topics.raw("t", "p1", "s1")
        assert not gateway.publish(own, _frame()).is_failure
        assert not gateway.publish(topics.status("t", "s1"), b"{}").is_failure
        for topic in (
            topics.raw("clinic", "p1", "s1"),  # another site's raw frames
            topics.status("clinic", "s1"),
            topics.session("t", "p1"),
            topics.metrics("t", "p1"),
        ):
            assert str(gateway.publish(topic, _frame())) == "Not authorized", topic
        wait_until(lambda: len(watcher.messages) >= 2, 10, "the two allowed messages")
        watcher.publish(topics.raw("t", "p2", "s9"), _frame("s9"))
        time.sleep(0.5)
        assert sorted(t for t, _ in watcher.messages) == sorted(
            [own, topics.status("t", "s1"), topics.raw("t", "p2", "s9")]
        )
        assert gateway.messages == [], "a gateway read raw frames"
    finally:
        watcher.close()
        gateway.close()


def test_roles_publish_only_what_their_acl_allows(stack):
    worker = Probe(stack, stack.mqtt_login("worker"))
    console = Probe(stack, stack.mqtt_login("console"))
    ingest = Probe(stack, stack.mqtt_login("ingest"))
    reader = Probe(stack, stack.mqtt_login("reader"))
    try:
        raw = topics.raw("t", "p1", "s1")
        for p in (worker, console, ingest, reader):
            assert str(p.publish(raw, _frame())) == "Not authorized"
        assert not worker.publish(topics.metrics("t", "p1"), b"{}").is_failure
        assert not worker.publish(topics.alerts("t", "p1"), b"{}").is_failure
        assert str(worker.publish(topics.session("t", "p1"), b"{}")) == "Not authorized"
        assert not console.publish(topics.session("t", "p1"), b"{}").is_failure
        assert str(console.publish(topics.metrics("t", "p1"), b"{}")) == "Not authorized"
        assert str(reader.publish(topics.metrics("t", "p1"), b"{}")) == "Not authorized"
        # the reader and the console never see raw frames
        reader.subscribe("poise/#")
        console.subscribe("poise/#")
        gw = Probe(stack, stack.mqtt_login("gateway", "t"))
        gw.publish(raw, _frame())
        gw.close()
        worker.publish(topics.metrics("t", "p1"), b"{}")
        wait_until(lambda: reader.messages and console.messages, 10, "the metrics message")
        assert {t for t, _ in reader.messages} == {topics.metrics("t", "p1")}
        assert {t for t, _ in console.messages} == {topics.metrics("t", "p1")}
    finally:
        for p in (worker, console, ingest, reader):
            p.close()


def test_influxdb_refuses_anonymous_and_read_only_writes(stack):
    url, db = stack.info().influx_url, stack.database
    line = f"imu,site=t,patient=p1,sensor=s1 acc_x=1 {time.time_ns()}".encode()
    anon = httpx.post(f"{url}/write", params={"db": db, "rp": "raw"}, content=line)
    assert anon.status_code == 401
    anon_q = httpx.post(f"{url}/query", data={"q": "SHOW DATABASES"})
    assert anon_q.status_code == 401
    drop = httpx.post(f"{url}/query", data={"q": f'DROP DATABASE "{db}"'})
    assert drop.status_code == 401
    for role in ("reader", "console"):
        with stack.influx_client(role) as ro:
            with pytest.raises(InfluxError) as exc:
                ro.write([line.decode()])
            assert exc.value.status == 403
            assert not exc.value.retryable
            with pytest.raises(InfluxError, match=r"not authorized|requires admin"):
                ro.query(f'DROP DATABASE "{db}"')
    with InfluxV1(url, db, Auth(username="poise.ingest", password="wrong")) as bad:
        with pytest.raises(InfluxError) as exc:
            bad.write([line.decode()])
        assert exc.value.status == 401
    with stack.influx_client("ingest") as ing:
        ing.write([line.decode()])
        with pytest.raises(InfluxError, match="requires admin"):
            ing.query("CREATE USER x WITH PASSWORD 'y' WITH ALL PRIVILEGES")
    with stack.influx_client("reader") as ro:
        assert ro.count_samples() == 1


def test_secrets_are_owner_only_and_the_shipped_acl_is_the_stacks(stack):
    secrets_dir = stack.root / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    files = [p for p in secrets_dir.rglob("*") if p.is_file()]
    assert len(files) >= 11
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE((stack.root / "stack.json").stat().st_mode) == 0o600
    passwd = (stack.root / "mosquitto" / "passwd").read_text()
    assert "$7$" in passwd  # hashed by mosquitto_passwd, no password in clear
    for p in files:
        assert p.read_text().strip() not in passwd
    # env names files, and the one password it carries is the read-only one
    env = stack.env
    assert {k for k in env if k.endswith("_PASSWORD")} == {"POISE_INFLUX_READ_PASSWORD"}
    assert (DOCS / "aclfile").read_text() == acl_text()
