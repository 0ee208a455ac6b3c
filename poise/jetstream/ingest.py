"""Ingest from JetStream: stateless replicas of one durable pull consumer.

Every ingest process binds the same durable consumer (``poise-ingest``) on the raw
subjects of the partitioned stream, so the server spreads frames over however many
replicas run, and a replica that dies leaves its unacknowledged frames to be redelivered
to the others after ``ack_wait``. A frame is acknowledged only after InfluxDB accepted its
samples; a redelivered frame rewrites the same points (same tags and timestamps), so each
sample is stored once. A malformed frame is counted with its reason, copied to the
dead-letter subject with that reason in a header, and terminated so it is not redelivered.

Pitfalls of the client handled here: ``fetch`` raises ``nats.errors.TimeoutError`` (an
``asyncio.TimeoutError``) when nothing came, and may also return fewer messages than asked
or none; both just mean "fetch again".
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from poise.core import topics, wire
from poise.core.influx import InfluxError, InfluxV1, frame_text, tags_for
from poise.core.plausible import frame_problem
from poise.core.ratelog import RateLimit, RateLimitedLog
from poise.ingest import IngestStats
from poise.jetstream import layout

log = logging.getLogger("poise.ingest.nats")


@dataclass(frozen=True)
class NatsIngestParams:
    durable: str = "poise-ingest"
    batch_frames: int = 500  # frames fetched and written together
    fetch_timeout_s: float = 0.5
    ack_wait_s: float = 10.0  # a frame not acknowledged within this goes to another replica
    max_ack_pending: int = 20000
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    log_every_s: float = 10.0  # rejected frames are logged at most once per this, with counts
    deadletter_burst: int = 200  # dead letters per reason at once, then per second (the rest
    deadletter_per_s: float = 20.0  # of a flood only counted: as the MQTT ingest does)


class FrameRejectedError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def prepare(topic: str, payload: bytes) -> tuple[str, int]:
    """Line protocol and sample count of one raw frame, or ``FrameRejectedError``."""
    try:
        key = topics.parse_raw(topic)
        frame = wire.decode(payload)
    except topics.TopicError as exc:
        raise FrameRejectedError("bad_topic", str(exc)) from exc
    except wire.WireError as exc:
        raise FrameRejectedError(exc.reason, str(exc)) from exc
    problem = frame_problem(frame, time.time_ns())
    if problem is not None:
        raise FrameRejectedError(*problem)
    if frame.sensor_id != key.sensor:
        raise FrameRejectedError(
            "sensor_mismatch",
            f"payload sensor {frame.sensor_id!r} under topic sensor {key.sensor!r}",
        )
    return frame_text(frame, tags_for(key.site, key.patient, key.sensor)), frame.n_samples


class NatsIngest:
    def __init__(
        self,
        url: str,
        influx: InfluxV1,
        *,
        user: str | None = None,
        password: str | None = None,
        params: NatsIngestParams | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self.url = url
        self.influx = influx
        self.p = params or NatsIngestParams()
        self.stats = IngestStats()
        self._user, self._password, self._tls_ca = user, password, tls_ca
        self._rejections = RateLimitedLog(log, self.p.log_every_s)
        self._deadletters = RateLimit(self.p.deadletter_per_s, self.p.deadletter_burst)
        self.ready = asyncio.Event()
        self._nc: Any = None

    async def _connect(self) -> Any:
        import nats

        kw: dict[str, Any] = {}
        if self._tls_ca:
            import ssl

            kw["tls"] = ssl.create_default_context(cafile=self._tls_ca)
        return await nats.connect(
            self.url,
            user=self._user,
            password=self._password,
            name="poise-ingest",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            **kw,
        )

    async def run(self, stop: asyncio.Event) -> None:
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig

        await self._ensure_schema(stop)
        nc = await self._connect()
        self.stats.connects += 1
        try:
            self._nc = nc
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                layout.RAW_FILTER,
                durable=self.p.durable,
                stream=layout.STREAM,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.p.ack_wait_s,
                    max_ack_pending=self.p.max_ack_pending,
                ),
            )
            self.ready.set()
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.p.batch_frames, timeout=self.p.fetch_timeout_s)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                if msgs:
                    await self._handle(js, msgs, stop)
        finally:
            await nc.close()

    async def _ensure_schema(self, stop: asyncio.Event) -> None:
        delay = self.p.retry_initial_s
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.influx.ensure_schema)
                return
            except InfluxError as exc:
                if not exc.retryable:
                    raise
                log.warning("InfluxDB not ready (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.p.retry_max_s)

    async def _handle(self, js: Any, msgs: list[Any], stop: asyncio.Event) -> None:
        texts: list[str] = []
        good: list[Any] = []
        n_samples = 0
        for m in msgs:
            if m.metadata.num_delivered > 1:
                self.stats.redelivered += 1
            try:
                routed = layout.parse_subject(m.subject)
                text, n = prepare(routed.topic, m.data)
            except (layout.SubjectError, ValueError) as exc:
                await self._reject(js, m, "bad_subject", str(exc))
                continue
            except FrameRejectedError as exc:
                await self._reject(js, m, exc.reason, str(exc))
                continue
            texts.append(text)
            good.append(m)
            n_samples += n
        if texts and not await self._write("\n".join(texts).encode(), stop):
            return  # stopping: not acknowledged, so redelivered to whoever runs next
        for m in good:
            await m.ack()
        self.stats.batches += 1 if texts else 0
        self.stats.frames_written += len(good)
        self.stats.samples_written += n_samples

    async def _write(self, body: bytes, stop: asyncio.Event) -> bool:
        delay = self.p.retry_initial_s
        while True:
            try:
                await asyncio.to_thread(self.influx.write, body)
                return True
            except InfluxError as exc:
                if not exc.retryable:
                    # one bad line must not block the rest: InfluxDB writes what it can
                    # parse and refuses the rest; count the batch as refused
                    self.stats.rejected["influx_refused"] += 1
                    log.warning("InfluxDB refused a batch: %s", exc)
                    return True
                if stop.is_set():
                    return False
                self.stats.write_retries += 1
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return False
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.p.retry_max_s)

    async def _reject(self, js: Any, m: Any, reason: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        # dead letters go out on core NATS: whoever keeps them (a stream of their own, an
        # operator's subscriber) decides for how long; at a bounded rate
        if self._deadletters.allow(reason):
            await self._nc.publish(
                f"{layout.DEAD_LETTER_PREFIX}.ingest",
                m.data,
                headers={"Poise-Reason": reason, "Poise-Subject": m.subject},
            )
        else:
            self.stats.deadletters_withheld += 1
        await m.term()
        self._rejections.warning(reason, "rejected a frame on %s: %s", m.subject, detail)


def run_forever(ingest: NatsIngest, stats_every_s: float) -> dict[str, Any]:
    """Run until SIGINT/SIGTERM, logging counters; returns the final counters."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(ingest.run(stop))
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), stats_every_s)
            except TimeoutError:
                log.info("stats %s", ingest.stats.as_dict())
            if task.done():
                task.result()  # a failure to connect ends the run with its message
                return
        await task

    asyncio.run(main())
    return ingest.stats.as_dict()
