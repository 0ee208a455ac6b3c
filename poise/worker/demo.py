"""The worker's part of ``poise demo``: a worker on the demo stack, session and trial events
for the simulated patients' activity cycle (as a therapist at the console would send them),
a live table of their scores from the metrics topic, and the trial summaries at the end.

The demo's patients cycle through quiet stance, seated knee flexion, sit-to-stand and
walking, 15 s each (collector.virtual.simulate_patient). Two of them become a
trial: quiet stance (eyes open) and a knee-flexion set; sit-to-stand and walking count for the
session's intensity. ``poise simulate --protocol clinic`` plays the full clinical protocol.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from collector.virtual import ACTIVITIES
from poise.core import derived, topics
from poise.core import events as ev
from poise.worker.core import WorkerParams
from poise.worker.service import WorkerService

ACTIVITY_S = 15.0  # simulate_patient's default
EDGE_S = 1.0  # trials start and stop this far inside an activity (its joins are smoothed)
TRIAL_OF = {"quiet_stance": "quiet_stance", "knee_flexion": "rom/knee_flexion"}  # fmt: skip
# simulate_patient straps the lower-back sensor with +x forward (its face is not the AP axis)
DEMO_AP_AXIS = "+x"


class DemoWorker:
    def __init__(self, stack: Any, patients: list[str], site: str, duration_s: float) -> None:
        info = stack.info()
        self.site = site
        self.patients = patients
        self.duration_s = duration_s
        self.start_ns = time.time_ns()
        user, password = stack.mqtt_login("worker")
        self._influx = stack.influx_client("worker")
        self._dir = Path(tempfile.mkdtemp(prefix="poise-demo-worker-"))
        self.service = WorkerService(
            info.mqtt_host,
            info.mqtt_port,
            self._influx,
            self._dir / "worker.state.json",
            params=WorkerParams(ap_axis=DEMO_AP_AXIS),
            username=user,
            password=password,
        )
        self._console = stack.mqtt_client("console")
        self._console.on_message = self._on_message
        self._console.on_connect = lambda c, *a: c.subscribe(
            [(f"{topics.PREFIX}/metrics/{site}/+", 0), (f"{topics.PREFIX}/alerts/{site}/+", 1)]
        )
        self._console.connect(info.mqtt_host, info.mqtt_port)
        self.latest: dict[str, dict[str, Any]] = defaultdict(dict)
        self.alerts: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self._events = self._schedule()
        self._sent = 0

    def _schedule(self) -> list[tuple[float, str, bytes]]:
        out: list[tuple[float, str, bytes]] = []
        for pid in self.patients:
            session = f"s-{pid}-demo"

            def e(t_s: float, pid: str = pid, session: str = session, **kw: Any) -> ev.Event:
                return ev.Event(
                    id=ev.new_id("e"),
                    t_ns=self.start_ns + round(t_s * 1e9),
                    site="",
                    patient=pid,
                    session=session,
                    **kw,
                )

            places = (
                ev.Placement(f"{pid}-lowerback", "lower_back"),
                ev.Placement(f"{pid}-thigh", "thigh", "right"),
                ev.Placement(f"{pid}-shank", "shank", "right"),
            )
            out.append((0.0, pid, ev.encode(e(0.0, type="session_start", placement=places))))
            k = 0
            while (k + 1) * ACTIVITY_S <= self.duration_s:
                activity = ACTIVITIES[k % len(ACTIVITIES)]
                exercise = TRIAL_OF.get(activity)
                if exercise is not None:
                    trial = f"t-{pid}-{k + 1}"
                    a, b = k * ACTIVITY_S + EDGE_S, (k + 1) * ACTIVITY_S - EDGE_S
                    cond = {"eyes": "open"} if exercise == "quiet_stance" else {}
                    side = "right" if exercise.startswith("rom/") else "none"
                    start = e(a, type="trial_start", trial=trial, exercise=exercise,
                              condition=cond, side=side)  # fmt: skip
                    out.append((a, pid, ev.encode(start)))
                    out.append((b, pid, ev.encode(e(b, type="trial_stop", trial=trial))))
                k += 1
            stop = e(self.duration_s, type="session_stop", pain_0_10=2.0, fatigue_borg=11.0)
            out.append((self.duration_s, pid, ev.encode(stop)))
        return sorted(out, key=lambda x: x[0])

    def start(self) -> None:
        self.service.start()
        self._console.loop_start()
        self.service.subscribed.wait(30)

    def tick(self, t_s: float) -> None:
        """Send the events due at simulated time ``t_s`` (the simulation's progress hook)."""
        while self._sent < len(self._events) and self._events[self._sent][0] <= t_s:
            _t, pid, payload = self._events[self._sent]
            self._console.publish(topics.session(self.site, pid), payload, qos=1)
            self._sent += 1

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        pid = msg.topic.rsplit("/", 1)[-1]
        try:
            points = derived.parse_message(msg.payload)
        except ValueError:
            return
        with self._lock:
            for p in points:
                f = p.get("fields", {})
                assert isinstance(f, dict)
                if "/alerts/" in msg.topic:
                    tags = p.get("tags", {})
                    assert isinstance(tags, dict)
                    if f.get("active"):
                        self.alerts[pid].append(str(tags.get("kind")))
                    continue
                self.latest[pid][str(p["measurement"])] = f

    def table(self) -> Table:
        t = Table(title="live scores (from poise/v1/metrics)", expand=False)
        for col in ("patient", "sway RMS m/s²", "knee angle °", "reps", "intensity", "alerts"):
            t.add_column(col, justify="right")
        with self._lock:
            for pid in self.patients:
                m = self.latest.get(pid, {})
                sway = m.get("sway_live", {}).get("rms_m_s2")
                joint = m.get("joint_live", {})
                inten = m.get("intensity_live", {})
                t.add_row(
                    pid,
                    "-" if sway is None else f"{sway:.3f}",
                    "-" if "angle_deg" not in joint else f"{joint['angle_deg']:.0f}",
                    str(joint.get("rep_count", "-")),
                    "-" if not inten else f"{inten.get('zone')} ({inten.get('enmo_mg', 0):.0f} mg)",
                    ", ".join(self.alerts.get(pid, [])) or "none",
                )
        return t

    def finish(self, console: Console, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Send what is left, wait for the summaries, print them; stop the worker."""
        self.tick(float("inf"))
        deadline = time.monotonic() + timeout_s
        n_trials = sum(1 for _t, _p, payload in self._events if b'"trial_stop"' in payload)
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self._summaries()
            if len(rows) >= n_trials and self.service.idle():
                break
            time.sleep(0.5)
        table = Table(title="trial summaries (derived.trial_summary)", expand=False)
        for col in ("patient", "trial", "exercise", "result", "algorithm"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["patient"], r["trial"], r["exercise"], _result(r), r["algorithm_version"]
            )
        console.print(table)
        self.service.stop()
        self._console.disconnect()
        self._console.loop_stop()
        self._influx.close()
        return rows

    def _summaries(self) -> list[dict[str, Any]]:
        rows = []
        for s in self._influx.query(
            f'SELECT * FROM "derived"."trial_summary" WHERE site=\'{self.site}\' '
            "GROUP BY patient, trial, exercise, algorithm_version"
        ):
            for v in s.get("values", []):
                rows.append({**s["tags"], **dict(zip(s["columns"], v, strict=True))})
        return sorted(rows, key=lambda r: (r["patient"], r["time"]))


def _result(r: dict[str, Any]) -> str:
    if r.get("rep_count") is not None:
        return f"{r['rep_count']} reps, ROM {r.get('rom_deg') or 0:.0f}°"
    if r.get("rms_m_s2") is not None:
        return f"sway RMS {r['rms_m_s2']:.3f} m/s²"
    return str(r.get("flags") or "-")


def summary_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps([{k: v for k, v in r.items() if v is not None} for r in rows])
