"""Trial and session summaries from raw samples: the batch computations the worker runs when
a trial or session stops, and ``poise rescore`` runs again later. Pure: arrays in, points out.

A summary depends only on the samples stored between the trial's start and stop events (and
on the placement and prescription in force), so a worker that died and came back, or a
recomputation years later, gives the same numbers for the same algorithm version.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import intensity, joint, steadi, sway
from poise.core import prescription as rx
from poise.core.clinical import ROM_JOINTS, condition_tag, exercise_kind
from poise.core.derived import MEASUREMENTS, SWAY_METRIC_FIELDS

Array = npt.NDArray[np.float64]
# the algorithm versions a trial summary depends on, by kind
KIND_VERSIONS = {
    "sway": sway.ALGORITHM_VERSION,
    "four_stage": steadi.ALGORITHM_VERSION,
    "chair_stand": steadi.ALGORITHM_VERSION,
    "tug": steadi.ALGORITHM_VERSION,
    "rom": joint.ALGORITHM_VERSION,
}
SESSION_VERSION = f"session-1.0+{intensity.ALGORITHM_VERSION}"
SEGMENT_OF_INTENSITY = (("lower_back", "lumbar"), ("thigh", "thigh"), ("wrist", "wrist"))


@dataclass(frozen=True)
class Samples:
    """One sensor's samples: time in s since the Unix epoch, acc m/s², gyr rad/s."""

    time_s: Array
    acc: Array
    gyr: Array

    @property
    def n(self) -> int:
        return int(self.time_s.shape[0])

    def between(self, lo_s: float, hi_s: float) -> Samples:
        if self.n and self.time_s[0] >= lo_s and self.time_s[-1] < hi_s:
            return self  # the usual case live: the whole chunk
        sel = (self.time_s >= lo_s) & (self.time_s < hi_s)
        return Samples(self.time_s[sel], self.acc[sel], self.gyr[sel])


@dataclass(frozen=True)
class TrialInfo:
    session: str
    trial: str
    exercise: str
    condition: dict[str, str]
    side: str
    start_ns: int
    stop_ns: int
    aborted: bool = False

    @property
    def kind(self) -> str:
        return exercise_kind(self.exercise)

    def tags(self) -> dict[str, str]:
        return {
            "algorithm_version": KIND_VERSIONS[self.kind],
            "session": self.session,
            "trial": self.trial,
            "exercise": self.exercise,
            "condition": condition_tag(self.condition),
            "side": self.side,
        }


@dataclass
class Point:
    """A derived point (poise.core.derived): ``tags`` besides site and patient."""

    measurement: str
    t_ns: int
    tags: dict[str, str]
    fields: dict[str, Any]

    def typed_fields(self) -> dict[str, Any]:
        """The finite fields, each of the type its table says (an InfluxDB field keeps the
        type it was first written with: 60 and 60.0 must not alternate)."""
        m = MEASUREMENTS[self.measurement]
        return {k: _typed(m.field(k).kind, v) for k, v in self.fields.items() if _finite(v)}

    def as_message(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "t_ns": self.t_ns,
            "tags": dict(self.tags),
            "fields": self.typed_fields(),
        }


def _typed(kind: str, v: Any) -> Any:
    if isinstance(v, bool) or kind in ("str", "bool"):
        return bool(v) if kind == "bool" else v
    return float(v) if kind == "float" else int(v) if kind == "int" else v


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and not math.isfinite(v))


@dataclass(frozen=True)
class Placement:
    sensor: str
    segment: str
    side: str = "none"


def sensor_for(placements: list[Placement], segment: str, side: str) -> str | None:
    """The sensor on ``segment`` (on ``side`` when the placement says one)."""
    on_seg = [p for p in placements if p.segment == segment]
    exact = [p for p in on_seg if p.side in (side, "none")] if side != "none" else on_seg
    pick = exact or on_seg
    return pick[0].sensor if pick else None


def trial_sensors(info: TrialInfo, placements: list[Placement]) -> dict[str, str]:
    """role -> sensor for the trial: ``trunk`` (balance tests), ``proximal``/``distal`` or
    ``segment`` (ROM exercises)."""
    out: dict[str, str] = {}
    if info.kind == "rom":
        _j, _m, prox, dist = ROM_JOINTS[info.exercise]
        d = sensor_for(placements, dist, info.side)
        if d is not None:
            out["distal" if prox else "segment"] = d
        if prox is not None:
            pr = sensor_for(placements, prox, info.side)
            if pr is not None:
                out["proximal"] = pr
    else:
        t = sensor_for(placements, "lower_back", "none")
        if t is not None:
            out["trunk"] = t
    return out


def align(ref: Samples, other: Samples) -> tuple[Samples, Samples]:
    """Both sensors on the reference's time base (linear interpolation of the other),
    over the span both cover."""
    lo, hi = max(ref.time_s[0], other.time_s[0]), min(ref.time_s[-1], other.time_s[-1])
    r = ref.between(lo, hi + 1e-9)

    def interp(x: Array) -> Array:
        return np.column_stack([np.interp(r.time_s, other.time_s, x[:, i]) for i in range(3)])

    return r, Samples(r.time_s, interp(other.acc), interp(other.gyr))


def _alert(
    info: TrialInfo,
    kind: str,
    onset_ns: int,
    end_ns: int,
    value: float,
    threshold: float,
    unit: str,
    sensor: str,
    evidence: dict[str, Any],
) -> Point:
    return Point(
        "alert",
        onset_ns,
        {
            "session": info.session,
            "trial": info.trial,
            "kind": kind,
            "algorithm_version": KIND_VERSIONS[info.kind],
        },
        {
            "active": False,
            "end_ns": end_ns,
            "value": float(value),
            "threshold": float(threshold),
            "unit": unit,
            "sensor": sensor,
            "evidence": json.dumps(evidence, separators=(",", ":"), sort_keys=True),
        },
    )


def summarize_trial(
    info: TrialInfo,
    data: dict[str, Samples],
    placements: list[Placement],
    prescription: rx.Prescription | None = None,
    ap_axis: str = "-z",
) -> tuple[Point, list[Point], list[Point]]:
    """(trial_summary point, repetition points, alerts) of one trial. ``data`` maps the roles
    of ``trial_sensors`` to that sensor's samples between the trial's start and stop."""
    kind = info.kind
    t0 = info.start_ns / 1e9
    fields: dict[str, Any] = {
        "kind": kind,
        "duration_s": (info.stop_ns - info.start_ns) / 1e9,
    }
    flags: list[str] = ["aborted"] if info.aborted else []
    reps_out: list[Point] = []
    alerts: list[Point] = []
    roles = trial_sensors(info, placements)
    fields["sensors"] = ",".join(f"{r}={s}" for r, s in sorted(roles.items()))
    missing = [r for r in roles if r not in data or data[r].n < 40]
    if not roles or missing:
        flags.append("no_data")
        fields["flags"] = ",".join(flags)
        return Point("trial_summary", info.start_ns, info.tags(), fields), [], []
    sp = sway.SwayParams(ap_axis=ap_axis)
    if kind in ("sway", "four_stage"):
        s = data["trunk"]
        t = s.time_s - t0
        try:
            res = sway.analyze_trial(t, s.acc, s.gyr, sp)
            for name, value in res.metrics.items():
                fields[SWAY_METRIC_FIELDS[name]] = value
            q = res.quality
            fields["sample_loss_pct"] = q.sample_loss_pct
            flags += [f for f, on in (("too_short", q.too_short), ("clipping", q.clipping)) if on]
            if q.loss_of_balance_s is not None:
                flags.append("loss_of_balance")
                onset = info.start_ns + round((float(t[0]) + q.loss_of_balance_s) * 1e9)
                alerts.append(
                    _alert(
                        info,
                        "loss_of_balance",
                        onset,
                        info.stop_ns,
                        q.loss_of_balance_s,
                        0.0,
                        "s",
                        roles["trunk"],
                        {"at_s": round(float(t[0]) + q.loss_of_balance_s, 3)},
                    )
                )
        except ValueError:
            flags.append("unscorable")
        if kind == "four_stage":
            # one stage per trial: held from the trial's start to its stop or to a loss of
            # balance, whichever is first (steadi.four_stage's rule for one stage; the whole
            # test's verdict needs the stages together)
            fsp = steadi.FourStageParams(sway=sp)
            end_s = (info.stop_ns - info.start_ns) / 1e9
            try:
                lob = sway.loss_of_balance(t, s.acc, s.gyr, sp.ap_axis, fsp.loss_of_balance)
            except ValueError:
                flags.append("unscorable")
            else:
                period = float(np.median(np.diff(t)))
                last = float(t[-1]) + period  # the last sample holds until the next is due
                hold = max(0.0, min(end_s, lob) if lob is not None else min(end_s, last))
                fields["hold_s"] = round(hold, 3)
                # a stop pressed on the 10 s mark may land a sample period early
                fields["passed"] = hold >= fsp.hold_s - period
    elif kind == "chair_stand":
        s = data["trunk"]
        try:
            tt = s.time_s - t0  # the test runs from the trial's start (or its first sample)
            res_cs = steadi.chair_stand(tt, s.acc, s.gyr, start_s=max(0.0, float(tt[0])))
            fields["stands"] = int(res_cs["stands"])
        except ValueError:
            flags.append("unscorable")
    elif kind == "tug":
        s = data["trunk"]
        try:
            res_tug = steadi.tug(s.time_s - t0, s.acc, s.gyr)
            fields["tug_s"] = float(res_tug["duration_s"])
            fields["tug_flag"] = bool(res_tug["flags"]["tug_12s_or_more"])
        except ValueError:
            flags.append("unscorable")
    elif kind == "rom":
        jname = ROM_JOINTS[info.exercise][0]
        if "proximal" in roles:
            p, d = align(data["proximal"], data["distal"])
            ta, angle = joint.joint_angle(p.time_s - t0, p.acc, p.gyr, d.acc, d.gyr)
        else:
            seg = data["segment"]
            ta, angle = joint.segment_inclination(seg.time_s - t0, seg.acc, seg.gyr)
        erx = prescription.find(info.exercise, info.side) if prescription else None
        jrx = None
        if erx is not None:
            jrx = joint.Prescription(
                target_rom_deg=erx.target_rom_deg,
                max_rom_deg=erx.max_rom_deg,
                min_rep_s=erx.tempo_s,
                reps=erx.reps,
                sets=erx.sets,
            )
            for key in ("target_rom_deg", "max_rom_deg", "reps"):
                v = getattr(erx, key)
                if v is not None:
                    fields["target_reps" if key == "reps" else key] = v
        reps = joint.count_reps(ta, angle, prescription=jrx)
        fields["rep_count"] = len(reps)
        if len(angle):
            fields["peak_deg"] = float(np.max(angle))
        if reps:
            fields["rom_deg"] = max(r.rom_deg for r in reps)
        if jrx is not None:
            fields["correct_count"] = sum(1 for r in reps if r.correct)
        tags = {**info.tags(), "joint": jname}
        for i, r in enumerate(reps, start=1):
            rf: dict[str, Any] = {
                "index": i,
                "start_s": r.start_s,
                "end_s": r.end_s,
                "duration_s": r.end_s - r.start_s,
                "peak_deg": r.peak_deg,
                "rom_deg": r.rom_deg,
            }
            if r.correct is not None:
                rf["correct"] = r.correct
                rf["reasons"] = ",".join(r.reasons)
            reps_out.append(Point("repetition", info.start_ns + round(r.peak_s * 1e9), tags, rf))
            if erx is not None and erx.max_rom_deg is not None and r.peak_deg > erx.max_rom_deg:
                alerts.append(
                    _alert(
                        info,
                        "rom_past_limit",
                        info.start_ns + round(r.start_s * 1e9),
                        info.start_ns + round(r.end_s * 1e9),
                        r.peak_deg,
                        erx.max_rom_deg,
                        "deg",
                        roles.get("distal", roles.get("segment", "")),
                        {"rep": i, "peak_deg": round(r.peak_deg, 2)},
                    )
                )
    fields["flags"] = ",".join(flags)
    return Point("trial_summary", info.start_ns, info.tags(), fields), reps_out, alerts


def intensity_sensor(placements: list[Placement]) -> tuple[str, str] | None:
    """(sensor, cut-point placement) for session intensity: lower back, else thigh, else wrist."""
    for segment, cut in SEGMENT_OF_INTENSITY:
        s = sensor_for(placements, segment, "none")
        if s is not None:
            return s, cut
    return None


@dataclass
class SessionInfo:
    session: str
    start_ns: int
    stop_ns: int
    prescription: rx.Prescription | None = None
    pain_0_10: list[float] = field(default_factory=list)
    fatigue_borg: list[float] = field(default_factory=list)


def summarize_session(
    info: SessionInfo,
    trials: list[dict[str, Any]],
    intensity_samples: Samples | None,
    cut_placement: str = "lumbar",
    intensity_sensor_id: str | None = None,
) -> Point:
    """The session summary: duration, intensity (from the intensity sensor's samples),
    adherence to the prescription, pain and fatigue. ``trials``: each finished trial's
    ``{"exercise", "side", "kind", "rep_count"}``."""
    f: dict[str, Any] = {"duration_s": (info.stop_ns - info.start_ns) / 1e9}
    if intensity_samples is not None and intensity_samples.n >= 2:
        p = intensity.IntensityParams(placement=cut_placement)
        summ = intensity.summarize(
            intensity.epochs(intensity_samples.time_s, intensity_samples.acc, p), p
        )
        f["active_s"] = summ["active_s"]
        for z, v in summ["zones_s"].items():
            f[f"{z}_s"] = v
        for key in ("enmo_mean_mg", "mad_mean_mg", "enmo_peak_1min_mg", "load"):
            f[key] = summ[key]
    if intensity_sensor_id:
        f["intensity_sensor"] = intensity_sensor_id
    f["trials"] = len(trials)
    f["reps"] = sum(int(t.get("rep_count") or 0) for t in trials)
    if info.prescription is not None:
        done = 0
        for e in info.prescription.exercises:
            ok = [
                t for t in trials if t["exercise"] == e.exercise and (e.side in ("none", t["side"]))
            ]
            wanted = (e.reps or 0) * (e.sets or 1)
            if ok and sum(int(t.get("rep_count") or 0) for t in ok) >= wanted:
                done += 1
        f["adherence_pct"] = 100.0 * done / len(info.prescription.exercises)
    if info.pain_0_10:
        f["pain_0_10"] = info.pain_0_10[-1]
    if info.fatigue_borg:
        f["fatigue_borg"] = info.fatigue_borg[-1]
    tags = {"session": info.session, "algorithm_version": SESSION_VERSION}
    return Point("session_summary", info.start_ns, tags, f)
