"""An independent two-segment hinge simulator for testing joint angles.

Written apart from ``collector/virtual.py`` and from ``analysis/`` (it shares no code with
either): rotations come from SciPy's ``Rotation``, and the IMU signals are differentiated
numerically from poses sampled at 1 kHz, then decimated, so no closed-form shortcut of the
method under test leaks into its test data.

A body of two rigid segments joined by a hinge. The proximal segment is still, sways (a
few degrees about all three axes at balance frequencies, its pivot drifting by
centimetres) or moves (large rotations, turning about the vertical included). Each sensor is
strapped on at a random orientation, 0.2 m from the joint (by default), and reads
specific force and angular velocity in its own frame, with white noise and a constant gyro
bias of a given magnitude in a random direction.

Segment frames: x forward, y to the left, z along the segment towards its proximal end.
The hinge turns about the segment y axis; ``flex_sign`` says which way flexion goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

Array = npt.NDArray[np.float64]
GRAVITY_M_S2 = 9.81
INTERNAL_HZ = 1000.0

# joint -> (proximal segment's base pose in the world, hinge angle at rest (deg, flexion
# positive), flexion direction about segment y, the movement's direction from rest)
JOINTS: dict[str, tuple[Rotation, float, float, float]] = {
    # seated: thigh horizontal, shank hanging at 90° flexion; the exercise extends the knee
    "knee_seated": (Rotation.from_euler("y", -90, degrees=True), 90.0, 1.0, -1.0),
    # standing: thigh vertical, knee straight; a hamstring curl flexes it
    "knee": (Rotation.identity(), 0.0, 1.0, 1.0),
    # upper arm hanging, elbow straight; a curl flexes it
    "elbow": (Rotation.identity(), 0.0, -1.0, 1.0),
    # shank vertical, foot at 90° to it (neutral); dorsiflexion lifts the toes
    "ankle": (Rotation.identity(), 0.0, -1.0, 1.0),
}


@dataclass(frozen=True)
class Scenario:
    joint: str = "knee"
    proximal: str = "still"  # "still", "sway" or "move"
    roms_deg: tuple[float, ...] = (60.0, 60.0, 60.0, 60.0, 60.0)
    rep_s: float = 3.0  # one repetition, out and back
    hold_s: float = 0.5  # at the peak
    pause_s: float = 1.0  # between repetitions
    rest_s: float = 3.0  # still at the start (the neutral pose) and at the end
    rate_hz: float = 100.0
    offset_m: float = 0.2  # sensor distance from the joint, on each segment
    acc_noise_m_s2: float = 0.03
    gyr_noise_rad_s: float = 0.004
    gyr_bias_deg_s: float = 1.0  # magnitude of each sensor's constant bias
    move_deg: float = 35.0  # proximal excursion in "move"
    sway_deg: float = 3.0  # proximal excursion in "sway"


@dataclass
class SimResult:
    time_s: Array
    acc_p: Array
    gyr_p: Array
    acc_d: Array
    gyr_d: Array
    angle_deg: Array  # truth: the change from rest, positive in the movement's direction
    rep_peak_s: list[float] = field(default_factory=list)
    mount_p: Rotation = field(default_factory=Rotation.identity)
    mount_d: Rotation = field(default_factory=Rotation.identity)


def _smooth_step(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    out: Array = 0.5 - 0.5 * np.cos(np.pi * x)
    return out


def angle_profile(sc: Scenario, t: Array) -> tuple[Array, list[float]]:
    """Change from rest (deg, >= 0) and the times of the repetitions' peaks."""
    out = np.zeros_like(t)
    peaks = []
    start = sc.rest_s
    half = (sc.rep_s - sc.hold_s) / 2
    for rom in sc.roms_deg:
        up = _smooth_step((t - start) / half)
        down = _smooth_step((t - start - half - sc.hold_s) / half)
        out += rom * (up - down)
        peaks.append(start + half + sc.hold_s / 2)
        start += sc.rep_s + sc.pause_s
    return out, peaks


def duration_s(sc: Scenario) -> float:
    return 2 * sc.rest_s + len(sc.roms_deg) * (sc.rep_s + sc.pause_s)


def _proximal_motion(
    sc: Scenario, t: Array, move: Array, rng: np.random.Generator
) -> tuple[Rotation, Array]:
    """Rotation of the proximal segment relative to its base pose, and its pivot's position."""
    n = len(t)
    if sc.proximal == "still":
        return Rotation.from_rotvec(np.zeros((n, 3))), np.zeros((n, 3))
    if sc.proximal == "sway":
        rv = np.zeros((n, 3))
        pos = np.zeros((n, 3))
        for k in range(3):
            # postural sway: most of its power lies below 1 Hz
            for f_hz in (0.1 + 0.2 * rng.random(), 0.3 + 0.4 * rng.random()):
                ph = rng.uniform(0, 2 * np.pi)
                rv[:, k] += np.radians(sc.sway_deg / 2) * np.sin(2 * np.pi * f_hz * t + ph)
                pos[:, k] += 0.01 * np.sin(2 * np.pi * f_hz * 0.7 * t + ph + 1.0)
        return Rotation.from_rotvec(rv), pos
    if sc.proximal == "move":
        # a large swing in the sagittal plane tied to the exercise (as in a squat or a heel
        # slide), a side-to-side component, and a turn about the vertical
        # the proximal segment follows the exercise a little late and not in proportion
        # (real limbs never move in exact proportion; exactly proportional motion in one
        # plane leaves the two axes unobservable, see docs/metrics.md)
        lag = np.interp(t - 0.25, t, move) / max(*sc.roms_deg, 1e-9)
        pitch = np.radians(sc.move_deg) * (lag + 0.3 * np.sin(np.pi * lag) ** 2)
        roll = np.radians(8.0) * np.sin(2 * np.pi * 0.35 * t) * _smooth_step(t - sc.rest_s)
        frac = move / max(*sc.roms_deg, 1e-9)
        yaw = np.radians(40.0) * _smooth_step((t - sc.rest_s) / (duration_s(sc) - 2 * sc.rest_s))
        z, y, x = (np.outer(a, e) for a, e in zip((yaw, pitch, roll), np.eye(3)[::-1], strict=True))
        r = Rotation.from_rotvec(z) * Rotation.from_rotvec(y) * Rotation.from_rotvec(x)
        pos = np.stack([0.1 * np.sin(pitch), np.zeros(n), -0.15 * frac], axis=1)
        return r, pos
    raise ValueError(f"proximal must be still, sway or move, not {sc.proximal!r}")


def simulate(sc: Scenario, rng: np.random.Generator) -> SimResult:
    base, rest_deg, flex_sign, move_sign = JOINTS[sc.joint]
    dt = 1.0 / INTERNAL_HZ
    n = round(duration_s(sc) * INTERNAL_HZ) + 1
    t = np.arange(n) * dt
    change_deg, peaks = angle_profile(sc, t)
    flex_deg = rest_deg + move_sign * change_deg
    rot_p_rel, pivot = _proximal_motion(sc, t, change_deg, rng)
    heading = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi))
    r_p = heading * rot_p_rel * base  # proximal segment -> world
    hinge = Rotation.from_rotvec(np.outer(np.radians(flex_sign * flex_deg), [0.0, 1.0, 0.0]))
    r_d = r_p * hinge  # distal segment -> world (the segments align at zero flexion)
    seg_len_m = 0.4
    joint_pos = heading.apply(pivot) + r_p.apply([0.0, 0.0, -seg_len_m])
    mount_p, mount_d = Rotation.random(random_state=rng), Rotation.random(random_state=rng)
    lever = np.array([0.03, 0.0, sc.offset_m])  # a sensor a little in front of the bone
    pos_p = joint_pos + r_p.apply(lever)
    pos_d = joint_pos + r_d.apply(lever * [1.0, 1.0, -1.0])
    s_p, s_d = r_p * mount_p, r_d * mount_d  # sensor -> world
    step = round(INTERNAL_HZ / sc.rate_hz)
    idx = np.arange(1, n - 1, step)
    out = []
    for s, pos in ((s_p, pos_p), (s_d, pos_d)):
        # body angular velocity by central differences of the orientation
        d_rot = s[idx - 1].inv() * s[idx + 1]
        gyr = d_rot.as_rotvec() / (2 * dt)
        acc_w = (pos[idx + 1] - 2 * pos[idx] + pos[idx - 1]) / dt**2
        acc = s[idx].inv().apply(acc_w + np.array([0.0, 0.0, GRAVITY_M_S2]))
        bias = rng.normal(size=3)
        bias *= np.radians(sc.gyr_bias_deg_s) / np.linalg.norm(bias)
        m = len(idx)
        acc = acc + rng.normal(scale=sc.acc_noise_m_s2, size=(m, 3))
        gyr = gyr + bias + rng.normal(scale=sc.gyr_noise_rad_s, size=(m, 3))
        out.append((acc, gyr))
    time_s = t[idx] - t[idx[0]]
    return SimResult(
        time_s,
        out[0][0],
        out[0][1],
        out[1][0],
        out[1][1],
        change_deg[idx],
        [p - t[idx[0]] for p in peaks],
        mount_p,
        mount_d,
    )
