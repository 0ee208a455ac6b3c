"""The console's MQTT shell: publishes the session events of the outbox (QoS 1, deleted
only after the broker's PUBACK, in order) and feeds the ``LiveBoard`` from the worker's
metrics and alerts and the gateways' device status, then hands each update to the pages'
event streams on the web server's event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from poise.console.db import Outbox, TrialRow
from poise.console.live import LiveBoard
from poise.core import derived, topics
from poise.core.mqttconf import paho_protocol
from poise.core.tls import configure_mqtt

log = logging.getLogger("poise.console")

QUEUE_MAX = 2000  # updates buffered per open page before the oldest are dropped


class Fanout:
    """Page subscribers per patient (asyncio queues), fed from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.dropped = 0

    def subscribe(self, pid: str) -> asyncio.Queue[dict[str, Any]]:
        self.loop = asyncio.get_running_loop()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._subs.setdefault(pid, set()).add(q)
        return q

    def unsubscribe(self, pid: str, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs.get(pid, set()).discard(q)

    def _deliver(self, pid: str, update: dict[str, Any]) -> None:
        for q in list(self._subs.get(pid, ())):
            if q.full():
                q.get_nowait()  # a page that cannot keep up loses its oldest update
                self.dropped += 1
            q.put_nowait(update)

    def publish(self, pid: str, update: dict[str, Any]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed() and self._subs.get(pid):
            loop.call_soon_threadsafe(self._deliver, pid, update)


class Bridge:
    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        db: sessionmaker[Session],
        board: LiveBoard,
        fanout: Fanout,
        *,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self.site = topics.check_id("site", site)
        self.db, self.board, self.fanout = db, board, fanout
        self._host, self._port = host, port
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"poise-console-{site}-{uuid.uuid4().hex[:8]}",
            protocol=paho_protocol(),  # 5, or 3.1.1 on NATS (POISE_MQTT_PROTOCOL)
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        configure_mqtt(self._client, tls_ca)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pump = threading.Thread(
            target=self._pump_loop, name="poise-console-outbox", daemon=True
        )
        self.sent = 0
        self.rejected: dict[str, int] = {}

    # --- lifecycle
    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=15)
        self._client.loop_start()
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._pump.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def connected(self) -> bool:
        return self._connected.is_set()

    def wake(self) -> None:
        """A new event is in the outbox."""
        self._wake.set()

    def pending(self) -> int:
        with self.db() as s:
            return len(s.scalars(select(Outbox.seq)).all())

    # --- MQTT callbacks (paho's thread)
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("broker refused the console: %s", rc)
            return
        for kind in ("metrics", "alerts"):
            client.subscribe(f"{topics.PREFIX}/{kind}/{self.site}/+", qos=1)
        client.subscribe(f"{topics.PREFIX}/status/{self.site}/+", qos=1)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, *_a: Any) -> None:
        self._connected.clear()

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 5 or parts[3] != self.site or not topics.ID_RE.fullmatch(parts[4]):
            self._reject("bad_topic")
            return
        kind, key = parts[2], parts[4]
        try:
            if kind == "status":
                doc = json.loads(msg.payload)
                if not isinstance(doc, dict):
                    raise ValueError("status is not an object")
                update = self.board.apply_status(key, doc, time.time())
            else:
                update = self.board.apply_points(key, derived.parse_message(bytes(msg.payload)))
        except (ValueError, TypeError, KeyError):
            self._reject(f"bad_{kind}")
            return
        if update is not None:
            self.fanout.publish(update["patient"], update)
        self._store_summaries()

    def _store_summaries(self) -> None:
        done = self.board.pop_trial_summaries()
        if not done:
            return
        with self.db.begin() as s:
            for trial, fields in done:
                row = s.get(TrialRow, trial)
                if row is not None:
                    row.summary_json = json.dumps(fields)

    # --- the outbox pump
    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(2.0)
            self._wake.clear()
            if self._connected.is_set():
                try:
                    self._drain()
                except Exception:  # keep the pump alive; the events stay in the outbox
                    log.exception("outbox: publishing failed; retrying")
                    time.sleep(1.0)

    def _drain(self) -> None:
        while not self._stop.is_set() and self._connected.is_set():
            with self.db() as s:
                rows = s.scalars(select(Outbox).order_by(Outbox.seq).limit(50)).all()
            if not rows:
                return
            for row in rows:
                info = self._client.publish(row.topic, row.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # not connected: the next connect wakes the pump
                try:
                    info.wait_for_publish(10.0)
                except RuntimeError:
                    return
                if not info.is_published():
                    return  # not acknowledged: try again after the next connect
                with self.db.begin() as s:
                    s.execute(delete(Outbox).where(Outbox.seq == row.seq))
                self.sent += 1
