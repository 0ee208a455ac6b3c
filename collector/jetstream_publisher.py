"""Publisher straight to NATS JetStream, for gateways of a site that runs on NATS.

The MQTT path through nats-server's MQTT listener works unchanged, but its PUBACK means
only that the server took the message, not that the stream stored it (a publish refused by
permissions is acknowledged all the same). Here every frame is published to JetStream and
deleted from the spool only after the stream's own acknowledgement, which names the stream
and the sequence it stored the frame at. Each frame carries a ``Nats-Msg-Id`` made from its
topic and content, so a frame sent again after a lost acknowledgement (a reconnect, a
gateway restart) is recognised by the stream's duplicate window and stored once.

Same public methods as ``collector.publisher.Publisher``: the gateway picks one or the
other by the broker URL it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from collector.publisher import PublisherStats
from collector.spool import Spool
from poise.core import topics

log = logging.getLogger("poise.collector.jetstream")


def msg_id(topic: str, payload: bytes) -> str:
    """The de-duplication id of a frame: the same frame always gets the same id."""
    return f"{topic}:{hashlib.sha256(payload).hexdigest()[:32]}"


def subject(topic: str) -> str:
    return topic.replace("/", ".")


class JetStreamPublisher:
    def __init__(
        self,
        url: str,
        spool: Spool,
        *,
        site: str,
        gateway_id: str,
        window: int = 256,
        username: str | None = None,
        password: str | None = None,
        ack_timeout_s: float = 5.0,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.url = url
        self.spool = spool
        self.window = window
        self.site = topics.check_id("site", site)
        self.gateway_id = topics.check_id("gateway", gateway_id)
        self.stats = PublisherStats()
        self.now_ns = now_ns
        self._user, self._password = username, password
        self._ack_timeout_s = ack_timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="poise-js-pub", daemon=True
        )
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._nc: Any = None
        self._pump_future: Any = None

    # --- public API (thread-safe, called from the gateway's threads) ---
    def start(self) -> None:
        self._thread.start()
        self._pump_future = asyncio.run_coroutine_threadsafe(self._run(), self._loop)

    def publish(self, items: list[tuple[str, bytes]]) -> None:
        if items:
            self.spool.put(items)
            self.stats.spooled += len(items)
            self._poke()

    def publish_status(self, sensor_id: str, status: dict[str, Any]) -> None:
        """Status goes out on core NATS (not retained: the gateway repeats it)."""
        if self._nc is None or not self._connected.is_set():
            return
        data = json.dumps(status).encode()
        asyncio.run_coroutine_threadsafe(
            self._nc.publish(subject(topics.status(self.site, sensor_id)), data), self._loop
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
        self._poke()
        if self._pump_future is not None:
            try:
                self._pump_future.result(10)
            except Exception:  # the run already logged why it ended
                log.debug("publisher ended with an error", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # --- the event loop thread ---
    def _poke(self) -> None:
        wake = self._wake
        if wake is not None:
            self._loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        import nats

        self._wake = asyncio.Event()

        async def disconnected() -> None:
            if self._connected.is_set():
                self.stats.disconnects += 1
                log.warning("lost the NATS server; frames stay spooled and are resent")
            self._connected.clear()

        async def reconnected() -> None:
            self.stats.connects += 1
            self._connected.set()

        while not self._stop.is_set():
            try:
                self._nc = await nats.connect(
                    self.url,
                    user=self._user,
                    password=self._password,
                    name=f"poise-gw-{self.gateway_id}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    connect_timeout=5,
                )
                break
            except Exception as exc:
                log.warning("cannot reach NATS at %s (%s); retrying", self.url, exc)
                await asyncio.sleep(2)
        if self._nc is None:
            return
        self.stats.connects += 1
        self._connected.set()
        js = self._nc.jetstream()
        try:
            while not self._stop.is_set():
                sent = await self._pump_once(js)
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.5)
                    self._wake.clear()
        finally:
            await self._nc.drain()

    async def _pump_once(self, js: Any) -> int:
        if not self._connected.is_set():
            return 0
        rows = self.spool.unacked_after(0, self.window)
        if not rows:
            return 0

        async def one(spool_id: int, topic: str, payload: bytes) -> int | None:
            try:
                ack = await js.publish(
                    subject(topic),
                    payload,
                    timeout=self._ack_timeout_s,
                    headers={"Nats-Msg-Id": msg_id(topic, payload)},
                )
            except Exception as exc:
                self.stats.refused += 1
                log.debug("no stream acknowledgement for a frame: %s", exc)
                return None
            if ack.duplicate:
                self.stats.replayed += 1
            return spool_id

        results = await asyncio.gather(*(one(*row) for row in rows))
        self.stats.sent += len(rows)
        acked = [r for r in results if r is not None]
        if acked:
            self.spool.ack(acked, self.now_ns())
            self.spool.purge(self.now_ns() + 1)  # the stream holds them now
            self.stats.acked += len(acked)
        else:
            await asyncio.sleep(0.5)  # nothing got through: do not spin
        return len(acked)
