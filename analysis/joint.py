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

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.hinge import ALGORITHM_VERSION as HINGE_VERSION
from analysis.hinge import HingeAngle, HingeParams
from analysis.orientation import Orientation
from poise.core.rotations import qconj, qrotate

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = f"joint-2.0+{HINGE_VERSION}"
HINGE_JOINTS = ("knee", "elbow", "ankle")
SEGMENT_JOINTS = ("hip", "shoulder")
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
