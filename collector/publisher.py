"""MQTT publisher with a disk spool: paho-mqtt 2.x, MQTT v5, QoS 1.

Frames go to the spool first and are deleted only after the broker's PUBACK (and a replay
window more, see collector.spool). A pump thread moves them from the spool to paho with at
most ``window`` in flight, so memory stays bounded however long the broker is away.

Device status is retained; the gateway's own status topic carries a last will, so a gateway
that vanishes shows as offline, and with it every sensor it served.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.spool import Spool
from poise.core import status, topics
from poise.core.mqttconf import mqtt_protocol
from poise.core.tls import configure_mqtt

log = logging.getLogger("poise.collector.publisher")

# Longer than the broker's autosave interval (poise.stack.AUTOSAVE_INTERVAL_S), with margin:
# frames the broker acknowledged this shortly before a disconnect may not have reached its
# disk, so they are published again after the reconnect.
REPLAY_WINDOW_S = 30.0

# MQTT 5 for Mosquitto; 3.1.1 for brokers that speak only that, such as NATS's MQTT listener
MQTT_PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


@dataclass
class PublisherStats:
    spooled: int = 0
    sent: int = 0
    acked: int = 0
    refused: int = 0  # PUBACK with a failure reason code; resent later
    replayed: int = 0
    connects: int = 0
    disconnects: int = 0


class Publisher:
    def __init__(
        self,
        host: str,
        port: int,
        spool: Spool,
        *,
        site: str,
        gateway_id: str,
        window: int = 500,
        replay_window_s: float = REPLAY_WINDOW_S,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 15,
        tls_ca: str | None = None,
        protocol: str | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        protocol = mqtt_protocol(protocol)  # None: POISE_MQTT_PROTOCOL, else 5
        self.protocol = protocol
        self.spool = spool
        self.window = window
        self.replay_window_ns = int(replay_window_s * 1e9)
        self.now_ns = now_ns
        self.stats = PublisherStats()
        self.site = topics.check_id("site", site)
        self.gateway_id = topics.check_id("gateway", gateway_id)
        self._host, self._port, self._keepalive = host, port, keepalive_s
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"poise-gw-{gateway_id}",
            protocol=MQTT_PROTOCOLS[protocol],
            # 3.1.1 has no clean_start; the spool, not the broker session, holds what is unsent
            clean_session=True if protocol == "3.1.1" else None,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        configure_mqtt(self._client, tls_ca)  # TLS when a CA file (or "system") is given
        self._client.max_inflight_messages_set(window)
        self._client.reconnect_delay_set(min_delay=1, max_delay=15)
        self._client.will_set(
            topics.status(site, gateway_id),
            json.dumps(status.gateway_status(False)),
            qos=1,
            retain=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._acks: deque[tuple[int, bool]] = deque()  # filled by paho's thread
        self._inflight: dict[int, int] = {}  # mid -> spool id; the pump thread's alone
        self._cursor = 0  # highest spool id handed to paho
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._ever_connected = False
        self._disconnected_at_ns: int | None = None
        self._connected_since_ns = 0
        self._replay_from_ns: int | None = None
        self.last_refusal: str | None = None  # the broker's reason for the last refused frame
        self._pause_until = 0.0  # after a refusal: resend no sooner (monotonic s)
        self._warned_at = -1e9
        self._pump_thread = threading.Thread(target=self._pump, name="poise-pump", daemon=True)

    # --- paho callbacks (network thread): record and wake the pump, nothing more ---
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        self.stats.connects += 1
        if self._ever_connected and self._disconnected_at_ns is not None:
            self._replay_from_ns = self._disconnected_at_ns - self.replay_window_ns
        self._ever_connected = True
        self._connected_since_ns = self.now_ns()
        self._connected.set()
        client.publish(
            topics.status(self.site, self.gateway_id),
            json.dumps(status.gateway_status(True)),
            qos=1,
            retain=True,
        )
        self._wake.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            self.stats.disconnects += 1
            self._disconnected_at_ns = self.now_ns()
            log.warning("lost the broker (%s); frames stay spooled and are resent", reason_code)
        self._connected.clear()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.last_refusal = str(reason_code)
        self._acks.append((mid, not reason_code.is_failure))
        self._wake.set()

    # --- public API ---
    def start(self) -> None:
        kw: dict[str, Any] = {} if self.protocol == "3.1.1" else {"clean_start": True}
        self._client.connect_async(self._host, self._port, keepalive=self._keepalive, **kw)
        self._client.loop_start()
        self._pump_thread.start()

    def publish(self, items: list[tuple[str, bytes]]) -> None:
        """Spool frames (durably) and let the pump send them."""
        if items:
            self.spool.put(items)
            self.stats.spooled += len(items)
            self._wake.set()

    def publish_status(self, sensor_id: str, status: dict[str, Any]) -> None:
        """Retained device status: only the latest matters, so it is not spooled."""
        self._client.publish(
            topics.status(self.site, sensor_id), json.dumps(status), qos=1, retain=True
        )

    def connected(self) -> bool:
        return self._connected.is_set()

    def pending(self) -> int:
        return self.spool.counts()[0]

    def wait_drained(self, timeout_s: float) -> bool:
        return self.spool.wait_drained(timeout_s)

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        self.wait_drained(drain_timeout_s)
        self._stop.set()
        self._wake.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join(5)
        if self._connected.is_set():
            info = self._client.publish(
                topics.status(self.site, self.gateway_id),
                json.dumps(status.gateway_status(False)),
                qos=1,
                retain=True,
            )
            info.wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()

    # --- the pump thread ---
    def _pump(self) -> None:
        last_purge = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._pump_once()
                if time.monotonic() - last_purge > 5:
                    self._purge()
                    last_purge = time.monotonic()
            except Exception:  # the pump must outlive any one bad moment
                log.exception("publisher pump error; retrying")
                time.sleep(0.5)

    def _pump_once(self) -> None:
        acked: list[int] = []
        while self._acks:
            mid, ok = self._acks.popleft()
            spool_id = self._inflight.pop(mid, None)
            if spool_id is None:
                continue
            if ok:
                acked.append(spool_id)
            else:
                self.stats.refused += 1
                self._cursor = min(self._cursor, spool_id - 1)  # resend from there
                # the broker may refuse for good (an ACL): resend calmly, say why, rarely
                self._pause_until = time.monotonic() + 1.0
                if time.monotonic() - self._warned_at > 30:
                    self._warned_at = time.monotonic()
                    log.warning(
                        "the broker refused frames (%s); they stay spooled and are resent. "
                        "A gateway's MQTT user must be its site id",
                        self.last_refusal,
                    )
        if acked:
            self.spool.ack(acked, self.now_ns())
            self.stats.acked += len(acked)
        if self._replay_from_ns is not None and self._connected.is_set():
            since, self._replay_from_ns = self._replay_from_ns, None
            rows = self.spool.acked_since(since)
            for spool_id, topic, payload in rows:
                info = self._client.publish(topic, payload, qos=1)
                self._inflight[info.mid] = spool_id
            self.stats.replayed += len(rows)
            if rows:
                log.info("replayed %d frames acknowledged shortly before the disconnect", len(rows))
        room = self.window - len(self._inflight)
        if room <= 0 or time.monotonic() < self._pause_until:
            return
        in_flight = set(self._inflight.values())
        for spool_id, topic, payload in self.spool.unacked_after(self._cursor, room):
            if spool_id in in_flight:
                continue
            info = self._client.publish(topic, payload, qos=1)
            self._inflight[info.mid] = spool_id
            self._cursor = spool_id
            self.stats.sent += 1

    def _purge(self) -> None:
        now = self.now_ns()
        if self._connected.is_set() and now - self._connected_since_ns > self.replay_window_ns:
            self.spool.purge(now - self.replay_window_ns)
