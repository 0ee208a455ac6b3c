"""``poise simulate --protocol clinic``: a scripted clinic session per patient, with truth.

Each patient wears three sensors (lower back, right thigh, right shank) and goes through:
quiet stance eyes open and eyes closed; the STEADI 4-stage balance test (stopping at the
first stage not held); a set of seated knee extensions under a prescription; a 30 s chair
stand; a Timed Up and Go; then the session stops with pain and fatigue. The motion comes from
the collector's scenario traces (collector.virtual), played through the real gateway path by
poise.simulate; the session events are published on the session topic at their times, as
the console would. The truth of every trial is kept beside it.

Patient 2 (and every even one) is the one things go wrong for: a step out of the tandem
stance (loss of balance, the test stops there), one knee repetition past the prescribed
maximum, a slow TUG, the thigh sensor silent for 8 s during the chair stand, and pain above
the prescription's limit at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.virtual import (
    L5_MOUNT,
    HingeMotion,
    SensorErrors,
    SensorTrace,
    StandSpec,
    chair_stand_trace,
    hinge_traces,
    stance_trace,
    tug_trace,
)
from poise.core import events as ev
from poise.core import prescription as rx
from poise.core.channels import G
from poise.core.clinical import condition_tag

Array = npt.NDArray[np.float64]
PLACEMENT = (
    ("lowerback", "lower_back", "none"),
    ("thigh", "thigh", "right"),
    ("shank", "shank", "right"),
)
MARGIN_S = 0.3  # trial events sit this far inside their motion, clear of the joins
REST_S = 3.0

PRESCRIPTION = rx.Prescription(
    id="rx-clinic-1",
    exercises=(
        rx.ExerciseRx(
            "rom/knee_flexion",
            side="right",
            target_rom_deg=60.0,
            max_rom_deg=100.0,
            reps=6,
            sets=1,
            tempo_s=1.5,
        ),
        rx.ExerciseRx("chair_stand_30s"),
    ),
    sessions_per_week=3,
    pain_limit=5.0,
)


@dataclass
class TrialPlan:
    exercise: str
    condition: dict[str, str]
    side: str
    start_s: float  # from the session's first sample
    stop_s: float
    truth: dict[str, Any]
    id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial": self.id,
            "exercise": self.exercise,
            "condition": condition_tag(self.condition),
            "side": self.side,
            "start_s": round(self.start_s, 3),
            "stop_s": round(self.stop_s, 3),
            "truth": self.truth,
        }


@dataclass
class PatientPlan:
    patient: str
    session: str
    traces: dict[str, SensorTrace]  # placement -> trace
    trials: list[TrialPlan]
    duration_s: float
    pain_0_10: float
    fatigue_borg: float
    silent_s: dict[str, tuple[float, float]] = field(default_factory=dict)  # sensor -> span
    expected_alerts: list[str] = field(default_factory=list)

    def sensor(self, short: str) -> str:
        return f"{self.patient}-{short}"


def _static(rng: np.random.Generator, n: int, rate_hz: float, up_sensor: Array) -> SensorTrace:
    t = np.arange(n) / rate_hz
    acc = np.tile(up_sensor * G, (n, 1)) + rng.normal(0, 0.02, (n, 3))
    gyr = rng.normal(0, 0.003, (n, 3))
    return SensorTrace(t, acc, gyr, np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)))


class _Timeline:
    """Concatenates each sensor's segments on one time axis."""

    def __init__(self, rng: np.random.Generator, rate_hz: float) -> None:
        self.rng, self.rate = rng, rate_hz
        self.parts: dict[str, list[SensorTrace]] = {"lower_back": [], "thigh": [], "shank": []}
        self.n = 0

    @property
    def t_s(self) -> float:
        return self.n / self.rate

    def add(self, given: dict[str, SensorTrace]) -> tuple[float, float]:
        n = max(len(tr.time_s) for tr in given.values())
        up = {
            "lower_back": L5_MOUNT.T @ [0, 0, 1.0],
            "thigh": np.array([0, 0, 1.0]),
            "shank": np.array([0, 0, 1.0]),
        }
        for name in self.parts:
            tr = given.get(name) or _static(self.rng, n, self.rate, up[name])
            if len(tr.time_s) < n:  # pad with its last sample
                pad = n - len(tr.time_s)
                tr = SensorTrace(
                    np.arange(n) / self.rate,
                    np.vstack([tr.acc, np.tile(tr.acc[-1], (pad, 1))]),
                    np.vstack([tr.gyr, np.zeros((pad, 3))]),
                    np.vstack([tr.quat_wxyz, np.tile(tr.quat_wxyz[-1], (pad, 1))]),
                )
            self.parts[name].append(tr)
        start = self.t_s
        self.n += n
        return start, self.t_s

    def rest(self, seconds: float) -> None:
        self.add(
            {
                "lower_back": _static(
                    self.rng, round(seconds * self.rate), self.rate, L5_MOUNT.T @ [0, 0, 1.0]
                )
            }
        )

    def traces(self) -> dict[str, SensorTrace]:
        out = {}
        for name, parts in self.parts.items():
            n = sum(len(p.time_s) for p in parts)
            out[name] = SensorTrace(
                np.arange(n) / self.rate,
                np.vstack([p.acc for p in parts]),
                np.vstack([p.gyr for p in parts]),
                np.vstack([p.quat_wxyz for p in parts]),
            )
        return out


def plan_patient(index: int, rng: np.random.Generator, rate_hz: float = 100.0) -> PatientPlan:
    """The scripted session of patient ``index`` (1-based)."""
    pid = f"p{index:03d}"
    trouble = index % 2 == 0
    tl = _Timeline(rng, rate_hz)
    trials: list[TrialPlan] = []

    def trial(
        exercise: str,
        given: dict[str, SensorTrace],
        truth: dict[str, Any],
        condition: dict[str, str] | None = None,
        side: str = "none",
    ) -> None:
        a, b = tl.add(given)
        trials.append(TrialPlan(exercise, condition or {}, side, a + MARGIN_S, b - MARGIN_S, truth))
        tl.rest(REST_S)

    tl.rest(REST_S)
    for eyes, rms in (("open", 0.04), ("closed", 0.07)):
        trial(
            "quiet_stance",
            {"lower_back": stance_trace(rng, 12.0 + 2 * MARGIN_S, rms, rate_hz)},
            {"sway_rms_m_s2": rms},
            {"eyes": eyes},
        )
    stages = (("feet_together", 0.05), ("semi_tandem", 0.07), ("tandem", 0.1), ("single_leg", 0.14))
    for name, rms in stages:
        step = 6.0 + MARGIN_S if trouble and name == "tandem" else None
        trial(
            f"steadi_4stage/{name}",
            {"lower_back": stance_trace(rng, 10.0 + 2 * MARGIN_S, rms, rate_hz, step_at_s=step)},
            {"held_s": 10.0 if step is None else 6.0, "passed": step is None},
        )
        if step is not None:
            break  # the test stops at the first stage not held
    roms = [70.0] * 6
    if trouble:
        roms[3] = 115.0
    prox, dist = hinge_traces(
        rng,
        HingeMotion(
            kind="seated_knee",
            reps=6,
            rom_deg=roms,
            rep_s=3.0,
            pause_s=1.0,
            neutral_s=3.0,
            tail_s=2.0,
            yaw_wander_deg=0.0,
        ),
        rate_hz,
        SensorErrors(gyr_bias_rad_s=0.002),
    )
    trial(
        "rom/knee_flexion",
        {"thigh": prox, "shank": dist},
        {"reps": 6, "rom_deg": roms, "past_limit": sum(r > 100.0 for r in roms)},
        side="right",
    )
    n_stands = 6 if trouble else 8
    cs = chair_stand_trace(rng, [StandSpec()] * n_stands, rate_hz)
    trial("chair_stand_30s", {"lower_back": cs}, {"stands": n_stands})
    chair = trials[-1]
    tug = tug_trace(rng, rate_hz, speed_m_s=0.6 if trouble else 1.0)
    trial("tug", {"lower_back": tug}, {"duration_s": round(float(tug.truth["duration_s"][0]), 2)})
    plan = PatientPlan(
        pid,
        f"s-{pid}-clinic",
        tl.traces(),
        trials,
        tl.t_s,
        pain_0_10=7.0 if trouble else 2.0,
        fatigue_borg=15.0 if trouble else 11.0,
    )
    for i, tr in enumerate(trials, start=1):
        tr.id = f"t-{pid}-{i}"
    if trouble:
        mid = (chair.start_s + chair.stop_s) / 2
        plan.silent_s[plan.sensor("thigh")] = (mid - 4.0, mid + 4.0)
        plan.expected_alerts = [
            "loss_of_balance",
            "rom_past_limit",
            "sensor_silent",
            "pain_above_limit",
        ]
    return plan


def session_events(plan: PatientPlan, start_ns: int) -> list[tuple[float, bytes]]:
    """(time s from the session's first sample, payload) of every event, in order."""

    def t_ns(t_s: float) -> int:
        return start_ns + round(t_s * 1e9)

    pid = plan.patient
    out: list[tuple[float, ev.Event]] = [
        (
            0.0,
            ev.Event(
                "session_start",
                f"e-{pid}-start",
                t_ns(0.0),
                "",
                pid,
                plan.session,
                placement=tuple(
                    ev.Placement(plan.sensor(s), seg, side) for s, seg, side in PLACEMENT
                ),
                prescription=PRESCRIPTION,
            ),
        )
    ]
    for i, tr in enumerate(plan.trials, start=1):
        out.append(
            (
                tr.start_s,
                ev.Event(
                    "trial_start",
                    f"e-{pid}-{i}a",
                    t_ns(tr.start_s),
                    "",
                    pid,
                    plan.session,
                    tr.id,
                    tr.exercise,
                    dict(tr.condition),
                    tr.side,
                ),
            )
        )
        out.append(
            (
                tr.stop_s,
                ev.Event(
                    "trial_stop", f"e-{pid}-{i}b", t_ns(tr.stop_s), "", pid, plan.session, tr.id
                ),
            )
        )
    end = plan.duration_s
    out.append(
        (
            end,
            ev.Event(
                "session_stop",
                f"e-{pid}-stop",
                t_ns(end),
                "",
                pid,
                plan.session,
                pain_0_10=plan.pain_0_10,
                fatigue_borg=plan.fatigue_borg,
            ),
        )
    )
    return [(t, ev.encode(e)) for t, e in out]


def plan_clinic(patients: int, seed: int = 0, rate_hz: float = 100.0) -> list[PatientPlan]:
    rng = np.random.default_rng(seed)
    return [plan_patient(i + 1, rng, rate_hz) for i in range(patients)]


def run_clinic(
    plans: list[PatientPlan],
    site: str,
    publish_frames: Callable[[list[tuple[str, bytes]]], None],
    publish_event: Callable[[str, bytes], None],
    *,
    speed: float = 0.0,
    start_ns: int,
    rate_hz: float = 100.0,
) -> dict[str, Any]:
    """Play the plans through the gateway path; events go out as their time comes."""
    from poise.simulate import SimConfig, Simulation

    cfg = SimConfig(
        site=site,
        patients=len(plans),
        speed=speed,
        rate_hz=rate_hz,
        duration_s=max(p.duration_s for p in plans),
    )
    silent = {k: v for p in plans for k, v in p.silent_s.items()}
    sim = Simulation(cfg, traces={p.patient: p.traces for p in plans}, silent_s=silent)
    queue = sorted(
        (
            (t, i, p.patient, payload)
            for p in plans
            for i, (t, payload) in enumerate(session_events(p, start_ns))
        ),
        key=lambda x: (x[0], x[1]),
    )
    sent = {"n": 0}

    def due(t_s: float) -> None:
        while sent["n"] < len(queue) and queue[sent["n"]][0] <= t_s:
            _t, _i, patient, payload = queue[sent["n"]]
            publish_event(patient, payload)
            sent["n"] += 1

    res = sim.run(publish_frames, start_ns=start_ns, on_progress=due, progress_every_s=0.0)
    due(float("inf"))
    return {
        "samples_published": res.samples_published,
        "frames_published": res.frames_published,
        "events_published": sent["n"],
        "start_ns": start_ns,
        "patients": [
            {
                "patient": p.patient,
                "session": p.session,
                "duration_s": round(p.duration_s, 3),
                "trials": [t.as_dict() for t in p.trials],
                "silent_s": {k: [round(v[0], 3), round(v[1], 3)] for k, v in p.silent_s.items()},
                "pain_0_10": p.pain_0_10,
                "fatigue_borg": p.fatigue_borg,
                "expected_alerts": p.expected_alerts,
            }
            for p in plans
        ],
        "trials": [{"patient": p.patient, **t.as_dict()} for p in plans for t in p.trials],
    }


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result)


def cli(args: Any) -> int:
    """``poise simulate --protocol clinic`` (called by poise.cli.simulation)."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from poise.cli.common import mqtt_ca, mqtt_credentials
    from poise.cli.simulation import make_publisher
    from poise.core import topics
    from poise.core.mqttconf import paho_protocol
    from poise.core.tls import configure_mqtt

    spool_dir = Path(tempfile.mkdtemp(prefix="poise-sim-"))
    spool_path = args.spool or spool_dir / "spool.db"
    pub = make_publisher(args, spool_path)
    plans = plan_clinic(args.patients, args.seed)
    if args.nats:
        # events go the same at-least-once way as frames, under the console's login
        evpub = make_publisher(args, spool_dir / "events.db", role="console")
        evpub.start()
        pub.start()
        try:
            res = run_clinic(
                plans,
                args.site,
                pub.publish,
                lambda patient, payload: evpub.publish([(topics.session(args.site, patient), payload)]),
                speed=args.speed,
                start_ns=time.time_ns(),
            )
            drained = pub.wait_drained(args.drain_timeout)
            events_ok = evpub.wait_drained(args.drain_timeout)
        finally:
            pub.stop(drain_timeout_s=1)
            evpub.stop(drain_timeout_s=1)
    else:
        host, port = args.mqtt
        cuser, cpassword = mqtt_credentials("console")
        protocol = paho_protocol(args.mqtt_protocol)
        events_client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        if cuser is not None:
            events_client.username_pw_set(cuser, cpassword)
        configure_mqtt(events_client, mqtt_ca("console"))
        events_client.connect(host, port, keepalive=15)
        events_client.loop_start()
        infos: list[mqtt.MQTTMessageInfo] = []
        pub.start()
        try:
            res = run_clinic(
                plans,
                args.site,
                pub.publish,
                lambda patient, payload: infos.append(
                    events_client.publish(topics.session(args.site, patient), payload, qos=1)
                ),
                speed=args.speed,
                start_ns=time.time_ns(),
            )
            drained = pub.wait_drained(args.drain_timeout)
            for info in infos:
                info.wait_for_publish(10)
            events_ok = all(i.is_published() for i in infos)
        finally:
            pub.stop(drain_timeout_s=1)
            events_client.disconnect()
            events_client.loop_stop()
    res["all_acknowledged_by_broker"] = drained and events_ok
    res["spool"] = str(spool_path)
    print(dumps(res))
    if not res["all_acknowledged_by_broker"]:
        print(
            "poise simulate: the broker has not acknowledged every frame and event yet",
            file=sys.stderr,
        )
        return 1
    return 0
