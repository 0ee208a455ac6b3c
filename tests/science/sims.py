"""Independent simulations of a lower-back (L5) sensor for the STEADI and sway checks.

Written for these tests and apart from ``collector/virtual.py`` (the demo's simulator), so the
analysis is not only checked against the generator it was developed on. Motion is described
in the world (ENU, z up) at 1 kHz: the trunk's heading, pitch and roll as Euler angles and the
sensor's position; the IMU signals follow by physics (specific force = p'' + g up, rotated into
the sensor frame; angular rate from successive orientations), then are sampled at the
recording rate with white noise, a constant gyro bias and an arbitrary small mounting tilt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

Array = npt.NDArray[np.float64]
G = 9.80665
FINE_HZ = 1000.0
# sensor axes in the trunk frame (x forward, y left, z up): face (+z) backwards, +y up
SENSOR_IN_TRUNK = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
AP_AXIS = "-z"


@dataclass(frozen=True)
class Imu:
    time_s: Array
    acc: Array
    gyr: Array
    truth: dict[str, float | list[float]] = field(default_factory=dict)


def smoothstep(x: Array) -> Array:
    """0 -> 1 along a half cosine (zero slope at both ends)."""
    s = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * s)


def min_jerk(x: Array) -> Array:
    s = np.clip(x, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def hann_turn(x: Array) -> Array:
    """0 -> 1 with a raised-cosine (Hann) rate: another smooth turn profile."""
    s = np.clip(x, 0.0, 1.0)
    return s - np.sin(2 * np.pi * s) / (2 * np.pi)


def bump(x: Array) -> Array:
    """0 -> 1 -> 0 over x in [0, 1] (sin², zero slope at the ends)."""
    s = np.clip(x, 0.0, 1.0)
    return np.sin(np.pi * s) ** 2


def sample(
    t_fine: Array,
    yaw: Array,
    pitch: Array,
    roll: Array,
    pos: Array,
    *,
    rng: np.random.Generator,
    rate_hz: float = 100.0,
    mount_tilt_deg: float = 6.0,
    acc_noise: float = 0.02,
    gyr_noise: float = 0.004,
    gyr_bias: float = 0.005,
    truth: dict[str, float | list[float]] | None = None,
) -> Imu:
    """IMU signals of a sensor at ``pos`` on a trunk with these Euler angles (rad)."""
    h = t_fine[1] - t_fine[0]
    trunk = Rotation.from_euler("ZYX", np.column_stack([yaw, pitch, roll]))
    tilt = Rotation.from_rotvec(rng.standard_normal(3) / np.sqrt(3) * math.radians(mount_tilt_deg))
    mount = Rotation.from_matrix(SENSOR_IN_TRUNK) * tilt
    r = trunk * mount  # sensor -> world
    vel = np.gradient(pos, h, axis=0)
    accel = np.gradient(vel, h, axis=0)
    f_world = accel + np.array([0.0, 0.0, G])
    acc = r.inv().apply(f_world)
    # body angular rate from the orientations one step either side
    rel = r[:-2].inv() * r[2:]
    gyr_mid = rel.as_rotvec() / (2 * h)
    gyr = np.vstack([gyr_mid[:1], gyr_mid, gyr_mid[-1:]])
    step = round(FINE_HZ / rate_hz)
    idx = np.arange(0, len(t_fine), step)
    t = t_fine[idx]
    n = len(idx)
    bias = rng.uniform(-gyr_bias, gyr_bias, 3)
    return Imu(
        t,
        acc[idx] + rng.normal(0, acc_noise, (n, 3)),
        gyr[idx] + bias + rng.normal(0, gyr_noise, (n, 3)),
        dict(truth or {}),
    )


def _walk_wobble(t: Array, walking: Array, step_hz: float, rng: np.random.Generator):
    """Gait oscillations of the pelvis: vertical bounce at the step frequency, lateral sway,
    yaw rotation and roll at the stride frequency; ``walking`` (0..1) fades them."""
    ph = rng.uniform(0, 2 * np.pi)
    bounce = 0.022 * np.cos(2 * np.pi * step_hz * t + ph) * walking
    lateral = 0.02 * np.sin(np.pi * step_hz * t + ph) * walking
    yaw = math.radians(4.0) * np.sin(np.pi * step_hz * t + ph + 0.5) * walking
    roll = math.radians(2.5) * np.sin(np.pi * step_hz * t + ph + 1.0) * walking
    pitch = math.radians(1.5) * np.cos(2 * np.pi * step_hz * t + ph) * walking
    return bounce, lateral, yaw, pitch, roll


def tug(
    rng: np.random.Generator,
    *,
    speed_m_s: float = 1.0,
    turn_s: float = 2.0,
    turn_profile: str = "min_jerk",
    rise_s: float = 1.6,
    sit_s: float = 2.2,
    lead_s: float = 3.0,
    tail_s: float = 3.0,
    walk_m: float = 3.0,
    rate_hz: float = 100.0,
) -> Imu:
    """Timed Up and Go. Truth: ``duration_s`` (rise onset to seated), ``turn_s`` (the first
    turn's heading change, start to end), ``onset_s``."""
    ramp_s = 0.6  # walking speeds up and slows down over this
    walk_s = walk_m / speed_m_s + ramp_s
    e = np.cumsum([lead_s, rise_s, walk_s, turn_s, walk_s, sit_s, tail_s])
    t = np.arange(round(e[-1] * FINE_HZ)) / FINE_HZ
    # rise: trunk leans forward, then the hips lift; sit: the reverse, turning as well
    tau_r = (t - e[0]) / rise_s
    tau_s = (t - e[4]) / sit_s
    pitch = math.radians(38) * bump(tau_r / 0.8) + math.radians(30) * bump((tau_s - 0.25) / 0.75)
    # seated: leaning back a little, straightening as the rise begins and again when seated
    pitch -= math.radians(4) * (1 - smoothstep(tau_r / 0.3) + smoothstep((tau_s - 0.7) / 0.3))
    height = (
        0.55 + 0.40 * smoothstep((tau_r - 0.3) / 0.7) - 0.40 * smoothstep((tau_s - 0.35) / 0.65)
    )
    # heading: the first turn alone, the second while sitting down (in its first 60 %)
    shape = min_jerk if turn_profile == "min_jerk" else hann_turn
    heading = np.pi * shape((t - e[2]) / turn_s) + np.pi * shape(tau_s / 0.6)
    # speed along the heading: ramps at the ends of each walk
    out = ((t - e[1]) / ramp_s).clip(0, 1) * ((e[2] - t) / ramp_s).clip(0, 1)
    back = ((t - e[3]) / ramp_s).clip(0, 1) * ((e[4] - t) / ramp_s).clip(0, 1)
    walking = smoothstep(out * 2) + smoothstep(back * 2)
    speed = speed_m_s * walking
    bounce, lateral, yaw_w, pitch_w, roll_w = _walk_wobble(t, walking, 1.9, rng)
    h = 1.0 / FINE_HZ
    vx = speed * np.cos(heading)
    vy = speed * np.sin(heading)
    x = np.cumsum(vx) * h + 0.25 * smoothstep(tau_r)
    y = np.cumsum(vy) * h + lateral
    pos = np.column_stack([x, y, height + bounce])
    return sample(
        t,
        heading + yaw_w,
        pitch + pitch_w,
        roll_w,
        pos,
        rng=rng,
        rate_hz=rate_hz,
        truth={"duration_s": float(e[5] - e[0]), "turn_s": turn_s, "onset_s": float(e[0])},
    )


@dataclass(frozen=True)
class Stand:
    rise_s: float = 1.2
    hold_s: float = 0.4
    sit_s: float = 1.3
    seated_s: float = 0.4
    fraction: float = 1.0  # < 1: the stand stops part of the way up


def chair_stand(
    rng: np.random.Generator,
    stands: list[Stand],
    *,
    lead_s: float = 2.0,
    tail_s: float = 2.0,
    rise_m: float = 0.40,
    rate_hz: float = 100.0,
) -> Imu:
    """Repeated sit-to-stand. Truth: ``stand_times_s`` (when each full stand is reached, from
    the recording start) and ``height_fraction`` (a function of time is not JSON-able: the
    rise's height per stand start and end are in ``rise_starts_s``)."""
    total = lead_s + sum(s.rise_s + s.hold_s + s.sit_s + s.seated_s for s in stands) + tail_s
    t = np.arange(round(total * FINE_HZ)) / FINE_HZ
    pitch = np.full_like(t, -math.radians(4))
    height = np.full_like(t, 0.55)
    fwd = np.zeros_like(t)
    full: list[float] = []
    starts: list[float] = []
    t0 = lead_s
    for s in stands:
        up = rise_m * s.fraction
        tau = (t - t0) / s.rise_s
        m = (t >= t0) & (t < t0 + s.rise_s + s.hold_s + s.sit_s)
        tau_sit = (t - t0 - s.rise_s - s.hold_s) / s.sit_s
        pitch[m] += (
            math.radians(36) * bump(tau[m] / 0.8) + math.radians(26) * bump(tau_sit[m])
        ) + math.radians(4) * (smoothstep(tau[m] / 0.5) - smoothstep((tau_sit[m] - 0.6) / 0.4))
        height[m] += up * (smoothstep((tau[m] - 0.3) / 0.7) - smoothstep(tau_sit[m] / 0.85))
        fwd[m] += 0.15 * s.fraction * (smoothstep(tau[m]) - smoothstep(tau_sit[m]))
        starts.append(t0)
        if s.fraction >= 1.0:
            full.append(t0 + s.rise_s)
        t0 += s.rise_s + s.hold_s + s.sit_s + s.seated_s
    pos = np.column_stack([fwd, np.zeros_like(t), height])
    return sample(
        t,
        np.zeros_like(t),
        pitch,
        np.zeros_like(t),
        pos,
        rng=rng,
        rate_hz=rate_hz,
        truth={"stand_times_s": full, "rise_starts_s": starts},
    )


def stance(
    rng: np.random.Generator,
    duration_s: float,
    *,
    sway_deg: float = 0.5,
    step_at_s: float | None = None,
    rate_hz: float = 100.0,
    com_height_m: float = 1.0,
) -> Imu:
    """Quiet standing as an inverted pendulum about the ankles: AP and ML sway angles as
    low-passed noise of RMS ``sway_deg``; the L5 sensor moves with the angle. Optionally a
    step (loss of balance) at ``step_at_s``: a 12 cm lateral lurch with a 15° trunk roll."""
    t = np.arange(round(duration_s * FINE_HZ)) / FINE_HZ
    n = len(t)
    ang = []
    for _ in range(2):
        w = rng.standard_normal(n + 4000)
        k = np.hanning(1501)
        x = np.convolve(w, k / k.sum(), mode="same")[2000 : 2000 + n]
        ang.append(x / np.std(x) * math.radians(sway_deg))
    ap, ml = ang
    roll = ml.copy()
    y = com_height_m * np.sin(ml)
    if step_at_s is not None:
        tau = (t - step_at_s) / 0.5
        y = y + 0.12 * smoothstep(tau)
        roll = roll + math.radians(15) * bump(tau)
    pos = np.column_stack([com_height_m * np.sin(ap), y, com_height_m * np.cos(ap) * np.cos(ml)])
    return sample(
        t,
        np.zeros(n),
        ap,
        -roll,
        pos,
        rng=rng,
        rate_hz=rate_hz,
        truth={"step_at_s": -1.0 if step_at_s is None else step_at_s},
    )
