"""The analysis worker on JetStream: one ``WorkerCore`` per owned partition.

The same core as ``poise worker --mqtt`` (poise.worker), fed from the partition's slice of
the stream instead of an MQTT session; its state goes into the partition's checkpoint
(poise.jetstream.partitions), so a partition moves between workers with its open sessions,
trials, alert episodes and pending summaries. Live points and summaries are written to
InfluxDB exactly as the MQTT worker writes them (same measurement, tags and timestamps, so
work repeated after a takeover rewrites the same points), and metrics and alerts are
published on core NATS subjects ``poise.v1.metrics.{site}.{patient}`` and
``poise.v1.alerts.{site}.{patient}``, which MQTT clients of the NATS server (the console,
dashboards) receive as the usual topics.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from poise.core import derived, topics, wire
from poise.core.influx import DERIVED_RP, InfluxError, InfluxV1
from poise.jetstream import layout
from poise.jetstream.partitions import Publish
from poise.worker.core import Job, Output, WorkerCore, WorkerParams
from poise.worker.service import ServiceParams, point_text, run_job, sway_baseline

log = logging.getLogger("poise.worker.nats")


def _subject(topic: str) -> str:
    return topic.replace("/", ".")


class WorkerEngine:
    def __init__(
        self,
        influx: InfluxV1,
        publish: Publish,
        jobs: ThreadPoolExecutor,
        params: WorkerParams | None = None,
        service: ServiceParams | None = None,
    ) -> None:
        self.influx = influx
        self.publish = publish
        self.sp = service or ServiceParams()
        self.core = WorkerCore(params, baseline=self._baseline)
        self._jobs = jobs
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._messages: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.summaries = 0
        self._closing = False

    def close(self) -> None:
        """The partition moved on (or the worker stops): write nothing more; summaries not
        written stay pending in the checkpoint, for the next owner."""
        self._closing = True

    def closed(self) -> bool:
        return self._closing

    # --- the partition's messages ---
    def handle(self, routed: layout.Routed, payload: bytes) -> None:
        parts = routed.topic.split("/")
        with self._lock:
            if routed.kind == "raw":
                key = topics.parse_raw(routed.topic)
                try:
                    frame = wire.decode(payload)
                except wire.WireError as exc:
                    self.core.refused[f"frame_{exc.reason}"] += 1
                    return
                if frame.sensor_id != key.sensor:
                    self.core.refused["frame_sensor_mismatch"] += 1
                    return
                out = self.core.on_frame(key.site, key.patient, frame)
            else:
                out = self.core.on_event(parts[3], parts[4], payload)
            self._take(out)
        for job in out.jobs:
            self._submit(job)

    def on_status(self, site: str, sensor: str, payload: bytes) -> None:
        with self._lock:
            self._take(self.core.on_status(site, sensor, payload))

    def _take(self, out: Output) -> None:
        for site, patient, p in out.points:
            self._lines.append(point_text(site, patient, p))
            self._messages.setdefault((site, patient), []).append(p.as_message())
        for site, patient, p in out.alerts:
            self._lines.append(point_text(site, patient, p))
            self._send(topics.alerts(site, patient), [p.as_message()])

    # --- outputs ---
    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            messages, self._messages = self._messages, {}
        if lines:
            self._write(lines)
        for (site, patient), pts in messages.items():
            for i in range(0, len(pts), 500):
                self._send(topics.metrics(site, patient), pts[i : i + 500])

    def _send(self, topic: str, points: list[dict[str, Any]]) -> None:
        self.publish(_subject(topic), derived.message(points))

    def _write(self, lines: list[str]) -> None:
        try:
            self.influx.write(lines, rp=DERIVED_RP)
        except InfluxError as exc:
            # the checkpoint is not written past this: the partition's reader stops, its
            # lease lapses and the work is done again from the last checkpoint
            raise RuntimeError(f"InfluxDB did not take derived points: {exc}") from exc

    # --- summaries from the stored raw samples, off the stream's path ---
    def _submit(self, job: Job) -> None:
        self._jobs.submit(self._run_job, job)

    def _run_job(self, job: Job) -> None:
        if self.closed():
            return
        try:
            points, alerts = run_job(self.influx, job, self.sp)
            if self.closed():
                # the partition moved to another worker meanwhile: the summary is its to
                # write (from the checkpoint), and two writers could disagree
                return
        except Exception as exc:
            if self.closed():
                log.info("stopping: the %s summary stays pending for the next owner", job.kind)
                return
            log.exception("a %s summary failed; it stays pending in the checkpoint (%s)",
                          job.kind, exc)
            return
        self.influx.write([point_text(job.site, job.patient, p) for p in points + alerts],
                          rp=DERIVED_RP)
        self._send(topics.metrics(job.site, job.patient), [p.as_message() for p in points])
        if alerts:
            self._send(topics.alerts(job.site, job.patient), [p.as_message() for p in alerts])
        with self._lock:
            self.core.job_done(job)
            self.summaries += 1

    def _baseline(self, site: str, patient: str, exercise: str, condition: str,
                  before_ns: int) -> tuple[float, float] | None:
        return sway_baseline(self.influx, site, patient, exercise, condition, before_ns,
                             self.core.p)

    # --- checkpoints ---
    def get_state(self) -> dict[str, Any]:
        with self._lock:
            return self.core.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.core.set_state(state)
            jobs = self.core.jobs()
        for job in jobs:
            self._submit(job)


def run_worker(url: str, member: str, influx: InfluxV1, *, user: str | None,
               password: str | None, params: WorkerParams | None = None,
               owner_params: Any = None, job_threads: int = 1) -> dict[str, Any]:
    """``poise worker --nats URL``: own partitions until SIGINT/SIGTERM."""
    from poise.jetstream.partitions import OwnerParams, PartitionOwner, run_forever

    del job_threads
    engines: list[WorkerEngine] = []
    pools: list[ThreadPoolExecutor] = []

    def make(k: int, publish: Publish) -> WorkerEngine:
        # one summary thread per partition: a session's summary counts its trials'
        # summaries, so a partition's jobs run in the order they were made
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"poise-worker-p{k}")
        pools.append(pool)
        engine = WorkerEngine(influx, publish, pool, params)
        engines.append(engine)
        return engine

    owner = PartitionOwner(url, member, make, user=user, password=password,
                           params=owner_params or OwnerParams())
    try:
        stats = run_forever(owner)
    finally:
        for engine in engines:
            engine.close()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
    stats["summaries"] = sum(e.summaries for e in engines)
    return stats
