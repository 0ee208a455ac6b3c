"""Joint angles, range of motion and repetitions.

Hinge joints (knee, elbow, ankle) from two sensors on adjacent segments: the heading-free
hinge angle of ``analysis.hinge`` (joint axes from the hinge constraints, re-estimated as the
motion shows more of them; the angle from each sensor's up direction about its own axis), so
neither careful mounting nor a shared heading is needed, and a still proximal segment is
fine.

One-sensor mode (hip, shoulder): the segment's inclination change from its neutral pose.

Everything is causal and carries its state: ``JointAngle.update`` on chunks gives exactly
the batch result, and so does ``RepCounter``. The live scores (``LiveJointAngle``,
``LiveRepetitions``) wrap them in the analysis contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from analysis.contract import Chunk, FieldValue, Record, ScoreSpec, pack, register, unpack
from analysis.hinge import ALGORITHM_VERSION as HINGE_VERSION
from analysis.hinge import HingeAngle, HingeParams
from analysis.orientation import Orientation
from poise.core.rotations import qconj, qrotate

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = f"joint-2.0+{HINGE_VERSION}"
HINGE_JOINTS = ("knee", "elbow", "ankle")
SEGMENT_JOINTS = ("hip", "shoulder")
# exercises the two-sensor live scores run for (prefixes of exercise ids)
HINGE_EXERCISES = ("rom/knee", "rom/elbow", "rom/ankle")
# Normal active ROM (degrees), for orientation in reports.
NORMAL_ROM_DEG = {
    ("hip", "flexion"): 120.0,
    ("knee", "flexion"): 135.0,
    ("ankle", "dorsiflexion"): 20.0,
    ("shoulder", "flexion"): 180.0,
    ("shoulder", "abduction"): 180.0,
    ("elbow", "flexion"): 145.0,
}

# the two-sensor hinge angle (kept under the names the CLI, worker and benchmarks use)
JointParams = HingeParams
JointAngle = HingeAngle


def joint_angle(
    time_s: Array,
    acc_p: Array,
    gyr_p: Array,
    acc_d: Array,
    gyr_d: Array,
    params: JointParams | None = None,
) -> tuple[Array, Array]:
    """Batch form: the same computation as feeding ``JointAngle`` everything at once."""
    ja = JointAngle(params or JointParams())
    t1, a1 = ja.update(time_s, acc_p, gyr_p, acc_d, gyr_d)
    t2, a2 = ja.finish()
    return np.concatenate([t1, t2]), np.concatenate([a1, a2])


@dataclass
class SegmentInclination:
    """One-sensor mode: the angle between the segment's up direction now and at neutral."""

    neutral_s: float = 2.0
    _orient: Orientation = field(default_factory=Orientation, repr=False)
    _t0: float | None = field(default=None, repr=False)
    _neutral: list[Array] = field(default_factory=list, repr=False)
    _up_neutral: Array | None = field(default=None, repr=False)
    _pending_t: list[float] = field(default_factory=list, repr=False)
    _pending_up: list[Array] = field(default_factory=list, repr=False)

    def update(self, time_s: Array, acc: Array, gyr: Array) -> tuple[Array, Array]:
        if len(time_s) == 0:
            return np.empty(0), np.empty(0)
        q = self._orient.update(time_s, acc, gyr)
        up = qrotate(qconj(q), np.tile([0.0, 0.0, 1.0], (len(q), 1)))  # earth up, sensor frame
        if self._t0 is None:
            self._t0 = float(time_s[0])
        out_t: list[float] = []
        out_a: list[float] = []
        for i, t in enumerate(time_s.tolist()):
            if self._up_neutral is None:
                if t - self._t0 < self.neutral_s:
                    self._neutral.append(up[i])
                    self._pending_t.append(t)
                    self._pending_up.append(up[i])
                    continue
                m = np.mean(self._neutral, axis=0) if self._neutral else up[i]
                self._up_neutral = m / np.linalg.norm(m)
                out_t.extend(self._pending_t)
                out_a.extend(self._angle(np.array(self._pending_up)).tolist())
                self._pending_t, self._pending_up = [], []
            out_t.append(t)
            out_a.append(float(self._angle(up[i][None, :])[0]))
        return np.array(out_t), np.array(out_a)

    def finish(self) -> tuple[Array, Array]:
        if not self._pending_t:
            return np.empty(0), np.empty(0)
        m = np.mean(self._neutral, axis=0)
        self._up_neutral = m / np.linalg.norm(m)
        t, a = np.array(self._pending_t), self._angle(np.array(self._pending_up))
        self._pending_t, self._pending_up = [], []
        return t, a

    def _angle(self, up: Array) -> Array:
        assert self._up_neutral is not None
        ang: Array = np.degrees(np.arccos(np.clip(up @ self._up_neutral, -1.0, 1.0)))
        return ang


def segment_inclination(
    time_s: Array, acc: Array, gyr: Array, neutral_s: float = 2.0
) -> tuple[Array, Array]:
    si = SegmentInclination(neutral_s)
    t1, a1 = si.update(time_s, acc, gyr)
    t2, a2 = si.finish()
    return np.concatenate([t1, t2]), np.concatenate([a1, a2])


# --- repetitions ---


@dataclass(frozen=True)
class RepParams:
    """Peaks of the angle with prominence >= max(min_prominence_deg, relative_prominence x the
    excursion so far), found with hysteresis: a peak is confirmed when the angle has fallen
    that far below it, a trough when it has risen that far above it."""

    min_prominence_deg: float = 10.0
    relative_prominence: float = 0.3
    min_separation_s: float = 0.8


@dataclass(frozen=True)
class Prescription:
    target_rom_deg: float | None = None  # a repetition must reach at least this ROM
    max_rom_deg: float | None = None  # and its peak must stay at or below this angle
    min_rep_s: float | None = None  # faster than this is "too fast"
    reps: int | None = None  # per set
    sets: int | None = None
    set_gap_s: float = 5.0  # a pause this long starts a new set


@dataclass(frozen=True)
class Repetition:
    start_s: float
    peak_s: float
    end_s: float
    peak_deg: float
    rom_deg: float
    correct: bool | None = None
    reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        if self.correct is None:
            del d["correct"], d["reasons"]
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


@dataclass
class RepCounter:
    """Repetitions found causally, one sample at a time: feeding chunks gives exactly the
    batch result. A repetition runs from where the angle leaves its trough (within a small
    tolerance) over its peak to where it settles into the next trough."""

    params: RepParams = field(default_factory=RepParams)
    prescription: Prescription | None = None
    tolerance: float = 0.1  # of the prominence threshold: "at the trough" means within this
    _hi: float = -np.inf  # running excursion
    _lo: float = np.inf
    _up: bool = True  # looking for a peak (else for a trough)
    _buf: list[tuple[float, float]] = field(default_factory=list)  # since the last trough
    _peak: tuple[float, float] | None = None
    _trough_before: tuple[float, float] | None = None
    _start_s: float | None = None
    _done: list[Repetition] = field(default_factory=list)
    _min: tuple[float, float] | None = None  # running extremes of the current search
    _max: tuple[float, float] | None = None
    _min_before_max: tuple[float, float] | None = None
    max_buffer: int = 20_000  # samples kept for start/end times (200 s at 100 Hz)

    def update(self, time_s: Array, angle_deg: Array) -> list[Repetition]:
        """Feed angles; returns the repetitions completed (peak and the trough after known)."""
        out = []
        p = self.params
        for t, a in zip(time_s.tolist(), angle_deg.tolist(), strict=True):
            self._hi, self._lo = max(self._hi, a), min(self._lo, a)
            thr = max(p.min_prominence_deg, p.relative_prominence * (self._hi - self._lo))
            self._buf.append((t, a))
            if len(self._buf) > self.max_buffer:  # a very long pause: forget its oldest part
                del self._buf[: len(self._buf) - self.max_buffer]
            if self._up:
                if self._min is None or a < self._min[1]:
                    self._min = (t, a)
                if self._max is None or a > self._max[1]:
                    self._max = (t, a)
                    self._min_before_max = self._min
                pk, tr = self._max, self._min_before_max
                assert tr is not None
                if pk[1] - a >= thr and pk[1] - tr[1] >= thr:
                    tol = self.tolerance * thr
                    self._start_s = max(
                        x[0] for x in self._buf if x[0] <= pk[0] and x[1] <= tr[1] + tol
                    )
                    self._peak, self._trough_before = pk, tr
                    self._buf = [x for x in self._buf if x[0] >= pk[0]]
                    self._up = False
                    self._min = self._max = self._min_before_max = None
            else:
                if self._min is None or a < self._min[1]:
                    self._min = (t, a)
                tr = self._min
                if a - tr[1] >= thr:
                    out.append(self._complete(tr, thr))
                    self._buf = [x for x in self._buf if x[0] >= tr[0]]
                    self._up = True
                    # the new search starts from that trough
                    self._min = self._max = self._min_before_max = None
                    for x in self._buf:
                        if self._min is None or x[1] < self._min[1]:
                            self._min = x
                        if self._max is None or x[1] > self._max[1]:
                            self._max = x
                            self._min_before_max = self._min
        return out

    def finish(self) -> list[Repetition]:
        """End of the trial: a peak awaiting its trough completes with the lowest angle since."""
        if self._up or self._peak is None:
            return []
        thr = max(
            self.params.min_prominence_deg, self.params.relative_prominence * (self._hi - self._lo)
        )
        rep = self._complete(min(self._buf, key=lambda x: x[1]), thr)
        self._up = True
        self._min = self._max = self._min_before_max = None
        return [rep]

    def _complete(self, trough_after: tuple[float, float], thr: float) -> Repetition:
        assert self._peak is not None
        assert self._trough_before is not None
        assert self._start_s is not None
        tol = self.tolerance * thr
        end = min(
            x[0] for x in self._buf if x[0] <= trough_after[0] and x[1] <= trough_after[1] + tol
        )
        start_s, peak, base = self._start_s, self._peak, self._trough_before[1]
        if self._done and peak[0] - self._done[-1].peak_s < self.params.min_separation_s:
            # too close to the previous peak: one repetition that wobbled; merge them
            prev = self._done.pop()
            start_s, base = prev.start_s, prev.peak_deg - prev.rom_deg
            peak = max(peak, (prev.peak_s, prev.peak_deg), key=lambda x: x[1])
        rep = self._judge(Repetition(start_s, peak[0], end, peak[1], peak[1] - base))
        self._done.append(rep)
        self._peak = self._trough_before = self._start_s = None
        return rep

    @property
    def repetitions(self) -> list[Repetition]:
        return list(self._done)

    def _judge(self, rep: Repetition) -> Repetition:
        pr = self.prescription
        if pr is None:
            return rep
        reasons = []
        if pr.target_rom_deg is not None and rep.rom_deg < pr.target_rom_deg:
            reasons.append("too_small")
        if pr.max_rom_deg is not None and rep.peak_deg > pr.max_rom_deg:
            reasons.append("past_limit")
        if pr.min_rep_s is not None and rep.end_s - rep.start_s < pr.min_rep_s:
            reasons.append("too_fast")
        return Repetition(
            rep.start_s,
            rep.peak_s,
            rep.end_s,
            rep.peak_deg,
            rep.rom_deg,
            not reasons,
            tuple(reasons),
        )


def count_reps(
    time_s: Array,
    angle_deg: Array,
    params: RepParams | None = None,
    prescription: Prescription | None = None,
) -> list[Repetition]:
    rc = RepCounter(params or RepParams(), prescription)
    rc.update(time_s, angle_deg)
    rc.finish()
    return rc.repetitions  # (a merge may have replaced one already returned)


def group_sets(reps: list[Repetition], gap_s: float) -> list[list[Repetition]]:
    sets: list[list[Repetition]] = []
    for r in reps:
        if sets and r.start_s - sets[-1][-1].end_s <= gap_s:
            sets[-1].append(r)
        else:
            sets.append([r])
    return sets


def summarize(
    time_s: Array,
    angle_deg: Array,
    reps: list[Repetition],
    prescription: Prescription | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rom_deg": round(float(np.max(angle_deg) - np.min(angle_deg)), 2)
        if len(angle_deg)
        else None,
        "peak_deg": round(float(np.max(angle_deg)), 2) if len(angle_deg) else None,
        "rep_count": len(reps),
        "repetitions": [r.as_dict() for r in reps],
        "algorithm_version": ALGORITHM_VERSION,
    }
    if prescription is not None:
        sets = group_sets(reps, prescription.set_gap_s)
        out["sets"] = [{"reps": len(s), "correct": sum(1 for r in s if r.correct)} for s in sets]
        out["correct_count"] = sum(1 for r in reps if r.correct)
    return out


# --- live scores (the analysis contract) ---


@dataclass(frozen=True)
class LiveJointParams:
    """Parameters of the live joint scores. ``rate_hz``: how often ``joint_live`` gets a
    point; the prescription's ROM limits travel with each point for the console."""

    joint: str = "knee"
    hinge: HingeParams = field(default_factory=HingeParams)
    reps: RepParams = field(default_factory=RepParams)
    target_rom_deg: float | None = None
    max_rom_deg: float | None = None
    min_rep_s: float | None = None
    rate_hz: float = 20.0
    uncertain_below: float = 0.5  # axis_confidence under this flags "axis_uncertain"

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> LiveJointParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown joint score parameter(s): {', '.join(unknown)}")
        return cls(**dict(overrides))

    @property
    def prescription(self) -> Prescription | None:
        if self.target_rom_deg is None and self.max_rom_deg is None and self.min_rep_s is None:
            return None
        return Prescription(self.target_rom_deg, self.max_rom_deg, self.min_rep_s)


def _rep_to_state(r: Repetition) -> dict[str, Any]:
    return {**asdict(r), "reasons": list(r.reasons)}


def _rep_from_state(d: dict[str, Any]) -> Repetition:
    return Repetition(**{**d, "reasons": tuple(d["reasons"])})


def _counter_state(rc: RepCounter) -> dict[str, Any]:
    return {
        "hi": rc._hi,
        "lo": rc._lo,
        "up": rc._up,
        "buf": [list(x) for x in rc._buf],
        "peak": rc._peak,
        "trough_before": rc._trough_before,
        "start_s": rc._start_s,
        "done": [_rep_to_state(r) for r in rc._done],
        "min": rc._min,
        "max": rc._max,
        "min_before_max": rc._min_before_max,
    }


def _pair(x: Any) -> tuple[float, float] | None:
    return None if x is None else (float(x[0]), float(x[1]))


def _set_counter_state(rc: RepCounter, s: dict[str, Any]) -> None:
    rc._hi, rc._lo, rc._up = float(s["hi"]), float(s["lo"]), bool(s["up"])
    rc._buf = [(float(a), float(b)) for a, b in s["buf"]]
    rc._peak, rc._trough_before = _pair(s["peak"]), _pair(s["trough_before"])
    rc._start_s = None if s["start_s"] is None else float(s["start_s"])
    rc._done = [_rep_from_state(d) for d in s["done"]]
    rc._min, rc._max = _pair(s["min"]), _pair(s["max"])
    rc._min_before_max = _pair(s["min_before_max"])


class _LiveJointBase:
    """The hinge angle and repetition counter shared by both live joint scores."""

    roles: ClassVar[tuple[str, ...]] = ("proximal", "distal")

    def __init__(self, params: LiveJointParams, period_s: float) -> None:
        self.params = params
        self.period_s = period_s
        self._angle = HingeAngle(params.hinge)
        self._reps = RepCounter(params.reps, params.prescription)
        self._t0: float | None = None  # the trial's first sample

    def _angles(self, chunk: Chunk | None) -> tuple[Array, Array, Array]:
        """Angles, their times and axis confidences for this chunk (None: the end)."""
        if chunk is None:
            t, a = self._angle.finish()
            return t, a, self._angle.confidence_
        p, d = chunk["proximal"], chunk["distal"]
        if p.gyr is None or d.gyr is None:
            raise ValueError("joint angles need a gyroscope on both sensors")
        if p.n_samples and self._t0 is None:
            self._t0 = float(p.time_s[0])
        t, a = self._angle.update(p.time_s, p.acc, p.gyr, d.acc, d.gyr)
        return t, a, self._angle.confidence_

    def _flags(self, confidence: float) -> tuple[str, ...]:
        return ("axis_uncertain",) if confidence < self.params.uncertain_below else ()

    def _base_state(self) -> dict[str, Any]:
        return {
            "angle": self._angle.get_state(),
            "reps": pack(_counter_state(self._reps)),
            "t0": self._t0,
        }

    def _set_base_state(self, state: dict[str, Any]) -> None:
        self._angle = HingeAngle(self.params.hinge)
        self._angle.set_state(state["angle"])
        self._reps = RepCounter(self.params.reps, self.params.prescription)
        _set_counter_state(self._reps, unpack(state["reps"]))
        self._t0 = state["t0"]


class LiveJointAngle(_LiveJointBase):
    """``joint_live`` points: the angle at ``rate_hz`` (every n-th sample whose angle is
    known, counted from the trial's start, so any chunking gives the same points), with
    the axis confidence and the repetitions counted so far."""

    def __init__(self, params: LiveJointParams, period_s: float) -> None:
        super().__init__(params, period_s)
        self._step = max(1, round(1.0 / (params.rate_hz * period_s)))
        self._n_out = 0  # angles produced so far

    def _records(self, t: Array, a: Array, conf: Array) -> list[Record]:
        idx = np.flatnonzero((self._n_out + np.arange(len(t))) % self._step == 0)
        self._n_out += len(t)
        p = self.params
        out = []
        lo = 0
        for i in idx.tolist():
            # count repetitions up to this very sample, so chunking cannot change the count
            self._reps.update(t[lo : i + 1], a[lo : i + 1])
            lo = i + 1
            out.append(
                Record(
                    "joint_live",
                    float(t[i]),
                    {
                        "angle_deg": round(float(a[i]), 3),
                        "axis_confidence": round(float(conf[i]), 3),
                        "rep_count": len(self._reps.repetitions),
                        "target_rom_deg": p.target_rom_deg,
                        "max_rom_deg": p.max_rom_deg,
                    },
                    ALGORITHM_VERSION,
                    self._flags(float(conf[i])),
                    {"joint": p.joint},
                )
            )
        self._reps.update(t[lo:], a[lo:])
        return out

    def update(self, chunk: Chunk) -> list[Record]:
        return self._records(*self._angles(chunk))

    def finish(self) -> list[Record]:
        return self._records(*self._angles(None))

    def get_state(self) -> dict[str, Any]:
        return {**self._base_state(), "n_out": self._n_out}

    def set_state(self, state: dict[str, Any]) -> None:
        self._set_base_state(state)
        self._n_out = int(state["n_out"])


class LiveRepetitions(_LiveJointBase):
    """One ``repetition`` point per repetition, at its peak, as soon as it is complete
    (times in seconds since the trial's first sample). A repetition that merges with the
    one before (peaks closer than ``min_separation_s``) comes again under that index."""

    def _records(self, reps: list[Repetition], conf: Array, t: Array) -> list[Record]:
        out = []
        t0 = self._t0 or 0.0
        for r in reps:
            index = next(
                (k + 1 for k, x in enumerate(self._reps.repetitions) if x.peak_s == r.peak_s),
                len(self._reps.repetitions),
            )
            fields_: dict[str, FieldValue] = {
                "index": index,
                "start_s": round(r.start_s - t0, 3),
                "end_s": round(r.end_s - t0, 3),
                "duration_s": round(r.end_s - r.start_s, 3),
                "peak_deg": round(r.peak_deg, 3),
                "rom_deg": round(r.rom_deg, 3),
            }
            if r.correct is not None:
                fields_["correct"] = r.correct
                fields_["reasons"] = ",".join(r.reasons)
            # the axis confidence in force at the repetition's peak
            k = int(np.searchsorted(t, r.peak_s)) if len(t) else 0
            c = float(conf[min(k, len(conf) - 1)]) if len(conf) else self._angle.axis_confidence
            out.append(
                Record(
                    "repetition",
                    r.peak_s,
                    fields_,
                    ALGORITHM_VERSION,
                    self._flags(c),
                    {"joint": self.params.joint},
                )
            )
        return out

    def update(self, chunk: Chunk) -> list[Record]:
        t, a, conf = self._angles(chunk)
        return self._records(self._reps.update(t, a), conf, t)

    def finish(self) -> list[Record]:
        t, a, conf = self._angles(None)
        return self._records(self._reps.update(t, a) + self._reps.finish(), conf, t)

    def get_state(self) -> dict[str, Any]:
        return self._base_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._set_base_state(state)


def _period_s(overrides: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    o = dict(overrides)
    return float(o.pop("period_s", 0.01)), o


def _make_angle(overrides: Mapping[str, Any]) -> LiveJointAngle:
    period_s, o = _period_s(overrides)
    return LiveJointAngle(LiveJointParams.from_overrides(o), period_s)


def _make_reps(overrides: Mapping[str, Any]) -> LiveRepetitions:
    period_s, o = _period_s(overrides)
    return LiveRepetitions(LiveJointParams.from_overrides(o), period_s)


register(
    ScoreSpec("joint_angle", _make_angle, ("proximal", "distal"), "joint_live", HINGE_EXERCISES)
)
register(
    ScoreSpec(
        "joint_repetitions", _make_reps, ("proximal", "distal"), "repetition", HINGE_EXERCISES
    )
)
