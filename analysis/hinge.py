"""Heading-free hinge joint angle from two 6D IMUs (knee, elbow, ankle).

Without magnetometers each sensor's orientation has its own unknown, drifting heading, and
with one segment still the heading offset between the two cannot be observed at all. The
method here never needs it (after Seel, Raisch & Schauer 2014, Sensors 14:6891):

1. **Joint axis per sensor.** For a hinge, the angular velocities of the two segments differ
   only by a rotation about the joint axis, so ``|w1 x j1| = |w2 x j2|`` at every sample,
   where ``j1``/``j2`` is the axis in each sensor's frame (Seel 2014, eq. 1). Earth's up
   direction ``u`` seen from each sensor is also turned only about the axis, so
   ``u1 . j1 = u2 . j2`` (the accelerometer constraint of Olsson et al. 2020 in the form
   that needs no sensor-to-joint offsets, since ``u`` comes from VQF). Both residuals are
   minimised over the two unit vectors by SciPy's ``least_squares`` (trust-region
   Gauss-Newton, a robust soft-L1 loss, an analytic Jacobian). The fit is repeated each
   time the relative motion seen so far doubles, from the previous axes, and its covariance
   gives ``fit_.sd_deg`` and ``axis_confidence``.
2. **Angle.** Seen in the plane perpendicular to its axis, earth's up direction turns by
   exactly the hinge angle more in the distal sensor than in the proximal one. So the angle
   is the azimuth of ``u1`` about ``j1`` minus that of ``u2`` about ``j2``; ``u`` is each
   sensor's VQF inclination (gyroscope and accelerometer fused, gyro bias estimated). No
   heading enters. The angle is 0 at the neutral pose (the first ``neutral_s``).

What it cannot see: when the hinge axis is vertical the up direction carries no angle (not
flagged yet); with the proximal segment still, its axis is not observable, but then it does
not matter (its up direction does not move); and for motion in one vertical plane the
pairing of the two axes' signs rests on the horizontal accelerations the two sensors share
(``pairing_score``); thigh and shank turning in fixed proportion in one plane leave the
axes nearly unobservable (docs/metrics.md).

Streaming equals batch: every decision (when to fit, which samples are evidence) is fixed by
sample counts and the data, never by how the stream was chunked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from analysis.contract import pack, unpack
from analysis.orientation import Orientation, vertical_in_sensor

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "hinge-2.0"
GRAVITY_M_S2 = 9.81
# the up-direction residual (dimensionless) weighs as much as a gyro residual of this rate
INCL_WEIGHT_RAD_S = 1.0
# VQF for the up direction: a shorter accelerometer time constant than VQF's default (3 s)
# and a wider initial gyro-bias uncertainty, so that a bias of up to 1 °/s is learnt within
# seconds even when the segment never rests (measured on tests/simulators/hinge.py)
VQF_PARAMS = {"tauAcc": 2.0, "biasSigmaInit": 2.0}
# a refit reverses the pairing of the axes' signs only on this much contrary evidence
PAIRING_FLIP_SCORE = 5.0
# both pairing signals this strong, and opposed: the pairing is in doubt
AMBIGUOUS_T = 3.0
# the axis tilts clearly more than the orientations' error (sd of u . j, about 2°)
TILT_SD_CLEAR = 0.035
# a refit reverses the flexion sign only when the movement seen is this one-sided the other way
SIGN_FLIP_BALANCE = 0.5
# robust loss for the axis fit: residuals beyond 0.05 rad/s (moments that are no hinge
# motion, such as impacts) count less than quadratically (chosen on tests/data/joint)
LOSS = "soft_l1"
F_SCALE = 0.05


@dataclass(frozen=True)
class HingeParams:
    neutral_s: float = 2.0  # the static neutral pose at the start defines zero
    first_fit_deg: float = 90.0  # rotation seen before the first axis fit
    refit_growth: float = 2.0  # refit each time the relative rotation seen has grown so much
    motion_threshold_rad_s: float = 0.1  # a sample is evidence when a segment turns faster
    relative_threshold_rad_s: float = 0.15  # relative rotation counts above this rate
    max_evidence: int = 1000  # samples kept for the fit (thinned evenly beyond that)
    invert: bool = False  # for a joint that moves mostly against flexion (ankle plantarflexion)


@dataclass(frozen=True)
class AxisFit:
    j1: Array  # axis in the proximal sensor frame
    j2: Array  # axis in the distal sensor frame
    sd_deg: float  # the axes' standard deviation that matters for the angle
    confidence: float  # 0..1
    n_samples: int


def _cross(a: Array, b: Array) -> Array:
    """The cross product of two 3-vectors (np.cross costs ~20 µs per call on small inputs)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _basis(j: Array) -> tuple[Array, Array]:
    """Two unit vectors completing ``j`` to a right-handed frame (x, y, j)."""
    a = np.array([1.0, 0.0, 0.0]) if abs(j[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = _cross(a, j)
    x /= np.linalg.norm(x)
    return x, _cross(j, x)


def _from_tangent(j0: Array, d: Array) -> Array:
    x, y = _basis(j0)
    v = j0 + d[0] * x + d[1] * y
    out: Array = v / np.linalg.norm(v)
    return out


def azimuth_rad(u: Array, j: Array) -> Array:
    """Azimuth of the vectors ``u`` (n, 3) about the axis ``j``, in its fixed basis."""
    x, y = _basis(j)
    out: Array = np.arctan2(u @ y, u @ x)
    return out


def _residuals(j1: Array, j2: Array, w1: Array, w2: Array, u1: Array, u2: Array) -> Array:
    gyr = np.linalg.norm(np.cross(w1, j1), axis=1) - np.linalg.norm(np.cross(w2, j2), axis=1)
    incl = INCL_WEIGHT_RAD_S * (u1 @ j1 - u2 @ j2)
    return np.concatenate([gyr, incl])


def _jacobian(
    j1: Array,
    j2: Array,
    b1: tuple[Array, Array],
    b2: tuple[Array, Array],
    d: Array,
    w1: Array,
    w2: Array,
    u1: Array,
    u2: Array,
) -> Array:
    """d residuals / d tangent parameters, analytically (``_residuals`` at ``_from_tangent``)."""
    cols = []
    for j0, (x, y), dd, w, u, sign in (
        (j1, b1, d[:2], w1, u1, 1.0),
        (j2, b2, d[2:], w2, u2, -1.0),
    ):
        v = j0 + dd[0] * x + dd[1] * y
        nv = float(np.linalg.norm(v))
        j = v / nv
        # gradient of |w x j| with respect to j: (|w|^2 j - (w . j) w) / |w x j|
        cross = np.maximum(np.linalg.norm(np.cross(w, j), axis=1), 1e-9)
        grad = (np.sum(w * w, axis=1)[:, None] * j - (w @ j)[:, None] * w) / cross[:, None]
        for e in (x, y):
            dj = (e - j * float(j @ e)) / nv
            cols.append(sign * np.concatenate([grad @ dj, INCL_WEIGHT_RAD_S * (u @ dj)]))
    return np.stack(cols, axis=1)


def pairing_score(j1: Array, j2: Array, u1: Array, u2: Array, a1: Array, a2: Array) -> float:
    """Evidence that ``j1`` and ``j2`` point the same way along the joint (> 0) or not (< 0).

    Two agreements that hold only for the right pairing, each scored as a t-like statistic
    (sum of products over the root of the sum of squared products: about +-1 for noise, up
    to sqrt(n) for a consistent agreement), then added:

    - the up directions' components along the axis rise and fall together when the axis
      tilts (means removed: a gyro bias tilts VQF's up direction by a degree or two,
      slowly, and that must not decide);
    - the horizontal accelerations in the plane of motion agree, as both sensors share the
      joint's own acceleration (this is all there is for motion in one vertical plane)."""
    return float(sum(pairing_terms(j1, j2, u1, u2, a1, a2)))


def pairing_terms(
    j1: Array, j2: Array, u1: Array, u2: Array, a1: Array, a2: Array
) -> tuple[float, float]:
    """The two t-like statistics of ``pairing_score``: (up directions, accelerations)."""
    along1, along2 = u1 @ j1, u2 @ j2
    h1 = np.sum((a1 / GRAVITY_M_S2 - u1) * np.cross(j1, u1), axis=1)
    h2 = np.sum((a2 / GRAVITY_M_S2 - u2) * np.cross(j2, u2), axis=1)
    out = []
    for x in ((along1 - along1.mean()) * (along2 - along2.mean()), h1 * h2):
        den = float(np.sqrt(np.sum(x**2)))
        out.append(float(np.sum(x)) / den if den > 0 else 0.0)
    return out[0], out[1]


def _principal_axes(w: Array) -> list[Array]:
    if len(w) < 3 or not np.any(w):
        return [np.eye(3)[k] for k in range(3)]
    _u, _s, vt = np.linalg.svd(w, full_matrices=False)
    return [vt[k] for k in range(3)]


def fit_axes(
    w1: Array,
    w2: Array,
    u1: Array,
    u2: Array,
    a1: Array,
    a2: Array,
    prior: tuple[Array, Array] | None = None,
) -> AxisFit:
    """Joint axes from evidence samples (gyr w, VQF up direction u, acc a; each (n, 3))."""
    starts: list[tuple[Array, Array]] = []
    if prior is not None:
        starts.append(prior)  # a refit starts from the axes known so far
    else:
        p1, p2 = _principal_axes(w1), _principal_axes(w2)
        starts += [(a, b) for a in p1 for b in p2[:2]]
    best: tuple[float, Array, Array, Any] | None = None
    for s1, s2 in starts:
        for sign in (1.0, -1.0):
            j1, j2 = sign * s1, s2
            b1, b2 = _basis(j1), _basis(j2)

            def fun(d: Array, j1: Array = j1, j2: Array = j2) -> Array:
                return _residuals(
                    _from_tangent(j1, d[:2]), _from_tangent(j2, d[2:]), w1, w2, u1, u2
                )

            def jac_fn(
                d: Array,
                j1: Array = j1,
                j2: Array = j2,
                b1: tuple[Array, Array] = b1,
                b2: tuple[Array, Array] = b2,
            ) -> Array:
                return _jacobian(j1, j2, b1, b2, d, w1, w2, u1, u2)

            res = least_squares(
                fun, np.zeros(4), jac=jac_fn, method="trf", loss=LOSS, f_scale=F_SCALE
            )
            cost = float(res.cost)
            if best is None or cost < best[0] - 1e-12:
                best = (cost, _from_tangent(j1, res.x[:2]), _from_tangent(j2, res.x[2:]), res)
    assert best is not None
    _cost, j1, j2, res = best
    if prior is not None:  # keep the signs chosen before ...
        j1 = j1 if float(j1 @ prior[0]) >= 0 else -j1
        j2 = j2 if float(j2 @ prior[1]) >= 0 else -j2
    t_incl, t_acc = pairing_terms(j1, j2, u1, u2, a1, a2)
    # an axis that tilts back and forth clearly more than VQF's own error (about 1°) decides
    # the pairing alone; otherwise both signals count, and a contradiction is a doubt
    tilting = min(float(np.std(u1 @ j1)), float(np.std(u2 @ j2))) > TILT_SD_CLEAR
    score = t_incl if tilting else t_incl + t_acc
    if (prior is None and score < 0) or score < -PAIRING_FLIP_SCORE:
        j1 = -j1  # ... unless the evidence now clearly says otherwise
    # covariance of the tangent parameters, s^2 (J^T J + s^2/prior^2)^-1 at the optimum; the
    # prior (a 90° spread) keeps an axis that the motion cannot show (a still segment's) finite
    jac = res.jac
    dof = max(len(res.fun) - 4, 1)
    s2_rad2 = float(np.sum(res.fun**2) / dof)
    cov = s2_rad2 * np.linalg.inv(jac.T @ jac + s2_rad2 / (np.pi / 2) ** 2 * np.eye(4))
    sd1 = float(np.degrees(np.sqrt(max(float(np.max(np.linalg.eigvalsh(cov[:2, :2]))), 0.0))))
    sd2 = float(np.degrees(np.sqrt(max(float(np.max(np.linalg.eigvalsh(cov[2:, 2:]))), 0.0))))
    # the proximal axis matters for the angle only as much as the proximal segment moves
    m1, m2 = float(np.sum(np.linalg.norm(w1, axis=1))), float(np.sum(np.linalg.norm(w2, axis=1)))
    share = m1 / (m1 + m2) if m1 + m2 > 0 else 0.0
    sd = sd2 + share * sd1
    # when the two pairing signals contradict each other, a wrong pairing would err by twice
    # the proximal segment's own turning about its axis: count that as uncertainty
    if not tilting and t_incl * t_acc < 0 and min(abs(t_incl), abs(t_acc)) > AMBIGUOUS_T:
        az1 = np.unwrap(azimuth_rad(u1, j1))
        sd += 2.0 * float(np.degrees(np.std(az1)))
    sd = float(min(sd, 90.0))
    return AxisFit(j1, j2, sd, 1.0 / (1.0 + (sd / 3.0) ** 2), len(w1))


@dataclass
class HingeAngle:
    """Two-sensor hinge angle, fed in chunks: ``update(time_s, acc_p, gyr_p, acc_d, gyr_d)``
    returns (time_s, angle_deg) for every sample whose angle is known. Until the joint has
    moved enough to show its axis, samples are held back; then they are returned together."""

    params: HingeParams = field(default_factory=HingeParams)
    fit_: AxisFit | None = None
    # the axis confidence in force for each angle the last update/finish returned
    confidence_: Array = field(default_factory=lambda: np.empty(0), repr=False)
    _prox: Orientation = field(default_factory=lambda: Orientation(vqf_params=dict(VQF_PARAMS)))
    _dist: Orientation = field(default_factory=lambda: Orientation(vqf_params=dict(VQF_PARAMS)))
    _t0: float | None = field(default=None, repr=False)
    _last_t: float | None = field(default=None, repr=False)
    _neutral_sum: Array = field(default_factory=lambda: np.zeros(6), repr=False)
    _n_neutral: int = field(default=0, repr=False)
    _offset_rad: float = field(default=0.0, repr=False)
    _seen_deg: float = field(default=0.0, repr=False)  # relative rotation seen
    _next_fit_deg: float | None = field(default=None, repr=False)
    _n_motion: int = field(default=0, repr=False)  # evidence candidates so far
    _stride: int = field(default=1, repr=False)
    # a thinned record of the poses held since neutral (up directions), for the flexion sign
    _poses: Array = field(default_factory=lambda: np.empty((0, 6)), repr=False)
    _n_poses: int = field(default=0, repr=False)
    _pose_stride: int = field(default=1, repr=False)
    _bases: tuple[Array, Array, Array, Array] | None = field(default=None, repr=False)
    _evidence: Array = field(default_factory=lambda: np.empty((0, 18)), repr=False)
    _held: Array = field(default_factory=lambda: np.empty((0, 7)), repr=False)  # t, u1, u2

    @property
    def axis_confidence(self) -> float:
        return self.fit_.confidence if self.fit_ is not None else 0.0

    def update(
        self, time_s: Array, acc_p: Array, gyr_p: Array, acc_d: Array, gyr_d: Array
    ) -> tuple[Array, Array]:
        if len(time_s) == 0:
            return np.empty(0), np.empty(0)
        if self._next_fit_deg is None:
            self._next_fit_deg = self.params.first_fit_deg
        u1 = vertical_in_sensor(self._prox.update(time_s, acc_p, gyr_p))
        u2 = vertical_in_sensor(self._dist.update(time_s, acc_d, gyr_d))
        if self._t0 is None:
            self._t0 = float(time_s[0])
        p = self.params
        prev_t = self._last_t if self._last_t is not None else float(time_s[0])
        self._last_t = float(time_s[-1])
        dts = np.diff(np.concatenate([[prev_t], time_s]))
        after = time_s - self._t0 >= p.neutral_s
        neutral = ~after
        if neutral.any():
            self._neutral_sum += np.concatenate([u1[neutral], u2[neutral]], axis=1).sum(axis=0)
            self._n_neutral += int(neutral.sum())
        n1, n2 = np.linalg.norm(gyr_p, axis=1), np.linalg.norm(gyr_d, axis=1)
        cand = after & (np.maximum(n1, n2) > p.motion_threshold_rad_s)
        rows = np.concatenate([gyr_p, gyr_d, u1, u2, acc_p, acc_d], axis=1)
        out_t: list[Array] = []
        out_a: list[Array] = []
        out_c: list[Array] = []
        lo = 0
        n = len(time_s)
        while lo < n:
            # evidence: before the first fit, how far either segment has turned; after it,
            # the relative rotation about the axes, i.e. in the joint's own common frame
            if self.fit_ is None:
                rate = np.where(cand[lo:], np.maximum(n1, n2)[lo:], 0.0)
            else:
                rel = np.abs(gyr_d[lo:] @ self.fit_.j2 - gyr_p[lo:] @ self.fit_.j1)
                rate = np.where(after[lo:] & (rel > p.relative_threshold_rad_s), rel, 0.0)
            seen = self._seen_deg + np.cumsum(np.degrees(rate * dts[lo:]))
            crossed = np.flatnonzero(seen >= self._next_fit_deg)
            hi = lo + int(crossed[0]) + 1 if crossed.size else n
            self._seen_deg = float(seen[hi - lo - 1])
            self._add_evidence(rows[lo:hi][cand[lo:hi]])
            self._add_poses(rows[lo:hi, 6:12][after[lo:hi]])
            if self.fit_ is not None:
                out_t.append(time_s[lo:hi])
                out_a.append(self._angles(u1[lo:hi], u2[lo:hi]))
                out_c.append(np.full(hi - lo, self.axis_confidence))
            else:
                held = np.concatenate([time_s[lo:hi, None], u1[lo:hi], u2[lo:hi]], axis=1)
                self._held = np.concatenate([self._held, held])
            if crossed.size:
                self._refit()
                self._next_fit_deg *= p.refit_growth
                if len(self._held):
                    out_t.append(self._held[:, 0])
                    out_a.append(self._angles(self._held[:, 1:4], self._held[:, 4:7]))
                    out_c.append(np.full(len(self._held), self.axis_confidence))
                    self._held = np.empty((0, 7))
            lo = hi
        if not out_t:
            self.confidence_ = np.empty(0)
            return np.empty(0), np.empty(0)
        self.confidence_ = np.concatenate(out_c)
        return np.concatenate(out_t), np.concatenate(out_a)

    def finish(self) -> tuple[Array, Array]:
        """At the end: the angles of any held samples, from whatever motion there was."""
        self.confidence_ = np.empty(0)
        if self.fit_ is not None or not len(self._held):
            return np.empty(0), np.empty(0)
        if len(self._evidence) < 10:
            return np.empty(0), np.empty(0)  # the joint never moved: no axis, no angle
        self._refit()
        t, a = self._held[:, 0], self._angles(self._held[:, 1:4], self._held[:, 4:7])
        self.confidence_ = np.full(len(t), self.axis_confidence)
        self._held = np.empty((0, 7))
        return t, a

    def _add_poses(self, rows: Array) -> None:
        if not len(rows):
            return
        idx = self._n_poses + np.arange(len(rows))
        self._n_poses += len(rows)
        poses = np.concatenate([self._poses, rows[idx % self._pose_stride == 0]])
        while len(poses) > self.params.max_evidence:
            self._pose_stride *= 2
            poses = poses[::2]
        self._poses = poses

    def _add_evidence(self, rows: Array) -> None:
        if not len(rows):
            return
        idx = self._n_motion + np.arange(len(rows))
        self._n_motion += len(rows)
        ev = np.concatenate([self._evidence, rows[idx % self._stride == 0]])
        while len(ev) > self.params.max_evidence:
            # keep every other kept sample (those at multiples of the doubled stride): what
            # remains depends on the sample count only, never on the chunking
            self._stride *= 2
            ev = ev[::2]
        self._evidence = ev

    def _refit(self) -> None:
        e = self._evidence
        if len(e) < 10:
            return
        prior = (self.fit_.j1, self.fit_.j2) if self.fit_ is not None else None
        fit = fit_axes(e[:, 0:3], e[:, 3:6], e[:, 6:9], e[:, 9:12], e[:, 12:15], e[:, 15:18], prior)
        self.fit_, self._bases = fit, None
        self._set_offset()
        # flexion positive: a hinge joint moves mostly one way from its neutral pose (knee and
        # elbow from extension into flexion), so the sign that makes the movement seen so far
        # mostly positive is flexion (``invert`` for a joint that moves mostly the other way).
        # A refit reverses the sign it inherited only on a clear majority.
        poses = self._poses if len(self._poses) else e[:, 6:12]
        ang = self._angles(poses[:, :3], poses[:, 3:])
        if self.params.invert and prior is None:
            ang = -ang
        balance = float(np.sum(np.sign(ang) * ang**2) / max(float(np.sum(ang**2)), 1e-12))
        if (prior is None and balance < 0) or balance < -SIGN_FLIP_BALANCE:
            self.fit_ = AxisFit(-fit.j1, -fit.j2, fit.sd_deg, fit.confidence, fit.n_samples)
            self._bases = None
            self._set_offset()

    def _set_offset(self) -> None:
        """Zero at the neutral pose, with the current axes."""
        assert self.fit_ is not None
        if self._n_neutral:
            m = self._neutral_sum / self._n_neutral
            un1, un2 = m[None, :3], m[None, 3:]
        else:
            un1, un2 = self._evidence[:1, 6:9], self._evidence[:1, 9:12]
        j1, j2 = self.fit_.j1, self.fit_.j2
        self._offset_rad = float(azimuth_rad(un1, j1)[0] - azimuth_rad(un2, j2)[0])

    def _angles(self, u1: Array, u2: Array) -> Array:
        assert self.fit_ is not None
        if self._bases is None:
            self._bases = (*_basis(self.fit_.j1), *_basis(self.fit_.j2))
        x1, y1, x2, y2 = self._bases
        raw = np.arctan2(u1 @ y1, u1 @ x1) - np.arctan2(u2 @ y2, u2 @ x2) - self._offset_rad
        out: Array = np.degrees(np.angle(np.exp(1j * raw)))
        return out

    # --- state as plain data ---

    def get_state(self) -> dict[str, Any]:
        fit = None
        if self.fit_ is not None:
            f = self.fit_
            fit = {
                "j1": f.j1,
                "j2": f.j2,
                "sd_deg": f.sd_deg,
                "confidence": f.confidence,
                "n_samples": f.n_samples,
            }
        state: dict[str, Any] = pack(
            {
                "fit": fit,
                "prox": _orientation_state(self._prox),
                "dist": _orientation_state(self._dist),
                "t0": self._t0,
                "last_t": self._last_t,
                "neutral_sum": self._neutral_sum,
                "n_neutral": self._n_neutral,
                "offset_rad": self._offset_rad,
                "seen_deg": self._seen_deg,
                "next_fit_deg": self._next_fit_deg,
                "n_motion": self._n_motion,
                "stride": self._stride,
                "poses": self._poses,
                "n_poses": self._n_poses,
                "pose_stride": self._pose_stride,
                "evidence": self._evidence,
                "held": self._held,
            }
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        s = unpack(state)
        f = s["fit"]
        self.fit_ = (
            None
            if f is None
            else AxisFit(f["j1"], f["j2"], f["sd_deg"], f["confidence"], f["n_samples"])
        )
        self._bases = None
        _set_orientation_state(self._prox, s["prox"])
        _set_orientation_state(self._dist, s["dist"])
        self._t0, self._last_t = s["t0"], s["last_t"]
        self._neutral_sum, self._n_neutral = s["neutral_sum"], s["n_neutral"]
        self._offset_rad, self._seen_deg = s["offset_rad"], s["seen_deg"]
        self._next_fit_deg, self._n_motion = s["next_fit_deg"], s["n_motion"]
        self._stride = s["stride"]
        self._poses = s["poses"].reshape(-1, 6) if len(s["poses"]) else np.empty((0, 6))
        self._n_poses, self._pose_stride = s["n_poses"], s["pose_stride"]
        self._evidence = s["evidence"].reshape(-1, 18) if len(s["evidence"]) else np.empty((0, 18))
        self._held = s["held"].reshape(-1, 7) if len(s["held"]) else np.empty((0, 7))


def _orientation_state(o: Orientation) -> dict[str, Any] | None:
    return o.get_state()


def _set_orientation_state(o: Orientation, state: dict[str, Any] | None) -> None:
    o.set_state(state)


def hinge_angle(
    time_s: Array,
    acc_p: Array,
    gyr_p: Array,
    acc_d: Array,
    gyr_d: Array,
    params: HingeParams | None = None,
) -> tuple[Array, Array, HingeAngle]:
    """Batch form: the same computation as feeding ``HingeAngle`` everything at once."""
    ha = HingeAngle(params or HingeParams())
    t1, a1 = ha.update(time_s, acc_p, gyr_p, acc_d, gyr_d)
    t2, a2 = ha.finish()
    return np.concatenate([t1, t2]), np.concatenate([a1, a2]), ha
