"""The ingest service: raw frames from MQTT into InfluxDB, at least once, written idempotently.

A frame is acknowledged to the broker only after InfluxDB accepted its samples (paho's
manual acknowledgement, a persistent MQTT v5 session with ``clean_start=False``). If this
process dies or InfluxDB is away, the broker keeps and redelivers what was not acknowledged;
a redelivered frame rewrites the same points (same tags, same timestamps), so storage sees
each sample exactly once. A malformed payload is counted with its reason, logged, and
acknowledged so it cannot block the stream; it never stops ingestion.

Integrity: the broker's ACL lets a gateway publish under its own site only, so the site of a
raw topic is the publishing gateway's. A sensor belongs to one site: the one its retained
status names (``poise/v1/status/SITE/SENSOR``, which only that site's gateways may publish),
or else the site it was first seen under. A frame of a sensor under another site is refused
and counted as ``foreign_sensor``: one site's gateway cannot write into another's series.
An empty retained status (the operator clearing it) releases the sensor, for a sensor that
moved to another site.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from poise.core import topics, wire
from poise.core.influx import InfluxError, InfluxV1, frame_text, tags_for
from poise.core.plausible import frame_problem
from poise.core.ratelog import RateLimit, RateLimitedLog
from poise.core.tls import configure_mqtt

log = logging.getLogger("poise.ingest")
STATUS_PREFIX = topics.STATUS_ALL.split("+", 1)[0]


@dataclass(frozen=True)
class IngestParams:
    batch_samples: int = 5000  # write when this many samples are waiting ...
    flush_s: float = 0.25  # ... or when the oldest waited this long
    receive_maximum: int = 2000  # unacknowledged frames the broker may send us at once
    session_expiry_s: int = 7 * 24 * 3600  # how long the broker keeps our queue while we are away
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    group: str | None = None  # shared subscription group for replicas ($share/GROUP/...)
    # retention of a database the ingest creates (InfluxDB 1.x); never applied to an
    # existing one: changing it is the operator's ALTER RETENTION POLICY (docs/security.md)
    raw_retention: str = "30d"
    derived_retention: str = "INF"
    # dead letters per refusal reason: this many at once, then this many a second; a flood's
    # rest is only counted (``deadletters_withheld``), so it costs no second message each
    deadletter_burst: int = 200
    deadletter_per_s: float = 20.0


@dataclass
class IngestStats:
    frames_written: int = 0
    samples_written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    write_retries: int = 0
    batches: int = 0
    connects: int = 0
    redelivered: int = 0  # frames the broker sent again (DUP flag): written again, harmlessly
    status_conflicts: int = 0  # a sensor's status announced under a second site
    deadletters_withheld: int = 0  # refused frames beyond the dead-letter rate: counted only

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_written": self.frames_written,
            "samples_written": self.samples_written,
            "frames_rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "write_retries": self.write_retries,
            "batches": self.batches,
            "connects": self.connects,
            "redelivered": self.redelivered,
            "status_conflicts": self.status_conflicts,
            "deadletters_withheld": self.deadletters_withheld,
        }


class SensorSites:
    """Which site each sensor belongs to (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._site: dict[str, str] = {}
        self._lock = threading.Lock()

    def announce(self, site: str, sensor: str) -> bool:
        """A retained status of ``sensor`` under ``site``; False when it belongs elsewhere."""
        with self._lock:
            return self._site.setdefault(sensor, site) == site

    def release(self, site: str, sensor: str) -> None:
        with self._lock:
            if self._site.get(sensor) == site:
                del self._site[sensor]

    def admit(self, site: str, sensor: str) -> bool:
        """May a frame of ``sensor`` published under ``site`` be stored?"""
        with self._lock:
            return self._site.setdefault(sensor, site) == site

    def site_of(self, sensor: str) -> str | None:
        with self._lock:
            return self._site.get(sensor)


class _BufferedClient(mqtt.Client):
    """paho's client reading the socket in large chunks.

    paho reads a packet with at least three ``recv`` calls (its first byte, each byte of its
    length, its body) and handles one packet per ``select``; at thousands of small frames a
    second that is most of the ingest's receive time. This client serves those reads from a
    buffer filled ``READ_SIZE`` bytes at a time and handles every buffered packet before it
    waits again. The buffer belongs to one socket: a new connection starts with none.
    """

    READ_SIZE = 256 * 1024

    _rbuf: bytes = b""
    _rpos: int = 0
    _rsock: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing of the old one is kept
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, self.READ_SIZE))
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, 0
        out = self._rbuf[self._rpos : self._rpos + bufsize]
        self._rpos += len(out)
        return out

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # handle what is buffered now: select() cannot see it and would wait
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._sock is not None
            and self._rsock is self._sock
            and self._rpos < len(self._rbuf)
        ):
            rc = super().loop_read(max_packets)
        return rc

    def _packet_write(self) -> MQTTErrorCode:
        # The ingest acknowledges a batch's frames at once: send the queued PUBACKs (4 bytes
        # each) in one write instead of one each. Nothing else is merged.
        out = self._out_packet
        if len(out) > 1 and _is_fresh_puback(out[0]) and _is_fresh_puback(out[1]):
            merged = [out.popleft()]
            while out and len(merged) < 8192 and _is_fresh_puback(out[0]):
                merged.append(out.popleft())
            body = b"".join(bytes(p["packet"]) for p in merged)
            out.appendleft({**merged[0], "packet": body, "to_process": len(body), "pos": 0})
        return super()._packet_write()


def _is_fresh_puback(packet: Any) -> bool:
    return bool(packet["command"] & 0xF0 == PUBACK and packet["pos"] == 0)


@dataclass
class _Msg:
    epoch: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool


@dataclass(frozen=True)
class _Prepared:
    msg: _Msg
    text: str  # line protocol of the frame's samples; empty for a rejected frame
    n_samples: int


class Ingest:
    def __init__(
        self,
        mqtt_host: str,
        mqtt_port: int,
        influx: InfluxV1,
        *,
        client_id: str = "poise-ingest",
        params: IngestParams | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self.p = params or IngestParams()
        self.influx = influx
        self.stats = IngestStats()
        self._rejections = RateLimitedLog(log)
        self._deadletters = RateLimit(self.p.deadletter_per_s, self.p.deadletter_burst)
        self.sites = SensorSites()
        self._host, self._port = mqtt_host, mqtt_port
        self._queue: queue.Queue[_Msg] = queue.Queue()
        self._stop = threading.Event()
        # decoded batches waiting for InfluxDB; small, so memory stays bounded in an outage
        self._batches: queue.Queue[list[_Prepared]] = queue.Queue(maxsize=2)
        self._epoch = 0  # connection generation: an ack is only valid on its own connection
        self._epoch_lock = threading.Lock()
        self._client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        configure_mqtt(self._client, tls_ca)  # TLS when a CA file (or "system") is given
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self._batcher = threading.Thread(
            target=self._batch_loop, name="poise-ingest-batcher", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_loop, name="poise-ingest-writer", daemon=True
        )
        self._topic_keys: dict[str, tuple[topics.RawKey, dict[str, str]]] = {}
        self._outstanding = 0  # messages received and not yet finished with
        self._outstanding_lock = threading.Lock()
        self.subscription = (
            f"$share/{topics.check_id('group', self.p.group)}/{topics.RAW_ALL}"
            if self.p.group
            else topics.RAW_ALL
        )

    # --- paho callbacks ---
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
        with self._epoch_lock:
            self._epoch += 1
        self.stats.connects += 1
        log.info("connected to the broker (session present: %s)", flags.session_present)
        # Subscribe every time: a broker that lost its state (killed before saving) has
        # forgotten the subscription; subscribing again is harmless when it has not. Status
        # is not shared among replicas: each needs every sensor's site.
        client.subscribe([(self.subscription, 1), (topics.STATUS_ALL, 1)])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error(
                "the broker refused the subscription to %s: %s", self.subscription, reason_codes
            )
            return
        log.info("subscribed to %s", self.subscription)
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._epoch_lock:
            self._epoch += 1
        if not self._stop.is_set():
            log.warning(
                "lost the broker (%s); unacknowledged frames will be redelivered", reason_code
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(STATUS_PREFIX):
            self._on_status(msg)
            if msg.qos > 0:
                client.ack(msg.mid, msg.qos)
            return
        with self._outstanding_lock:
            self._outstanding += 1
        self._queue.put(
            _Msg(self._epoch, msg.mid, msg.qos, msg.topic, bytes(msg.payload), bool(msg.dup))
        )

    def _on_status(self, msg: mqtt.MQTTMessage) -> None:
        try:
            site, sensor = topics.parse_status(msg.topic)
        except topics.TopicError:
            return  # not ours to judge: status is only read here for sites
        if not msg.payload:
            self.sites.release(site, sensor)
        elif not self.sites.announce(site, sensor):
            self.stats.status_conflicts += 1
            log.warning(
                "sensor %s announced under site %s but belongs to site %s; its frames under "
                "%s are refused (clear the old retained status if it moved)",
                sensor,
                site,
                self.sites.site_of(sensor),
                site,
            )

    # --- lifecycle ---
    def start(self) -> None:
        self._ensure_schema()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.p.session_expiry_s
        props.ReceiveMaximum = self.p.receive_maximum
        self._client.connect_async(
            self._host, self._port, keepalive=15, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._batcher.start()
        self._writer.start()

    def _ensure_schema(self) -> None:
        delay = self.p.retry_initial_s
        while not self._stop.is_set():
            try:
                ran = self.influx.ensure_schema(self.p.raw_retention, self.p.derived_retention)
                for statement in ran:
                    log.info("created what was missing: %s", statement)
                return
            except InfluxError as exc:
                if not exc.retryable:
                    raise
                log.warning("InfluxDB not ready (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.p.retry_max_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the write in hand, then disconnect; what is left is redelivered later."""
        self._stop.set()
        self._batcher.join(timeout_s)
        self._writer.join(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    def idle(self) -> bool:
        """Nothing received is waiting to be written (for tests and the demo's summary)."""
        with self._outstanding_lock:
            return self._outstanding == 0

    # --- two stages, so decoding the next batch overlaps writing this one ---
    def _batch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            groups: list[_Prepared] = []
            try:
                groups.append(self._prepare(first))
                n_lines = groups[0].n_samples
                deadline = time.monotonic() + self.p.flush_s
                while n_lines < self.p.batch_samples:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        groups.append(self._prepare(self._queue.get(timeout=remaining)))
                    except queue.Empty:
                        break
                    n_lines += groups[-1].n_samples
                while not self._stop.is_set():
                    try:
                        self._batches.put(groups, timeout=0.2)
                        break
                    except queue.Full:
                        continue
            except Exception:
                self._recover("preparing a batch")
                with self._outstanding_lock:
                    self._outstanding -= len(groups) + 1  # the one that failed to prepare

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                groups = self._batches.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if self._write(groups):
                    self._ack([g.msg for g in groups])
            except Exception:
                self._recover("writing a batch")
            finally:
                with self._outstanding_lock:
                    self._outstanding -= len(groups)

    def _recover(self, what: str) -> None:
        # Nothing of the batch was acknowledged: the broker redelivers it after a reconnect,
        # so a bug here costs time, not data.
        log.exception("ingest failed %s; reconnecting to get it redelivered", what)
        self._client.reconnect()

    def _prepare(self, msg: _Msg) -> _Prepared:
        """Decode one message into line protocol, or count it as rejected (no lines)."""
        if msg.dup:
            self.stats.redelivered += 1
        try:
            key, tags = self._topic_key(msg.topic)
            frame = wire.decode(msg.payload)
            if frame.sensor_id != key.sensor:
                raise wire.WireError(
                    "sensor_mismatch",
                    f"payload sensor {frame.sensor_id!r} under topic sensor {key.sensor!r}",
                )
        except topics.TopicError as exc:
            self._reject("bad_topic", msg, str(exc))
            return _Prepared(msg, "", 0)
        except wire.WireError as exc:
            self._reject(exc.reason, msg, str(exc))
            return _Prepared(msg, "", 0)
        problem = frame_problem(frame, time.time_ns())
        if problem is not None:
            self._reject(problem[0], msg, problem[1])
            return _Prepared(msg, "", 0)
        if not self.sites.admit(key.site, key.sensor):
            self._reject(
                "foreign_sensor",
                msg,
                f"sensor {key.sensor} belongs to site {self.sites.site_of(key.sensor)}",
            )
            return _Prepared(msg, "", 0)
        return _Prepared(msg, frame_text(frame, tags), frame.n_samples)

    def _topic_key(self, topic: str) -> tuple[topics.RawKey, dict[str, str]]:
        """The parsed topic and its tags, kept per topic (a sensor sends every frame on one)."""
        known = self._topic_keys.get(topic)
        if known is None:
            key = topics.parse_raw(topic)  # TopicError for a bad one, which is not kept
            if len(self._topic_keys) >= 10_000:  # bounded: topics of sensors long gone
                self._topic_keys.clear()
            known = self._topic_keys[topic] = (key, tags_for(key.site, key.patient, key.sensor))
        return known

    def _reject(self, reason: str, msg: _Msg, detail: str) -> None:
        self.stats.rejected[reason] += 1
        # The topic holds pseudonymous ids only, so it may be logged (at a bounded rate).
        self._rejections.warning(reason, "rejected a frame on %s: %s", msg.topic, detail)
        # the payload itself, with its reason, for whoever keeps dead letters (an operator's
        # subscriber); not retained and not queued for anyone absent; at a bounded rate
        if not self._deadletters.allow(reason):
            self.stats.deadletters_withheld += 1
            return
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("reason", reason), ("topic", msg.topic)]
        self._client.publish(topics.DEADLETTER_INGEST, msg.payload, qos=0, properties=props)

    def _write(self, groups: list[_Prepared]) -> bool:
        texts = [g.text for g in groups if g.n_samples]
        if not texts:
            return True
        body = "\n".join(texts).encode()
        delay = self.p.retry_initial_s
        while True:
            try:
                self.influx.write(body)
                break
            except InfluxError as exc:
                if not exc.retryable:
                    self._write_one_by_one(groups)
                    return True
                if self._stop.is_set():
                    return False
                self.stats.write_retries += 1
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.p.retry_max_s)
        self.stats.batches += 1
        self.stats.frames_written += len(texts)
        self.stats.samples_written += sum(g.n_samples for g in groups)
        return True

    def _write_one_by_one(self, groups: list[_Prepared]) -> None:
        """InfluxDB refused the batch as a whole: find the frames it refuses, count them."""
        for g in groups:
            if not g.n_samples:
                continue
            try:
                self.influx.write(g.text.encode())
                self.stats.frames_written += 1
                self.stats.samples_written += g.n_samples
            except InfluxError as exc:
                if exc.retryable:
                    raise
                self._reject("influx_refused", g.msg, str(exc))

    def _ack(self, msgs: list[_Msg]) -> None:
        with self._epoch_lock:
            epoch = self._epoch
            for m in msgs:
                # A frame received on an earlier connection is redelivered on this one; its
                # old packet id may now name another frame, so it must not be acknowledged.
                if m.qos > 0 and m.epoch == epoch:
                    self._client.ack(m.mid, m.qos)
