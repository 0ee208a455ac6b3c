"""The console's live view: what the worker publishes (``poise.core.derived`` points on
``poise/v1/metrics|alerts/{site}/{patient}``) and what gateways publish (retained device
status on ``poise/v1/status/{site}/{sensor}``), kept per patient and fanned out to the
pages' Server-Sent Event streams.

``LiveBoard`` is plain state (no MQTT, no clock of its own): ``apply`` folds one message in
and returns what changed, ready to send; ``snapshot`` is what a page that just opened needs.
The shell (``poise.console.mqtt``) feeds it from the broker.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from poise.core import derived

TRACE_S = 30.0  # seconds of trace kept for a page that opens mid-trial
MAX_TRACE_POINTS = 1200  # 30 s at 20 Hz, twice the sway trace's 10 Hz
MAX_REPS = 200
ZONES = ("sedentary", "light", "moderate", "vigorous")


@dataclass
class PatientLive:
    sway_trace: deque[tuple[float, float, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_TRACE_POINTS)
    )
    joint: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_TRACE_POINTS)
    )
    # the 1 Hz sway scores: (t_s, rms, rms_ap, rms_ml) in m/s²
    sway_rms: deque[tuple[float, float, float | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=MAX_TRACE_POINTS)
    )
    sway: dict[str, Any] = field(default_factory=dict)  # last sway_live fields (+ t_s)
    trial: str | None = None  # the trial the latest live points belong to
    rep_count: int = 0
    reps: list[dict[str, Any]] = field(default_factory=list)
    target_rom_deg: float | None = None
    max_rom_deg: float | None = None
    intensity: dict[str, Any] = field(default_factory=dict)
    sensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # key: kind/trial/t_ns
    last_t_s: float = 0.0

    def open_alerts(self) -> list[dict[str, Any]]:
        """Active alerts first, newest first within each group."""
        return sorted(self.alerts.values(), key=lambda a: (not a["active"], -a["t_s"]))

    def new_trial(self, trial: str) -> None:
        self.trial = trial
        self.sway_trace.clear()
        self.sway_rms.clear()
        self.joint.clear()
        self.reps.clear()
        self.rep_count = 0
        self.sway = {}

    def state(self) -> dict[str, Any]:
        """The small part of the view (counters, zone, sensors, alerts) as JSON-ready data."""
        return {
            "trial": self.trial,
            "rep_count": self.rep_count,
            "reps": self.reps[-50:],
            "target_rom_deg": self.target_rom_deg,
            "max_rom_deg": self.max_rom_deg,
            "sway": self.sway,
            "intensity": self.intensity,
            "sensors": [{"sensor": k, **v} for k, v in sorted(self.sensors.items())],
            "alerts": self.open_alerts()[:20],
        }


def _num(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


class LiveBoard:
    """Live state of every patient of one site, thread-safe (paho's thread writes, the
    web server's event loop reads)."""

    def __init__(self, sensor_patient: Callable[[str], str | None] | None = None) -> None:
        self._lock = threading.Lock()
        self.patients: dict[str, PatientLive] = {}
        # sensor id -> patient id, for device status (its topic names no patient)
        self.sensor_patient = sensor_patient or (lambda _s: None)
        self.rejected: dict[str, int] = {}
        self.trial_summaries: list[tuple[str, dict[str, Any]]] = []  # (trial id, fields)

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def patient(self, pid: str) -> PatientLive:
        live = self.patients.get(pid)
        if live is None:
            live = self.patients[pid] = PatientLive()
        return live

    def apply_points(self, pid: str, points: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Fold the worker's points of one patient in; returns the update for the pages."""
        sway_new: list[list[float]] = []
        rms_new: list[list[float | None]] = []
        joint_new: list[list[float]] = []
        with self._lock:
            live = self.patient(pid)
            for p in points:
                m = p["measurement"]
                tags = p.get("tags") or {}
                fields = p.get("fields") or {}
                if not isinstance(tags, dict) or not isinstance(fields, dict):
                    self._reject("bad_point")
                    continue
                t_s = int(p["t_ns"]) / 1e9
                trial = tags.get("trial")
                if (
                    m in ("sway_trace", "joint_live", "repetition", "sway_live")
                    and isinstance(trial, str)
                    and trial != live.trial
                ):
                    live.new_trial(trial)
                live.last_t_s = max(live.last_t_s, t_s)
                if m == "sway_trace":
                    ap, ml = _num(fields.get("ap_m_s2")), _num(fields.get("ml_m_s2"))
                    if ap is not None and ml is not None:
                        live.sway_trace.append((t_s, ap, ml))
                        sway_new.append([t_s, ap, ml])
                elif m == "joint_live":
                    angle = _num(fields.get("angle_deg"))
                    if angle is not None:
                        live.joint.append((t_s, angle))
                        joint_new.append([t_s, angle])
                    reps = fields.get("rep_count")
                    if isinstance(reps, int):
                        live.rep_count = max(live.rep_count, reps)
                    for key in ("target_rom_deg", "max_rom_deg"):
                        v = _num(fields.get(key))
                        if v is not None:
                            setattr(live, key, v)
                elif m == "repetition":
                    rep = {
                        "index": fields.get("index"),
                        "rom_deg": _num(fields.get("rom_deg")),
                        "peak_deg": _num(fields.get("peak_deg")),
                        "correct": fields.get("correct"),
                        "reasons": str(fields.get("reasons") or ""),
                        "t_s": t_s,
                    }
                    live.reps = [r for r in live.reps if r["index"] != rep["index"]]
                    live.reps.append(rep)
                    del live.reps[:-MAX_REPS]
                    if isinstance(rep["index"], int):
                        live.rep_count = max(live.rep_count, rep["index"])
                elif m == "sway_live":
                    live.sway = {
                        k: fields[k]
                        for k in (
                            "rms_m_s2",
                            "rms_ap_m_s2",
                            "rms_ml_m_s2",
                            "baseline_rms_m_s2",
                            "mdc_rms_m_s2",
                            "window_s",
                        )
                        if _num(fields.get(k)) is not None
                    }
                    live.sway["t_s"] = t_s
                    rms = _num(fields.get("rms_m_s2"))
                    if rms is not None:
                        row = (
                            t_s,
                            rms,
                            _num(fields.get("rms_ap_m_s2")),
                            _num(fields.get("rms_ml_m_s2")),
                        )
                        live.sway_rms.append(row)
                        rms_new.append(list(row))
                elif m == "intensity_live":
                    zone = fields.get("zone")
                    live.intensity = {
                        "zone": zone if zone in ZONES else None,
                        "enmo_mg": _num(fields.get("enmo_mg")),
                        "hr_bpm": _num(fields.get("hr_bpm")),
                        "t_s": t_s,
                    }
                elif m == "sensor_status":
                    sensor = tags.get("sensor")
                    if isinstance(sensor, str):
                        self._sensor(live, sensor, fields, t_s)
                elif m == "alert":
                    self._alert(live, tags, fields, t_s, int(p["t_ns"]))
                elif m == "trial_summary" and isinstance(trial, str):
                    self.trial_summaries.append((trial, dict(fields)))
            # trim history to the last TRACE_S seconds
            horizon = live.last_t_s - TRACE_S
            while live.sway_trace and live.sway_trace[0][0] < horizon:
                live.sway_trace.popleft()
            while live.joint and live.joint[0][0] < horizon:
                live.joint.popleft()
            while live.sway_rms and live.sway_rms[0][0] < horizon:
                live.sway_rms.popleft()
            state = live.state()
        return {
            "patient": pid,
            "sway": sway_new,
            "sway_rms": rms_new,
            "joint": joint_new,
            "state": state,
        }

    @staticmethod
    def _sensor(live: PatientLive, sensor: str, fields: dict[str, Any], t_s: float) -> None:
        cur = live.sensors.setdefault(sensor, {})
        if isinstance(fields.get("online"), bool):
            cur["online"] = fields["online"]
        for key in ("battery_pct", "rate_hz", "lost_pct", "rssi_dbm"):
            v = _num(fields.get(key))
            if v is not None:
                cur[key] = v
        for key in ("placement", "segment"):
            if isinstance(fields.get(key), str):
                cur["placement"] = fields[key]
        cur["t_s"] = t_s

    @staticmethod
    def _alert(
        live: PatientLive, tags: dict[str, Any], fields: dict[str, Any], t_s: float, t_ns: int
    ) -> None:
        kind = tags.get("kind")
        if kind not in derived.ALERT_KINDS:
            return
        key = f"{kind}/{tags.get('trial', '')}/{t_ns}"
        evidence: Any = fields.get("evidence")
        if isinstance(evidence, str):
            try:
                evidence = json.loads(evidence)
            except ValueError:
                evidence = None
        live.alerts[key] = {
            "kind": kind,
            "active": fields.get("active") is not False,
            "value": _num(fields.get("value")),
            "threshold": _num(fields.get("threshold")),
            "unit": str(fields.get("unit") or ""),
            "sensor": str(fields.get("sensor") or ""),
            "evidence": evidence if isinstance(evidence, dict) else None,
            "t_s": t_s,
        }
        if len(live.alerts) > 100:
            for old in sorted(live.alerts, key=lambda k: live.alerts[k]["t_s"])[:-100]:
                del live.alerts[old]

    def apply_status(self, sensor: str, doc: dict[str, Any], t_s: float) -> dict[str, Any] | None:
        """A gateway's retained device status (``collector.publisher.publish_status``)."""
        pid = self.sensor_patient(sensor)
        if pid is None:
            return None
        with self._lock:
            live = self.patient(pid)
            self._sensor(live, sensor, doc, t_s)
            state = live.state()
        return {"patient": pid, "sway": [], "sway_rms": [], "joint": [], "state": state}

    def snapshot(self, pid: str) -> dict[str, Any]:
        """Everything a page that opens now needs: the recent traces and the state."""
        with self._lock:
            live = self.patient(pid)
            return {
                "patient": pid,
                "sway": [list(x) for x in live.sway_trace],
                "sway_rms": [list(x) for x in live.sway_rms],
                "joint": [list(x) for x in live.joint],
                "state": live.state(),
                "snapshot": True,
            }

    def summary(self, pid: str) -> dict[str, Any]:
        """One row of the room: sensors online, live sway, repetitions, open alerts."""
        with self._lock:
            live = self.patients.get(pid)
            if live is None:
                return {
                    "sensors_online": 0,
                    "sensors": 0,
                    "battery_min_pct": None,
                    "sway_rms_m_s2": None,
                    "rep_count": 0,
                    "zone": None,
                    "alerts": [],
                }
            return {
                "sensors_online": sum(1 for s in live.sensors.values() if s.get("online")),
                "sensors": len(live.sensors),
                "battery_min_pct": min(
                    (s["battery_pct"] for s in live.sensors.values() if "battery_pct" in s),
                    default=None,
                ),
                "sway_rms_m_s2": live.sway.get("rms_m_s2"),
                "rep_count": live.rep_count,
                "zone": live.intensity.get("zone"),
                "alerts": [a for a in live.open_alerts() if a["active"]],
            }

    def recent(self, now_s: float, within_s: float = 60.0) -> list[str]:
        """Patients with live points in the last ``within_s`` seconds (by the points' times)."""
        with self._lock:
            return sorted(
                p for p, live in self.patients.items() if live.last_t_s > now_s - within_s
            )

    def pop_trial_summaries(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            out, self.trial_summaries = self.trial_summaries, []
        return out
