"""The worker's state machine, without I/O: session events and decoded frames in, derived
points, alerts and summary jobs out. The service (poise.worker.service) wires it to MQTT and
InfluxDB; tests drive it directly.

Per patient it keeps the open session (placement, prescription, pain and fatigue, the trials
done) and the open trial with its live scores: sway over a sliding window on the lower-back
sensor during balance trials, the joint angle of the placement's segment pair during ROM
exercises, and session intensity per 5 s epoch. Summaries are not computed here from the
live state: a trial or session that stops becomes a *job* that the service runs on the raw
samples stored in InfluxDB (poise.worker.trials), so they do not depend on what this process
saw before a restart.

``get_state``/``set_state`` hold everything needed to resume (sessions, open trials, open
alert episodes, pending jobs, event ids seen, the last sample of each sensor) as plain JSON
data. Live windows are not part of it: they fill again from the next frames.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analysis import intensity, joint, sway
from poise.core import events as ev
from poise.core import prescription as rx
from poise.core import wire
from poise.core.clinical import ROM_JOINTS, condition_tag, exercise_kind
from poise.core.derived import SWAY_METRIC_FIELDS
from poise.core.ids import is_id
from poise.worker.trials import (
    KIND_VERSIONS,
    Placement,
    Point,
    Samples,
    TrialInfo,
    align,
    intensity_sensor,
    trial_sensors,
)

log = logging.getLogger("poise.worker")
WORKER_VERSION = "worker-1.0"
MAX_SEEN_EVENTS = 10_000


@dataclass(frozen=True)
class WorkerParams:
    ap_axis: str = "-z"  # lower-back sensor axis that points forward (docs/metrics.md)
    sway_window_s: float = 10.0
    sway_hop_s: float = 1.0
    joint_live_hz: float = 10.0  # joint_live points per second
    sway_trace_hz: float = 10.0  # sway_trace points per second
    silent_after_s: float = 5.0  # a placed sensor with no sample for this long is silent
    battery_low_pct: float = 15.0
    ring_s: float = 5.0
    lob_max_s: float = 120.0  # a balance trial's samples kept for the live step detection  # recent samples kept per sensor (a trial start seeds from them)
    default_mdc_rms_m_s2: float = 0.03  # sway RMS MDC when the baseline has < 3 trials
    baseline_icc: float = 0.86  # test-retest ICC for the MDC from the patient's baseline


# (baseline RMS m/s², MDC m/s²) of a patient's sway in an exercise and condition, or None
BaselineLookup = Callable[[str, str, str, str, int], tuple[float, float] | None]


@dataclass
class Job:
    """Work for the service: summarise a stopped trial or session from stored samples."""

    kind: str  # "trial" or "session"
    site: str
    patient: str
    payload: dict[str, Any]


@dataclass
class Output:
    points: list[tuple[str, str, Point]] = field(default_factory=list)  # (site, patient, p)
    alerts: list[tuple[str, str, Point]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


@dataclass
class _Live:
    """Live scores of the open trial (rebuilt empty after a restart)."""

    sway: sway.LiveSway | None = None
    sway_fs: float = 0.0
    angle: joint.JointAngle | joint.SegmentInclination | None = None
    reps: joint.RepCounter | None = None
    pending: dict[str, list[Samples]] = field(default_factory=dict)  # role -> chunks to align
    next_angle_t: float = 0.0
    lob_checked_s: float = 0.0
    trunk: list[Samples] = field(default_factory=list)  # the balance trial's samples so far


@dataclass
class _Trial:
    info: dict[str, Any]  # TrialInfo fields, stop_ns 0 while open
    roles: dict[str, str]  # role -> sensor
    baseline: tuple[float, float] | None = None
    prescription: dict[str, Any] | None = None
    live_alerts: list[str] = field(default_factory=list)  # raised live: not again at the stop
    live: _Live = field(default_factory=_Live)
    # samples of the trial's window seen per sensor: the summary waits until InfluxDB holds
    # at least these (an ingest that restarted may still owe a stretch in the middle)
    seen: dict[str, int] = field(default_factory=dict)


@dataclass
class _Session:
    id: str
    start_ns: int
    placements: list[Placement]
    prescription: dict[str, Any] | None
    pain: list[float] = field(default_factory=list)
    fatigue: list[float] = field(default_factory=list)
    trial: _Trial | None = None
    intensity: intensity.LiveIntensity | None = None
    intensity_sensor: str | None = None
    intensity_cut: str = "lumbar"
    intensity_seen: int = 0  # samples of the intensity sensor received since the start

    def rx(self) -> rx.Prescription | None:
        return None if self.prescription is None else rx.from_dict(self.prescription)


@dataclass
class _Sensor:
    last_end_seq: int = -1
    last_ns: int = 0
    arrival_s: float | None = None  # monotonic clock of the last frame (not in the state)
    period_ns: int = 10_000_000
    ring: deque[Samples] = field(default_factory=deque)


class WorkerCore:
    def __init__(
        self, params: WorkerParams | None = None, baseline: BaselineLookup | None = None
    ) -> None:
        self.p = params or WorkerParams()
        self.baseline = baseline
        self.sessions: dict[tuple[str, str], _Session] = {}
        self.sensors: dict[tuple[str, str, str], _Sensor] = {}
        self.episodes: dict[str, dict[str, Any]] = {}  # key -> open alert episode
        # stopped trials whose last samples may still be on their way (frames and events
        # travel apart): their live scores go on until the data passes the stop
        self.closing: dict[tuple[str, str], list[_Trial]] = {}
        self.seen: dict[str, None] = {}  # event ids, oldest first
        self.pending_jobs: list[dict[str, Any]] = []
        self.refused: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    # --- events ---
    def on_event(self, site: str, patient: str, payload: bytes) -> Output:
        out = Output()
        try:
            e = ev.parse_event(payload, site, patient)
        except ev.EventError as exc:
            self._refuse(exc.reason, site, patient, str(exc))
            return out
        if e.id in self.seen:
            self.counts["event_replays"] += 1
            return out
        key = (site, patient)
        s = self.sessions.get(key)
        if e.type == "session_start":
            if s is not None:
                if s.id == e.session:
                    self.counts["event_replays"] += 1
                    return out
                self._refuse("session_open", site, patient, f"session {s.id} is still open")
                return out
            self._start_session(key, e)
        elif s is None or s.id != e.session:
            self._refuse(
                "unknown_session", site, patient, f"no open session {e.session} for this patient"
            )
            return out
        elif e.type == "trial_start":
            if s.trial is not None:
                self._refuse("trial_open", site, patient, f"trial {s.trial.info['trial']} is open")
                return out
            self._start_trial(key, s, e)
        elif e.type == "trial_stop":
            if s.trial is None or s.trial.info["trial"] != e.trial:
                self._refuse("trial_not_started", site, patient, f"trial {e.trial} was not started")
                return out
            self._stop_trial(key, s, e.t_ns, e.aborted, out)
        elif e.type == "note":
            self._scores(key, s, e, out)
        elif e.type == "session_stop":
            self._scores(key, s, e, out)
            if s.trial is not None:
                self._stop_trial(key, s, e.t_ns, True, out)
            self._stop_session(key, s, e.t_ns, out)
        self.seen[e.id] = None
        while len(self.seen) > MAX_SEEN_EVENTS:
            del self.seen[next(iter(self.seen))]
        self.counts[f"event_{e.type}"] += 1
        return out

    def _refuse(self, reason: str, site: str, patient: str, detail: str) -> None:
        self.refused[reason] += 1
        # ids are pseudonymous; the detail names fields and ids, never free text
        log.warning("refused an event for %s/%s: %s (%s)", site, patient, reason, detail)

    def _start_session(self, key: tuple[str, str], e: ev.Event) -> None:
        places = [Placement(p.sensor, p.segment, p.side) for p in e.placement]
        s = _Session(
            e.session,
            e.t_ns,
            places,
            None if e.prescription is None else rx.to_dict(e.prescription),
        )
        pick = intensity_sensor(places)
        if pick is not None:
            s.intensity_sensor, s.intensity_cut = pick
        self.sessions[key] = s

    def _start_trial(self, key: tuple[str, str], s: _Session, e: ev.Event) -> None:
        assert e.trial is not None
        assert e.exercise is not None
        info = TrialInfo(s.id, e.trial, e.exercise, dict(e.condition), e.side, e.t_ns, 0)
        t = _Trial(asdict(info), trial_sensors(info, s.placements), None, s.prescription)
        if info.kind in ("sway", "four_stage") and self.baseline is not None:
            t.baseline = self.baseline(
                key[0], key[1], info.exercise, condition_tag(info.condition), info.start_ns
            )
        s.trial = t
        # seed the live scores with samples already received from the trial's start on
        for role, sensor in t.roles.items():
            st = self.sensors.get((key[0], key[1], sensor))
            if st is None:
                continue
            for chunk in list(st.ring):
                part = chunk.between(e.t_ns / 1e9, np.inf)
                if part.n:
                    t.seen[sensor] = t.seen.get(sensor, 0) + part.n
                    self._live_trial(key, t, role, part, st.period_ns, Output())

    def _stop_trial(
        self, key: tuple[str, str], s: _Session, t_ns: int, aborted: bool, out: Output
    ) -> None:
        assert s.trial is not None
        t = s.trial
        t.info["stop_ns"] = max(t_ns, t.info["start_ns"] + 1)
        t.info["aborted"] = aborted
        self.closing.setdefault(key, []).append(t)
        job = {
            "info": dict(t.info),
            "placements": [asdict(p) for p in s.placements],
            "prescription": s.prescription,
            "ap_axis": self.p.ap_axis,
            "seen_samples": {
                sensor: self._seen_before(key, sensor, n, t.info["start_ns"], t.info["stop_ns"])
                for sensor, n in t.seen.items()
            },
            "live_alerts": list(t.live_alerts),
        }
        self._job(Job("trial", key[0], key[1], job), out)
        s.trial = None

    def _seen_before(
        self, key: tuple[str, str], sensor: str, n: int, start_ns: int, stop_ns: int
    ) -> int:
        """``n`` samples of a sensor seen since ``start_ns``, less those at or after the stop
        (fed while the stop event was still on its way): a lower bound of what InfluxDB must
        hold in the window. Samples that arrive after the stop event are not in it; that only
        makes the wait shorter."""
        lo_s = max(start_ns, stop_ns) / 1e9
        st = self.sensors.get((key[0], key[1], sensor))
        late = sum(c.between(lo_s, np.inf).n for c in st.ring) if st is not None else 0
        return max(0, n - late)

    def _stop_session(self, key: tuple[str, str], s: _Session, t_ns: int, out: Output) -> None:
        for ep_key in [k for k in self.episodes if k.startswith(f"{key[0]}/{key[1]}/")]:
            self._close_episode(ep_key, t_ns, out)
        if s.intensity is not None:
            for r in s.intensity.finish():
                out.points.append((key[0], key[1], self._intensity_point(s, r)))
        job = {
            "session": s.id,
            "start_ns": s.start_ns,
            "stop_ns": max(t_ns, s.start_ns + 1),
            "prescription": s.prescription,
            "pain": list(s.pain),
            "fatigue": list(s.fatigue),
            "intensity_sensor": s.intensity_sensor,
            "intensity_cut": s.intensity_cut,
            # what InfluxDB must hold of the intensity sensor before the summary reads it
            "intensity_seen": 0
            if s.intensity_sensor is None
            else self._seen_before(
                key, s.intensity_sensor, s.intensity_seen, s.start_ns, max(t_ns, s.start_ns + 1)
            ),
        }
        self._job(Job("session", key[0], key[1], job), out)
        del self.sessions[key]

    def _job(self, job: Job, out: Output) -> None:
        self.pending_jobs.append(asdict(job))
        out.jobs.append(job)

    def job_done(self, job: Job) -> None:
        d = asdict(job)
        if d in self.pending_jobs:
            self.pending_jobs.remove(d)

    def _scores(self, key: tuple[str, str], s: _Session, e: ev.Event, out: Output) -> None:
        if e.fatigue_borg is not None:
            s.fatigue.append(e.fatigue_borg)
        if e.pain_0_10 is None:
            return
        s.pain.append(e.pain_0_10)
        limit = None if s.prescription is None else s.prescription.get("pain_limit")
        ep_key = f"{key[0]}/{key[1]}/session/pain_above_limit"
        if limit is not None and e.pain_0_10 > limit and ep_key not in self.episodes:
            self._open_episode(
                ep_key,
                key,
                "pain_above_limit",
                e.t_ns,
                e.pain_0_10,
                float(limit),
                "0-10",
                {"session": s.id, "trial": "none"},
                "",
                {"pain_0_10": e.pain_0_10},
                "session-1.0",
                out,
            )
        elif ep_key in self.episodes and (limit is None or e.pain_0_10 <= limit):
            self._close_episode(ep_key, e.t_ns, out)

    # --- alert episodes ---
    def _open_episode(
        self,
        ep_key: str,
        key: tuple[str, str],
        kind: str,
        onset_ns: int,
        value: float,
        threshold: float,
        unit: str,
        tags: dict[str, str],
        sensor: str,
        evidence: dict[str, Any],
        version: str,
        out: Output,
    ) -> None:
        point = Point(
            "alert",
            onset_ns,
            {**tags, "kind": kind, "algorithm_version": version},
            {
                "active": True,
                "value": float(value),
                "threshold": float(threshold),
                "unit": unit,
                "sensor": sensor,
                "evidence": json.dumps(evidence, separators=(",", ":"), sort_keys=True),
            },
        )
        self.episodes[ep_key] = {"site": key[0], "patient": key[1], "point": asdict(point)}
        out.alerts.append((key[0], key[1], point))

    def _close_episode(self, ep_key: str, end_ns: int, out: Output) -> None:
        ep = self.episodes.pop(ep_key, None)
        if ep is None:
            return
        point = Point(**ep["point"])
        point.fields = {**point.fields, "active": False, "end_ns": int(end_ns)}
        out.alerts.append((ep["site"], ep["patient"], point))

    # --- frames ---
    def on_frame(
        self, site: str, patient: str, frame: wire.Frame, arrival_s: float | None = None
    ) -> Output:
        """One frame. ``arrival_s`` (a monotonic clock) lets ``tick`` notice sensors that
        stopped sending while no other sensor of the patient sends either."""
        out = Output()
        key = (site, patient)
        skey = (site, patient, frame.sensor_id)
        st = self.sensors.setdefault(skey, _Sensor())
        n = frame.n_samples
        skip = max(0, st.last_end_seq - frame.first_sample_seq)
        if skip >= n:
            self.counts["duplicate_frames"] += 1
            return out
        try:
            idx = [frame.channels.index(c) for c in wire.IMU6]
        except ValueError:
            self.counts["frames_without_imu6"] += 1
            return out
        data = frame.data[skip:, idx].astype(np.float64)
        t_ns = frame.times_ns()[skip:]
        samples = Samples(t_ns / 1e9, data[:, :3], data[:, 3:])
        st.last_end_seq = frame.first_sample_seq + n
        st.last_ns = int(t_ns[-1])
        st.arrival_s = arrival_s
        st.period_ns = frame.period_ns
        st.ring.append(samples)
        while st.ring and st.ring[0].time_s[-1] < samples.time_s[-1] - self.p.ring_s:
            st.ring.popleft()
        self.counts["samples"] += samples.n
        if key in self.closing:
            self._feed_closing(key, frame, samples, out)
        # a sensor that streams again ends its silence
        self._close_episode(
            f"{site}/{patient}/sensor/{frame.sensor_id}/sensor_silent", st.last_ns, out
        )
        s = self.sessions.get(key)
        if s is None:
            return out
        if s.intensity_sensor == frame.sensor_id:
            live = samples.between(s.start_ns / 1e9, np.inf)
            s.intensity_seen += live.n
            if live.n:
                if s.intensity is None:
                    s.intensity = intensity.LiveIntensity(
                        frame.period_ns / 1e9, intensity.IntensityParams(s.intensity_cut)
                    )
                for r in s.intensity.feed(live.time_s, live.acc):
                    out.points.append(
                        (site, patient, self._intensity_point(s, s.intensity.record(r)))
                    )
        if s.trial is not None:
            self._feed_trial(key, s.trial, frame, samples, np.inf, out)
        self._check_silent(key, s, st.last_ns, out)
        return out

    def _feed_trial(
        self,
        key: tuple[str, str],
        t: _Trial,
        frame: wire.Frame,
        samples: Samples,
        stop_s: float,
        out: Output,
    ) -> None:
        for role, sensor in t.roles.items():
            if sensor == frame.sensor_id:
                part = samples.between(t.info["start_ns"] / 1e9, stop_s)
                if part.n:
                    t.seen[sensor] = t.seen.get(sensor, 0) + part.n
                    self._live_trial(key, t, role, part, frame.period_ns, out)

    def _feed_closing(
        self, key: tuple[str, str], frame: wire.Frame, samples: Samples, out: Output
    ) -> None:
        still = []
        for t in self.closing.get(key, []):
            stop_ns = t.info["stop_ns"]
            self._feed_trial(key, t, frame, samples, stop_ns / 1e9, out)
            lasts = [
                self.sensors[(key[0], key[1], s)].last_ns
                for s in t.roles.values()
                if (key[0], key[1], s) in self.sensors
            ]
            newest = max(v.last_ns for k, v in self.sensors.items() if k[:2] == key)
            if (lasts and min(lasts) >= stop_ns) or newest > stop_ns + self.p.silent_after_s * 1e9:
                prefix = f"{key[0]}/{key[1]}/trial/{t.info['trial']}/"
                for ep_key in [k for k in self.episodes if k.startswith(prefix)]:
                    self._close_episode(ep_key, stop_ns, out)
            else:
                still.append(t)
        if still:
            self.closing[key] = still
        else:
            self.closing.pop(key, None)

    def _intensity_point(self, s: _Session, r: Any) -> Point:
        return Point(
            "intensity_live",
            round(r.t_s * 1e9),
            {
                "session": s.id,
                "placement": s.intensity_cut,
                "algorithm_version": r.algorithm_version,
            },
            dict(r.fields),
        )

    def tick(self, now_s: float, margin_s: float = 2.0) -> Output:
        """Sensors of an open session from which no frame has arrived for ``silent_after_s``
        (+ ``margin_s`` for the way through the broker) of the monotonic clock ``now_s``: the
        case the data-time check cannot see, when the whole gateway has gone quiet."""
        out = Output()
        for key, s in self.sessions.items():
            for p in s.placements:
                st = self.sensors.get((key[0], key[1], p.sensor))
                if st is None or st.arrival_s is None:
                    continue
                quiet_s = now_s - st.arrival_s
                ep_key = f"{key[0]}/{key[1]}/sensor/{p.sensor}/sensor_silent"
                if quiet_s > self.p.silent_after_s + margin_s and ep_key not in self.episodes:
                    self._open_episode(
                        ep_key,
                        key,
                        "sensor_silent",
                        st.last_ns,
                        quiet_s,
                        self.p.silent_after_s,
                        "s",
                        {"session": s.id, "trial": "none"},
                        p.sensor,
                        {"segment": p.segment, "last_sample_ns": st.last_ns},
                        WORKER_VERSION,
                        out,
                    )
        return out

    def _check_silent(self, key: tuple[str, str], s: _Session, now_ns: int, out: Output) -> None:
        for p in s.placements:
            other = self.sensors.get((key[0], key[1], p.sensor))
            last = other.last_ns if other is not None and other.last_ns else s.start_ns
            last = max(last, s.start_ns)
            ep_key = f"{key[0]}/{key[1]}/sensor/{p.sensor}/sensor_silent"
            silent_s = (now_ns - last) / 1e9
            if silent_s > self.p.silent_after_s and ep_key not in self.episodes:
                self._open_episode(
                    ep_key,
                    key,
                    "sensor_silent",
                    last,
                    silent_s,
                    self.p.silent_after_s,
                    "s",
                    {"session": s.id, "trial": "none"},
                    p.sensor,
                    {"segment": p.segment, "last_sample_ns": last},
                    WORKER_VERSION,
                    out,
                )

    def _live_trial(
        self,
        key: tuple[str, str],
        t: _Trial,
        role: str,
        part: Samples,
        period_ns: int,
        out: Output,
    ) -> None:
        info = t.info
        kind = exercise_kind(info["exercise"])
        tags = TrialInfo(**info).tags()
        live = t.live
        if role == "trunk" and kind in ("sway", "four_stage"):
            if live.sway is None:
                live.sway_fs = 1e9 / period_ns
                live.sway = sway.LiveSway(
                    live.sway_fs,
                    sway.SwayParams(ap_axis=self.p.ap_axis),
                    self.p.sway_window_s,
                    self.p.sway_hop_s,
                )
            try:
                windows = live.sway.update(part.time_s, part.acc, part.gyr)
            except ValueError:
                self.counts["sway_unscorable"] += 1
                return
            live.trunk.append(part)
            if part.time_s[-1] - live.lob_checked_s >= 1.0:  # once a second of data
                live.lob_checked_s = float(part.time_s[-1])
                self._live_balance(key, t, out)
            for t_s, metrics in windows:
                fields: dict[str, Any] = {SWAY_METRIC_FIELDS[k]: v for k, v in metrics.items()}
                fields["window_s"] = self.p.sway_window_s
                if t.baseline is not None:
                    fields["baseline_rms_m_s2"], fields["mdc_rms_m_s2"] = t.baseline
                t_ns = round(t_s * 1e9)
                out.points.append((key[0], key[1], Point("sway_live", t_ns, tags, fields)))
                self._sway_alert(key, t, t_ns, metrics["rms"], out)
                self._sway_trace(key, t, t_s, tags, out)
        elif role in ("proximal", "distal", "segment") and kind == "rom":
            self._live_joint(key, t, role, part, out)

    def _sway_trace(
        self, key: tuple[str, str], t: _Trial, t_end_s: float, tags: dict[str, str], out: Output
    ) -> None:
        """The filtered AP and ML trunk acceleration of the window's last hop, at 10 Hz (the
        first sample of each 100 ms of the time axis): the trace the console draws."""
        live = t.live
        data = _cat(live.trunk)
        fs = live.sway_fs
        win = data.between(t_end_s - self.p.sway_window_s + 0.5 / fs, t_end_s + 0.5 / fs)
        if win.n < 40:
            return
        try:
            a_ap, a_ml = sway.preprocess(win.acc, fs, sway.SwayParams(ap_axis=self.p.ap_axis))
        except ValueError:
            return
        bins = np.floor(win.time_s * self.p.sway_trace_hz + 1e-6)
        first = np.flatnonzero(np.diff(bins, prepend=bins[0] - 1) > 0)
        recent = first[win.time_s[first] > t_end_s - self.p.sway_hop_s + 0.5 / fs]
        for i in recent.tolist():
            out.points.append(
                (
                    key[0],
                    key[1],
                    Point(
                        "sway_trace",
                        round(float(win.time_s[i]) * 1e9),
                        tags,
                        {"ap_m_s2": float(a_ap[i]), "ml_m_s2": float(a_ml[i])},
                    ),
                )
            )

    def _live_balance(self, key: tuple[str, str], t: _Trial, out: Output) -> None:
        """A step or grab in the balance trial so far (analysis.sway.loss_of_balance), looked
        for once a second; the first one raises the trial's loss_of_balance alert now, and
        its summary later raises none of its own."""
        ep_key = f"{key[0]}/{key[1]}/trial/{t.info['trial']}/loss_of_balance"
        if "loss_of_balance" in t.live_alerts:
            return
        live = t.live
        data = _cat(live.trunk)
        cap = round(self.p.lob_max_s * live.sway_fs)
        if data.n > cap:
            data = Samples(data.time_s[-cap:], data.acc[-cap:], data.gyr[-cap:])
        live.trunk = [data]
        if data.n < 200:
            return
        try:
            lob = sway.loss_of_balance(data.time_s, data.acc, data.gyr, self.p.ap_axis)
        except ValueError:
            return
        if lob is None:
            return
        t.live_alerts.append("loss_of_balance")
        at_s = lob - t.info["start_ns"] / 1e9
        self._open_episode(
            ep_key,
            key,
            "loss_of_balance",
            round(lob * 1e9),
            at_s,
            0.0,
            "s",
            {"session": t.info["session"], "trial": t.info["trial"]},
            t.roles.get("trunk", ""),
            {"at_s": round(at_s, 3), "live": True},
            sway.ALGORITHM_VERSION,
            out,
        )

    def _sway_alert(
        self, key: tuple[str, str], t: _Trial, t_ns: int, rms: float, out: Output
    ) -> None:
        if t.baseline is None:
            return
        base, mdc = t.baseline
        ep_key = f"{key[0]}/{key[1]}/trial/{t.info['trial']}/sway_above_baseline"
        if rms > base + mdc and ep_key not in self.episodes:
            self._open_episode(
                ep_key,
                key,
                "sway_above_baseline",
                t_ns,
                rms,
                base + mdc,
                "m/s²",
                {"session": t.info["session"], "trial": t.info["trial"]},
                t.roles.get("trunk", ""),
                {"baseline_rms_m_s2": base, "mdc_rms_m_s2": mdc, "window_s": self.p.sway_window_s},
                sway.ALGORITHM_VERSION,
                out,
            )
        elif rms <= base + mdc and ep_key in self.episodes:
            self._close_episode(ep_key, t_ns, out)

    def _live_joint(
        self, key: tuple[str, str], t: _Trial, role: str, part: Samples, out: Output
    ) -> None:
        live = t.live
        info = t.info
        t0 = info["start_ns"] / 1e9
        if live.reps is None:
            live.reps = joint.RepCounter()
        two = "proximal" in t.roles and "distal" in t.roles
        if two:
            live.pending.setdefault(role, []).append(part)
            if not all(live.pending.get(r) for r in ("proximal", "distal")):
                return
            prox = _cat(live.pending["proximal"])
            dist = _cat(live.pending["distal"])
            if prox.n == 0 or dist.n < 2:
                return
            # align what both cover; keep the rest for the next chunk
            hi = min(prox.time_s[-1], dist.time_s[-1])
            p_now = prox.between(-np.inf, hi + 1e-9)
            if p_now.n < 2 or dist.n < 2:
                return
            p_al, d_al = align(p_now, dist)
            live.pending["proximal"] = [prox.between(hi + 1e-9, np.inf)]
            keep_from = dist.time_s[max(0, int(np.searchsorted(dist.time_s, hi)) - 1)]
            live.pending["distal"] = [dist.between(keep_from, np.inf)]
            if not isinstance(live.angle, joint.JointAngle):
                live.angle = joint.JointAngle()
            ta, ang = live.angle.update(p_al.time_s - t0, p_al.acc, p_al.gyr, d_al.acc, d_al.gyr)
        else:
            if not isinstance(live.angle, joint.SegmentInclination):
                live.angle = joint.SegmentInclination()
            ta, ang = live.angle.update(part.time_s - t0, part.acc, part.gyr)
        if not len(ta):
            return
        live.reps.update(ta, ang)
        erx = None
        if t.prescription is not None:
            erx = rx.from_dict(t.prescription).find(info["exercise"], info["side"])
        tags = {**TrialInfo(**info).tags(), "joint": ROM_JOINTS[info["exercise"]][0]}
        step = 1.0 / self.p.joint_live_hz
        for tt, a in zip(ta.tolist(), ang.tolist(), strict=True):
            if tt < live.next_angle_t:
                continue
            live.next_angle_t = (np.floor(tt / step) + 1) * step
            f: dict[str, Any] = {"angle_deg": a, "rep_count": len(live.reps.repetitions)}
            if erx is not None:
                f["target_rom_deg"] = erx.target_rom_deg
                f["max_rom_deg"] = erx.max_rom_deg
            out.points.append(
                (key[0], key[1], Point("joint_live", info["start_ns"] + round(tt * 1e9), tags, f))
            )

    # --- gateway status (poise/v1/status/{site}/{sensor}) ---
    def on_status(
        self, site: str, sensor: str, payload: bytes, now_s: float | None = None
    ) -> Output:
        """A gateway's status of one sensor. The gateways of ``collector.ble`` report
        ``effective_rate_hz`` and ``samples``/``lost_samples``; the derived fields are
        ``rate_hz`` and ``lost_pct``. ``silent_s``: the time since the sensor's last frame
        arrived (``now_s`` on the same monotonic clock as ``on_frame``'s ``arrival_s``)."""
        out = Output()
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            self.refused["bad_status"] += 1
            return out
        if doc.get("kind", "sensor") != "sensor":
            return out
        for (s_site, patient), s in self.sessions.items():
            if s_site != site or not any(p.sensor == sensor for p in s.placements):
                continue
            st = self.sensors.get((site, patient, sensor))
            fields: dict[str, Any] = {"online": bool(doc.get("online", True))}

            def num(name: str, doc: dict[str, Any] = doc) -> float | None:
                v = doc.get(name)
                if isinstance(v, bool) or not isinstance(v, int | float):
                    return None
                return float(v) if np.isfinite(v) else None

            for src, dst in (
                ("rate_hz", "rate_hz"),
                ("effective_rate_hz", "rate_hz"),
                ("lost_pct", "lost_pct"),
                ("jitter_ms", "jitter_ms"),
                ("battery_pct", "battery_pct"),
                ("rssi_dbm", "rssi_dbm"),
            ):
                v = num(src)
                if v is not None and dst not in fields:
                    fields[dst] = v
            got, lost = num("samples"), num("lost_samples")
            if "lost_pct" not in fields and got is not None and lost is not None and got + lost:
                fields["lost_pct"] = 100.0 * lost / (got + lost)
            if now_s is not None and st is not None and st.arrival_s is not None:
                fields["silent_s"] = max(0.0, now_s - st.arrival_s)
            t_ns = st.last_ns if st is not None and st.last_ns else s.start_ns
            tags = {
                "sensor": sensor,
                "gateway": str(doc.get("gateway", "unknown")),
                "algorithm_version": WORKER_VERSION,
            }
            if not is_id(tags["gateway"]):
                tags["gateway"] = "unknown"
            out.points.append((site, patient, Point("sensor_status", t_ns, tags, fields)))
            battery = fields.get("battery_pct")
            ep_key = f"{site}/{patient}/sensor/{sensor}/battery_low"
            if battery is not None and battery < self.p.battery_low_pct:
                if ep_key not in self.episodes:
                    self._open_episode(
                        ep_key,
                        (site, patient),
                        "battery_low",
                        t_ns,
                        battery,
                        self.p.battery_low_pct,
                        "%",
                        {"session": s.id, "trial": "none"},
                        sensor,
                        {"battery_pct": battery},
                        WORKER_VERSION,
                        out,
                    )
            elif battery is not None and ep_key in self.episodes:
                self._close_episode(ep_key, t_ns, out)
        return out

    # --- state ---
    def get_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "sessions": [
                {
                    "site": k[0],
                    "patient": k[1],
                    "id": s.id,
                    "start_ns": s.start_ns,
                    "placements": [asdict(p) for p in s.placements],
                    "prescription": s.prescription,
                    "pain": s.pain,
                    "fatigue": s.fatigue,
                    "trial": None if s.trial is None else _trial_state(s.trial),
                    "intensity_seen": s.intensity_seen,
                }
                for k, s in self.sessions.items()
            ],
            "sensors": [
                {"key": list(k), "last_end_seq": v.last_end_seq, "last_ns": v.last_ns}
                for k, v in self.sensors.items()
            ],
            "episodes": self.episodes,
            "closing": [
                {"site": k[0], "patient": k[1], "trials": [_trial_state(t) for t in ts]}
                for k, ts in self.closing.items()
            ],
            "seen": list(self.seen),
            "pending_jobs": self.pending_jobs,
            "refused": dict(self.refused),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.sessions = {}
        for d in state["sessions"]:
            s = _Session(
                d["id"],
                d["start_ns"],
                [Placement(**p) for p in d["placements"]],
                d["prescription"],
                list(d["pain"]),
                list(d["fatigue"]),
            )
            pick = intensity_sensor(s.placements)
            if pick is not None:
                s.intensity_sensor, s.intensity_cut = pick
            s.intensity_seen = int(d.get("intensity_seen", 0))
            if d["trial"] is not None:
                s.trial = _trial_from(d["trial"])
            self.sessions[(d["site"], d["patient"])] = s
        self.sensors = {}
        for d in state["sensors"]:
            self.sensors[(d["key"][0], d["key"][1], d["key"][2])] = _Sensor(
                d["last_end_seq"], d["last_ns"]
            )
        self.episodes = dict(state["episodes"])
        self.closing = {
            (c["site"], c["patient"]): [_trial_from(t) for t in c["trials"]]
            for c in state.get("closing", [])
        }
        self.seen = dict.fromkeys(state["seen"])
        self.pending_jobs = list(state["pending_jobs"])
        self.refused = Counter(state.get("refused", {}))

    def jobs(self) -> list[Job]:
        return [Job(**j) for j in self.pending_jobs]


def _trial_state(t: _Trial) -> dict[str, Any]:
    return {
        "info": t.info,
        "roles": t.roles,
        "baseline": t.baseline,
        "prescription": t.prescription,
        "seen": t.seen,
        "live_alerts": t.live_alerts,
    }


def _trial_from(d: dict[str, Any]) -> _Trial:
    b = d["baseline"]
    return _Trial(
        d["info"],
        d["roles"],
        None if b is None else (b[0], b[1]),
        d.get("prescription"),
        list(d.get("live_alerts", [])),
        seen={str(k): int(v) for k, v in d.get("seen", {}).items()},
    )


def _cat(parts: list[Samples]) -> Samples:
    parts = [p for p in parts if p.n]
    if not parts:
        return Samples(np.empty(0), np.empty((0, 3)), np.empty((0, 3)))
    return Samples(
        np.concatenate([p.time_s for p in parts]),
        np.concatenate([p.acc for p in parts]),
        np.concatenate([p.gyr for p in parts]),
    )


__all__ = ["KIND_VERSIONS", "Job", "Output", "WorkerCore", "WorkerParams"]
