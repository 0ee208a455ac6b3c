"""``poise worker``: the shell around WorkerCore. MQTT in (raw frames, session events, gateway
status; QoS 1, persistent MQTT v5 session), InfluxDB and MQTT out.

Durability: an event is acknowledged to the broker only after the worker's state (which it
changes) is written to the state file, so an event is never lost nor applied twice. A frame
is acknowledged once processed; its live points are idempotent (deterministic tags and
timestamps), so a frame seen again rewrites the same points. Trial and session summaries are
jobs run on the raw samples in InfluxDB, kept in the state until done: a worker killed
mid-trial and restarted (with the same state file) writes the same summaries.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from poise.core import derived, topics, wire
from poise.core import prescription as rx
from poise.core.ids import check_id
from poise.core.influx import DERIVED_RP, InfluxError, InfluxV1, point_line
from poise.core.tls import configure_mqtt
from poise.worker import rawdata
from poise.worker.core import Job, Output, WorkerCore, WorkerParams
from poise.worker.trials import (
    KIND_VERSIONS,
    Placement,
    Point,
    SessionInfo,
    TrialInfo,
    summarize_session,
    summarize_trial,
    trial_sensors,
)

log = logging.getLogger("poise.worker")
SESSION_ALL = f"{topics.PREFIX}/session/+/+"
STATUS_ALL = f"{topics.PREFIX}/status/+/+"


@dataclass(frozen=True)
class ServiceParams:
    client_id: str = "poise-worker"
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 2000  # unacknowledged messages in hand: bounds memory when behind
    flush_s: float = 0.2  # live points are written at least this often
    write_queue: int = 50  # batches of live points waiting for InfluxDB
    wait_stored_s: float = 90.0  # how long a summary waits for the ingest to catch up
    settle_s: float = 3.0


@dataclass
class ServiceStats:
    messages: Counter[str] = field(default_factory=Counter)
    points_written: int = 0
    alerts: int = 0
    summaries: int = 0
    write_retries: int = 0


def point_text(site: str, patient: str, p: Point) -> str:
    tags = {"site": site, "patient": patient, **p.tags}
    return point_line(p.measurement, tags, p.typed_fields(), p.t_ns)


class WorkerService:
    def __init__(
        self,
        mqtt_host: str,
        mqtt_port: int,
        influx: InfluxV1,
        state_path: Path,
        *,
        params: WorkerParams | None = None,
        service: ServiceParams | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        self.sp = service or ServiceParams()
        self.influx = influx
        self.state_path = state_path
        self.core = WorkerCore(params, baseline=self._baseline)
        self.stats = ServiceStats()
        self.lock = threading.Lock()  # core and the pending writes
        self._host, self._port = mqtt_host, mqtt_port
        # (connection epoch, message, monotonic time of receipt)
        self._inbox: queue.Queue[tuple[int, mqtt.MQTTMessage, float]] = queue.Queue()
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._stop = threading.Event()
        self._epoch = 0
        self._lines: list[str] = []  # live points, written by the writer thread
        self._alert_lines: list[str] = []  # alert points, written before the state is saved
        # live points wait here for the writer; bounded, so a slow InfluxDB slows intake
        # (the broker holds the rest) instead of filling memory
        self._wq: queue.Queue[tuple[list[str], list[tuple[str, bytes]]] | None] = queue.Queue(
            maxsize=self.sp.write_queue
        )
        self._writer_influx = InfluxV1(influx.url, influx.database, influx.auth)
        self._messages: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._last_flush = time.monotonic()
        self.subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.sp.client_id,
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
        self._writer = threading.Thread(target=self._write_loop, name="poise-worker-writer")
        self._threads = [
            threading.Thread(target=self._loop, name="poise-worker", daemon=True),
            threading.Thread(target=self._job_loop, name="poise-worker-jobs", daemon=True),
        ]
        self.last_summaries: list[tuple[Job, list[Point], list[Point]]] = []

    # --- state ---
    def load_state(self) -> bool:
        if not self.state_path.exists():
            return False
        try:
            state = json.loads(self.state_path.read_text())
            self.core.set_state(state)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"{self.state_path}: not a worker state file: {exc}") from None
        for job in self.core.jobs():
            self._jobs.put(job)
        log.info(
            "resumed: %d open sessions, %d pending summaries",
            len(self.core.sessions),
            len(self.core.pending_jobs),
        )
        return True

    def save_state(self) -> None:
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.core.get_state(), fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    # --- paho callbacks ---
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("broker refused the connection: %s", rc)
            return
        self._epoch += 1
        log.info("connected to the broker (session present: %s)", flags.session_present)
        client.subscribe([(topics.RAW_ALL, 1), (SESSION_ALL, 1), (STATUS_ALL, 1)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, p: Any) -> None:
        if any(rc.is_failure for rc in rcs):
            log.error("the broker refused a subscription: %s", rcs)
            return
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, p: Any
    ) -> None:
        self._epoch += 1
        if not self._stop.is_set():
            log.warning("lost the broker (%s)", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((self._epoch, msg, time.monotonic()))

    # --- lifecycle ---
    def start(self) -> None:
        self.load_state()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.sp.session_expiry_s
        props.ReceiveMaximum = self.sp.receive_maximum
        self._client.connect_async(
            self._host, self._port, keepalive=15, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._writer.start()
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        with self.lock:
            self._flush()
        self._wq.put(None)
        self._writer.join(timeout_s)
        self._writer_influx.close()
        self._client.disconnect()
        self._client.loop_stop()

    def idle(self) -> bool:
        return (
            self._inbox.empty()
            and self._jobs.empty()
            and self._wq.empty()
            and not self.core.pending_jobs
        )

    # --- the message loop ---
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                epoch, msg, received_s = self._inbox.get(timeout=self.sp.flush_s)
            except queue.Empty:
                with self.lock:
                    self._tick()
                    self._flush()
                continue
            try:
                self._handle(epoch, msg, received_s)
            except Exception:
                # never a crash: count it, acknowledge so it cannot block the stream
                log.exception("failed on a message on %s", msg.topic)
                self.stats.messages["failed"] += 1
                self._ack(epoch, msg)
            if time.monotonic() - self._last_flush >= self.sp.flush_s:
                with self.lock:
                    # silence by the clock only once caught up: a frame still waiting in
                    # the inbox has arrived, it is just not processed yet
                    if self._inbox.empty():
                        self._tick()
                    self._flush()

    def _handle(self, epoch: int, msg: mqtt.MQTTMessage, received_s: float) -> None:
        parts = msg.topic.split("/")
        kind = parts[2] if len(parts) > 2 else ""
        payload = bytes(msg.payload)
        durable = False
        with self.lock:
            if kind == "raw":
                try:
                    key = topics.parse_raw(msg.topic)
                    frame = wire.decode(payload)
                    if frame.sensor_id != key.sensor:
                        raise wire.WireError("sensor_mismatch", "payload and topic disagree")
                except (topics.TopicError, wire.WireError) as exc:
                    reason = getattr(exc, "reason", "bad_topic")
                    self.core.refused[f"frame_{reason}"] += 1
                    self._ack(epoch, msg)
                    return
                self.stats.messages["frames"] += 1
                out = self.core.on_frame(key.site, key.patient, frame, received_s)
            elif kind == "session" and len(parts) == 5:
                self.stats.messages["events"] += 1
                out = self.core.on_event(parts[3], parts[4], payload)
                durable = True
            elif kind == "status" and len(parts) == 5:
                self.stats.messages["status"] += 1
                out = self.core.on_status(parts[3], parts[4], payload, time.monotonic())
            else:
                self.core.refused["bad_topic"] += 1
                self._ack(epoch, msg)
                return
            self._take(out)
            if durable or out.alerts or out.jobs:
                self._flush()
                self.save_state()
        for job in out.jobs:
            self._jobs.put(job)
        self._ack(epoch, msg)

    def _tick(self) -> None:
        out = self.core.tick(time.monotonic())
        if out.alerts:
            self._take(out)
            self._flush()
            self.save_state()

    def _ack(self, epoch: int, msg: mqtt.MQTTMessage) -> None:
        # an ack is only valid on the connection the message came on; otherwise the broker
        # redelivers it, and processing it again is harmless (ids, sequence numbers)
        if msg.qos > 0 and epoch == self._epoch:
            self._client.ack(msg.mid, msg.qos)

    def _take(self, out: Output) -> None:
        for site, patient, p in out.points:
            self._lines.append(point_text(site, patient, p))
            self._messages.setdefault((site, patient), []).append(p.as_message())
        for site, patient, p in out.alerts:
            self._alert_lines.append(point_text(site, patient, p))
            self.stats.alerts += 1
            self._publish(topics.alerts(site, patient), [p.as_message()], qos=1)

    def _publish(self, topic: str, points: list[dict[str, Any]], qos: int) -> None:
        self._client.publish(topic, derived.message(points), qos=qos)

    def _flush(self) -> None:
        """Alerts now (the state that records them is saved next); live points to the
        writer, which publishes them once InfluxDB holds them."""
        self._last_flush = time.monotonic()
        if self._alert_lines:
            self._write(self._alert_lines)
            self.stats.points_written += len(self._alert_lines)
            self._alert_lines = []
        if not self._lines and not self._messages:
            return
        msgs = [
            (topics.metrics(site, patient), derived.message(pts[i : i + 500]))
            for (site, patient), pts in self._messages.items()
            for i in range(0, len(pts), 500)
        ]
        self._wq.put((self._lines, msgs))
        self._lines, self._messages = [], {}

    def _write_loop(self) -> None:
        while True:
            item = self._wq.get()
            done = item is None
            batches = [] if item is None else [item]
            # what queued up while the last write ran goes out in one request
            while not done:
                try:
                    more = self._wq.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                else:
                    batches.append(more)
            lines = [line for b in batches for line in b[0]]
            if lines:
                self._write(lines, self._writer_influx)
                self.stats.points_written += len(lines)
            for _lines, msgs in batches:
                for topic, payload in msgs:
                    self._client.publish(topic, payload, qos=0)
            if done:
                return

    def _write(self, lines: list[str], influx: InfluxV1 | None = None) -> None:
        delay = 0.2
        while True:
            try:
                (influx or self.influx).write(lines, rp=DERIVED_RP)
                return
            except InfluxError as exc:
                if not exc.retryable:
                    log.error("InfluxDB refused derived points: %s", exc)
                    self.core.refused["influx_refused"] += 1
                    return
                if self._stop.is_set():
                    return
                self.stats.write_retries += 1
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- summaries ---
    def _job_loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                points, alerts = run_job(self.influx, job, self.sp)
            except Exception:
                log.exception("a %s summary failed; it stays pending", job.kind)
                self.stats.messages["job_failed"] += 1
                time.sleep(1.0)
                self._jobs.put(job)
                continue
            with self.lock:
                self._write([point_text(job.site, job.patient, p) for p in points + alerts])
                self.stats.summaries += 1
                self.stats.alerts += len(alerts)
                self._publish(
                    topics.metrics(job.site, job.patient), [p.as_message() for p in points], 1
                )
                if alerts:
                    self._publish(
                        topics.alerts(job.site, job.patient), [p.as_message() for p in alerts], 1
                    )
                self.core.job_done(job)
                self.save_state()
            self.last_summaries.append((job, points, alerts))

    def _baseline(
        self, site: str, patient: str, exercise: str, condition: str, before_ns: int
    ) -> tuple[float, float] | None:
        return sway_baseline(
            self.influx, site, patient, exercise, condition, before_ns, self.core.p
        )


def sway_baseline(
    influx: InfluxV1,
    site: str,
    patient: str,
    exercise: str,
    condition: str,
    before_ns: int,
    p: WorkerParams,
) -> tuple[float, float] | None:
    """The patient's own baseline RMS in this exercise and condition: the median of the first
    three earlier trials; MDC95 = 1.96 * sqrt(2) * SD * sqrt(1 - ICC) from them when there are
    three, else the configured default (docs/metrics.md, progress)."""
    cond = condition.replace("'", "")
    try:
        series = influx.query(
            f'SELECT "rms_m_s2" FROM "{DERIVED_RP}"."trial_summary" WHERE '
            f"site='{check_id('site', site)}' AND patient='{check_id('patient', patient)}' "
            f"AND exercise='{exercise}' AND condition='{cond}' AND time < {int(before_ns)} "
            "ORDER BY time ASC LIMIT 3"
        )
    except InfluxError as exc:
        log.warning("no sway baseline (%s)", exc)
        return None
    values = [float(r[1]) for s in series for r in s.get("values", []) if r[1] is not None]
    if not values:
        return None
    base = statistics.median(values)
    if len(values) >= 3:
        sem = statistics.stdev(values) * (1 - p.baseline_icc) ** 0.5
        return base, max(1.96 * 2**0.5 * sem, 1e-3)
    return base, p.default_mdc_rms_m_s2


def _stored_alert_kinds(influx: InfluxV1, site: str, patient: str, trial: str) -> set[str]:
    """Kinds of the alerts already stored for one trial."""
    try:
        series = influx.query(
            f'SELECT "active" FROM "{DERIVED_RP}"."alert" WHERE '
            f"site='{check_id('site', site)}' AND patient='{check_id('patient', patient)}' "
            f"AND trial='{check_id('trial', trial)}' GROUP BY kind"
        )
    except InfluxError as exc:
        log.warning("could not look up the trial's alerts (%s)", exc)
        return set()
    return {str(s.get("tags", {}).get("kind")) for s in series if s.get("values")}


def run_job(
    influx: InfluxV1, job: Job, sp: ServiceParams | None = None
) -> tuple[list[Point], list[Point]]:
    """Summarise a stopped trial or session from the raw samples (waiting for the ingest)."""
    sp = sp or ServiceParams()
    d = job.payload
    if job.kind == "trial":
        info = TrialInfo(**d["info"])
        places = [Placement(**p) for p in d["placements"]]
        roles = trial_sensors(info, places)
        seen = {
            sensor: (info.start_ns, info.stop_ns, int(n))
            for sensor, n in d.get("seen_samples", {}).items()
        }
        complete = rawdata.wait_stored(
            influx,
            job.site,
            job.patient,
            list(roles.values()),
            info.stop_ns,
            timeout_s=sp.wait_stored_s,
            settle_s=sp.settle_s,
            seen=seen,
        )
        if not complete and seen:
            log.warning(
                "trial %s: InfluxDB still lacks samples the worker saw; summarised from what "
                "is stored and flagged incomplete_data",
                info.trial,
            )
        data = {
            role: rawdata.read_samples(
                influx, job.site, job.patient, sensor, info.start_ns, info.stop_ns
            )
            for role, sensor in roles.items()
        }
        presc = None if d["prescription"] is None else rx.from_dict(d["prescription"])
        summary, reps, alerts = summarize_trial(info, data, places, presc, d["ap_axis"])
        if not complete and seen:
            flags = [f for f in str(summary.fields.get("flags", "")).split(",") if f]
            summary.fields["flags"] = ",".join([*flags, "incomplete_data"])
        # an alert the live path raised already (an episode of its own) is not raised twice:
        # neither those the trial's state names, nor any already stored for this trial (the
        # live one may have come after the stop event, or before a restart)
        raised = set(d.get("live_alerts", [])) | _stored_alert_kinds(
            influx, job.site, job.patient, info.trial
        )
        return [summary, *reps], [a for a in alerts if a.tags["kind"] not in raised]
    # a session: its trials' summaries are in InfluxDB already (jobs run in order)
    series = influx.query(
        f'SELECT "rep_count","kind" FROM "{DERIVED_RP}"."trial_summary" WHERE '
        f"site='{check_id('site', job.site)}' AND patient='{check_id('patient', job.patient)}' "
        f"AND session='{check_id('session', d['session'])}' "
        "GROUP BY exercise, side, trial, algorithm_version"
    )
    by_trial: dict[str, dict[str, Any]] = {}
    for s in series:
        tags = s.get("tags", {})
        for row in s.get("values", []):
            t = {"exercise": tags.get("exercise"), "side": tags.get("side"), "rep_count": row[1]}
            # one per trial: the current algorithm version's when there are several
            current = KIND_VERSIONS.get(str(row[2])) == tags.get("algorithm_version")
            if tags.get("trial") not in by_trial or current:
                by_trial[str(tags.get("trial"))] = t
    trials = list(by_trial.values())
    samples = None
    if d["intensity_sensor"]:
        rawdata.wait_stored(
            influx,
            job.site,
            job.patient,
            [d["intensity_sensor"]],
            d["stop_ns"],
            timeout_s=sp.wait_stored_s,
            settle_s=sp.settle_s,
            # the samples the worker saw: a stretch a restarted ingest still owes is waited for
            seen={d["intensity_sensor"]: (d["start_ns"], d["stop_ns"], int(n))}
            if (n := d.get("intensity_seen", 0))
            else None,
        )
        samples = rawdata.read_samples(
            influx, job.site, job.patient, d["intensity_sensor"], d["start_ns"], d["stop_ns"]
        )
    sinfo = SessionInfo(
        d["session"],
        d["start_ns"],
        d["stop_ns"],
        None if d["prescription"] is None else rx.from_dict(d["prescription"]),
        list(d["pain"]),
        list(d["fatigue"]),
    )
    point = summarize_session(sinfo, trials, samples, d["intensity_cut"], d["intensity_sensor"])
    return [point], []
