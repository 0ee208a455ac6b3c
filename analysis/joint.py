"""Joint angles, range of motion and repetitions.

Two sensors on adjacent segments (proximal, distal), each with its VQF orientation (6D: no
magnetometer, so each sensor has its own arbitrary, slowly drifting heading). The relative
rotation R_rel = R_prox^T R_dist is taken relative to a static neutral pose (the first 2 s
by default) and the joint angle is its *twist* about the flexion axis. A heading difference
between the two sensors is a rotation about the vertical, perpendicular to a knee's or
elbow's axis in the usual poses, so it leaves the twist nearly untouched (second order).

The flexion axis is estimated from the movement itself, as the dominant axis of the relative
angular velocity (after Seel, Raisch & Schauer 2014, Sensors 14:6891), so sensors may be
strapped on any which way. Its sign makes the first movement after neutral positive (knee
and elbow exercises start from extension).

One-sensor mode (hip, shoulder): the segment's inclination change from its neutral pose.

Everything is causal and carries its state: ``JointAngle.update`` on chunks gives exactly
the batch result, and so does ``RepCounter``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.orientation import Orientation
from poise.core.rotations import mean_quat, qconj, qmul, qrotate, quat_about_z

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "joint-1.0"
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


@dataclass(frozen=True)
class JointParams:
    neutral_s: float = 2.0  # the static neutral pose at the start defines zero
    axis_rotation_deg: float = 60.0  # estimate the axis once the joint has moved this much
    invert: bool = False  # flip the sign (e.g. an ankle whose first movement is plantarflexion)


def heading_offset_rad(acc_e_p: Array, acc_e_d: Array) -> float:
    """The rotation about the vertical that best maps the distal sensor's horizontal
    accelerations (in its own 6D earth frame) onto the proximal sensor's (2-D Procrustes).
    Two sensors on adjacent segments near one joint accelerate alike, so this resolves the
    heading the two 6D orientations do not share, the 180° ambiguity included."""
    ap, ad = acc_e_p[:, :2], acc_e_d[:, :2]
    cross = float(np.sum(ad[:, 0] * ap[:, 1] - ad[:, 1] * ap[:, 0]))
    dot = float(np.sum(ad[:, 0] * ap[:, 0] + ad[:, 1] * ap[:, 1]))
    return float(np.arctan2(cross, dot))


def _off_axis_share(w: Array) -> float:
    """How much of the angular velocity is not about its dominant axis (0: a pure hinge)."""
    sv = np.linalg.svd(w, compute_uv=False)
    total = float(np.sum(sv**2))
    return float(np.sum(sv[1:] ** 2) / total) if total > 0 else 0.0


def refine_heading_rad(
    coarse: float, q_p: Array, q_d: Array, gyr_p: Array, gyr_d: Array, span_deg: float = 60.0
) -> float:
    """Search around ``coarse`` for the heading offset that makes the relative angular
    velocity most hinge-like (2° grid, then 0.2°)."""
    best = coarse
    for step_deg, half in ((2.0, span_deg), (0.2, 2.0)):
        grid = best + np.radians(np.arange(-half, half + step_deg / 2, step_deg))
        costs = []
        for d in grid:
            q_rel = qmul(qconj(q_p), qmul(quat_about_z(float(d))[None, :], q_d))
            costs.append(_off_axis_share(gyr_d - qrotate(qconj(q_rel), gyr_p)))
        i = int(np.argmin(costs))
        best = float(grid[i])
        if 0 < i < len(grid) - 1:  # the vertex of the parabola through the lowest three
            c0, c1, c2 = costs[i - 1], costs[i], costs[i + 1]
            denom = c0 - 2 * c1 + c2
            if denom > 0:
                best += 0.5 * (c0 - c2) / denom * float(grid[1] - grid[0])
    return best


@dataclass
class JointAngle:
    """Two-sensor hinge joint angle, fed in chunks: ``update(time_s, acc_p, gyr_p, acc_d,
    gyr_d)`` returns (time_s, angle_deg) for every sample whose angle is known. Until the
    joint has moved enough to show its axis (and the heading offset between the two 6D
    orientations), samples are held back; then they are returned together."""

    params: JointParams = field(default_factory=JointParams)
    axis_: Array | None = None  # flexion axis in the distal sensor frame, once known
    heading_offset_rad_: float | None = None  # distal earth frame -> proximal earth frame
    _prox: Orientation = field(default_factory=Orientation, repr=False)
    _dist: Orientation = field(default_factory=Orientation, repr=False)
    _t0: float | None = field(default=None, repr=False)
    _q_neutral: Array | None = field(default=None, repr=False)
    _held: dict[str, list[Array]] = field(default_factory=dict, repr=False)
    _rotated_deg: float = field(default=0.0, repr=False)
    _last_t: float | None = field(default=None, repr=False)

    def update(
        self, time_s: Array, acc_p: Array, gyr_p: Array, acc_d: Array, gyr_d: Array
    ) -> tuple[Array, Array]:
        if len(time_s) == 0:
            return np.empty(0), np.empty(0)
        q_p = self._prox.update(time_s, acc_p, gyr_p)
        q_d = self._dist.update(time_s, acc_d, gyr_d)
        if self._t0 is None:
            self._t0 = float(time_s[0])
        if self.axis_ is not None:
            return time_s.copy(), self._angles(q_p, q_d)
        # Still learning: hold samples back until the joint has turned axis_rotation_deg
        # (relative to the other segment) after the neutral pose. The sample at which that
        # happens is fixed by the data alone, so any chunking learns from the same samples.
        prev_t = self._last_t if self._last_t is not None else float(time_s[0])
        dts = np.diff(np.concatenate([[prev_t], time_s]))
        moving = time_s - self._t0 >= self.params.neutral_s
        turned = self._rotated_deg + np.cumsum(
            np.where(moving, np.degrees(np.linalg.norm(gyr_d - gyr_p, axis=1)) * dts, 0.0)
        )
        self._last_t = float(time_s[-1])
        crossed = np.flatnonzero(turned >= self.params.axis_rotation_deg)
        k = int(crossed[0]) + 1 if crossed.size else len(time_s)
        held = self._held
        for key, arr in (
            ("t", time_s),
            ("q_p", q_p),
            ("q_d", q_d),
            ("gyr_p", gyr_p),
            ("gyr_d", gyr_d),
            ("acc_p", acc_p),
            ("acc_d", acc_d),
        ):
            held.setdefault(key, []).append(np.asarray(arr[:k], dtype=np.float64))
        self._rotated_deg = float(turned[k - 1])
        if not crossed.size:
            return np.empty(0), np.empty(0)
        t_held, a_held = self._learn_and_flush()
        if k == len(time_s):
            return t_held, a_held
        return (
            np.concatenate([t_held, time_s[k:]]),
            np.concatenate([a_held, self._angles(q_p[k:], q_d[k:])]),
        )

    def finish(self) -> tuple[Array, Array]:
        """At the end of a session: the angles of any held samples (the axis is then learnt
        from whatever movement there was)."""
        if self.axis_ is not None or not self._held:
            return np.empty(0), np.empty(0)
        return self._learn_and_flush()

    def _learn_and_flush(self) -> tuple[Array, Array]:
        h = {k: np.concatenate(v) for k, v in self._held.items()}
        self._held = {}
        t = h["t"]
        assert self._t0 is not None
        neutral = t - self._t0 < self.params.neutral_s
        moving = ~neutral
        # 1. heading offset between the two 6D earth frames, from the movement
        acc_e_p = qrotate(h["q_p"], h["acc_p"])
        acc_e_d = qrotate(h["q_d"], h["acc_d"])
        sel = moving if moving.sum() >= 10 else np.ones_like(moving)
        coarse = heading_offset_rad(acc_e_p[sel], acc_e_d[sel])
        # ... refined by the hinge itself: with the right heading, the relative angular
        # velocity turns about one axis only
        self.heading_offset_rad_ = refine_heading_rad(
            coarse, h["q_p"][sel], h["q_d"][sel], h["gyr_p"][sel], h["gyr_d"][sel]
        )
        q_rel = self._q_rel(h["q_p"], h["q_d"])
        # 2. neutral pose
        self._q_neutral = mean_quat(q_rel[neutral]) if neutral.any() else q_rel[0]
        q_dn = qmul(qconj(self._q_neutral)[None, :], q_rel)
        # 3. flexion axis: dominant relative angular velocity, in the distal frame
        w_rel = h["gyr_d"] - qrotate(qconj(q_rel), h["gyr_p"])
        w = w_rel[sel]
        if not np.any(w):
            self.axis_ = np.array([1.0, 0.0, 0.0])
        else:
            _u, _s, vt = np.linalg.svd(w, full_matrices=False)
            axis = vt[0]
            twist = 2 * np.arctan2(q_dn[sel][:, 1:] @ axis, q_dn[sel][:, 0])
            if np.sum(np.sign(twist) * twist**2) < 0:  # the first movement is flexion
                axis = -axis
            self.axis_ = -axis if self.params.invert else axis
        return t, self._twist_deg(q_dn)

    def _q_rel(self, q_p: Array, q_d: Array) -> Array:
        assert self.heading_offset_rad_ is not None
        q_d_aligned = qmul(quat_about_z(self.heading_offset_rad_)[None, :], q_d)
        return qmul(qconj(q_p), q_d_aligned)  # distal -> proximal

    def _angles(self, q_p: Array, q_d: Array) -> Array:
        assert self._q_neutral is not None
        q_dn = qmul(qconj(self._q_neutral)[None, :], self._q_rel(q_p, q_d))
        return self._twist_deg(q_dn)

    def _twist_deg(self, q: Array) -> Array:
        assert self.axis_ is not None
        q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # w >= 0: angles in (-180, 180]
        angle: Array = np.degrees(2 * np.arctan2(q[:, 1:] @ self.axis_, q[:, 0]))
        return angle


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
