"""Virtual sensors: a simulated patient whose IMUs emit device-native BLE notifications.

The motion is built from segment orientations and positions (so accelerometer and gyroscope
agree with each other and with the ground truth kept alongside), then encoded in a firmware
profile's own packet layout and cut into notifications with BLE-like timing (connection
events, bursts, jitter). Those bytes go through the same decoder, clock model and framer as
a real sensor's.

Pure: every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from poise.core.channels import G
from poise.core.rotations import axis_angle_matrix, matrix_to_quat, rotmat_y, rotmat_z

Array = npt.NDArray[np.float64]
PLACEMENTS = ("lower_back", "thigh", "shank")
ACTIVITIES = ("quiet_stance", "knee_flexion", "sit_to_stand", "walking")


@dataclass(frozen=True)
class SensorTrace:
    """What one sensor measured (sensor frame, SI units) and the truth behind it."""

    time_s: Array
    acc: Array  # (n, 3) m/s²
    gyr: Array  # (n, 3) rad/s
    quat_wxyz: Array  # (n, 4) sensor-to-earth (ENU), ground truth
    truth: dict[str, Array] = field(default_factory=dict)  # e.g. knee_angle_deg


def imu_from_motion(
    time_s: Array, r_earth: Array, pos_earth: Array, mount: Array
) -> tuple[Array, Array, Array]:
    """Ideal IMU readings of a sensor fixed to a moving segment.

    r_earth (n,3,3): segment-to-earth rotation; pos_earth (n,3) m: sensor position;
    mount (3,3): sensor-to-segment rotation. Returns acc (specific force, m/s²) and gyr
    (rad/s) in the sensor frame, and the sensor-to-earth rotations."""
    r_s = r_earth @ mount
    dt = np.gradient(time_s)
    acc_lin = np.gradient(np.gradient(pos_earth, time_s, axis=0), time_s, axis=0)
    f_earth = acc_lin + np.array([0.0, 0.0, G])
    acc = np.einsum("nji,nj->ni", r_s, f_earth)  # R^T f
    # angular velocity in the sensor frame: vee(R^T dR/dt)
    dr = np.gradient(r_s, axis=0) / dt[:, None, None]
    w = np.einsum("nji,njk->nik", r_s, dr)
    gyr = 0.5 * np.stack(
        [w[:, 2, 1] - w[:, 1, 2], w[:, 0, 2] - w[:, 2, 0], w[:, 1, 0] - w[:, 0, 1]], -1
    )
    return acc, gyr, r_s


def _moving_average(x: Array, n: int) -> Array:
    """Centred moving average, the ends padded with their edge values (no edge dip)."""
    half = n // 2
    return np.convolve(np.pad(x, (half, n - 1 - half), mode="edge"), np.ones(n) / n, mode="valid")


def _smooth_noise(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float) -> Array:
    """Gaussian noise low-passed by a moving average ~1/cutoff long, unit RMS."""
    width = max(1, round(fs / cutoff_hz))
    x = np.convolve(rng.standard_normal(n + width), np.ones(width) / width, mode="valid")[:n]
    return x / (np.std(x) or 1.0)


@dataclass(frozen=True)
class PatientParams:
    """How one simulated patient moves. Amplitudes are deliberately clinical-looking."""

    sway_rms_m_s2: float = 0.05  # trunk acceleration at L5 in quiet stance
    knee_rom_deg: float = 90.0
    rep_period_s: float = 3.0
    step_hz: float = 1.8
    mount_tilt_deg: float = 8.0  # sloppy mounting, per sensor, random axis
    gyro_noise_rad_s: float = 0.003
    acc_noise_m_s2: float = 0.02


def simulate_patient(
    rng: np.random.Generator,
    duration_s: float,
    rate_hz: float = 100.0,
    params: PatientParams | None = None,
    activities: tuple[str, ...] = ACTIVITIES,
    activity_s: float = 15.0,
) -> dict[str, SensorTrace]:
    """Three sensors (lower back, right thigh, right shank) through a cycle of activities."""
    p = params or PatientParams()
    n = max(2, round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    act = np.array([activities[int(x // activity_s) % len(activities)] for x in t])
    tt = t % activity_s  # time within the activity

    # Trunk: pitch about the ML (earth y) axis and roll about AP (earth x); small sway.
    sway_ap = _smooth_noise(rng, n, rate_hz, 0.6) * p.sway_rms_m_s2
    sway_ml = _smooth_noise(rng, n, rate_hz, 0.6) * p.sway_rms_m_s2 * 0.7
    trunk_pitch = np.zeros(n)
    hip_height = np.full(n, 1.0)
    pos_trunk = np.zeros((n, 3))
    knee = np.zeros(n)  # knee flexion, rad
    hip = np.zeros(n)  # hip flexion, rad

    quiet = act == "quiet_stance"
    # integrate the sway accelerations twice (detrended) into a position path
    for axis, a in ((0, sway_ap), (1, sway_ml)):
        v = np.cumsum(a) / rate_hz
        v -= _moving_average(v, 201)
        pos = np.cumsum(v) / rate_hz
        pos -= _moving_average(pos, 201)
        pos_trunk[:, axis] = np.where(quiet, pos, 0.0)

    flex = act == "knee_flexion"
    knee = np.where(
        flex, np.radians(p.knee_rom_deg) * 0.5 * (1 - np.cos(2 * np.pi * tt / p.rep_period_s)), knee
    )
    hip = np.where(flex, np.radians(90.0), hip)  # seated knee extension-flexion
    hip_height = np.where(flex, 0.5, hip_height)

    sts = act == "sit_to_stand"
    cycle = 4.0
    phase = (tt % cycle) / cycle  # 0 sit .. 0.5 standing .. 1 sit
    stand = 0.5 * (1 - np.cos(2 * np.pi * phase))
    lean = np.sin(np.pi * np.clip(phase * 2, 0, 1)) * np.radians(35)
    trunk_pitch = np.where(sts, lean * (phase < 0.5), trunk_pitch)
    hip = np.where(sts, np.radians(90) * (1 - stand), hip)
    knee = np.where(sts, np.radians(90) * (1 - stand), knee)
    hip_height = np.where(sts, 0.5 + 0.5 * stand, hip_height)

    walk = act == "walking"
    gait = 2 * np.pi * (p.step_hz / 2) * tt
    hip = np.where(walk, np.radians(20) * np.sin(gait), hip)
    knee = np.where(walk, np.radians(30) * (1 + np.sin(gait - 1.2)), knee)
    # on a treadmill, as it were: constant walking speed adds no acceleration
    pos_trunk[:, 0] = np.where(walk, 0.03 * np.sin(2 * np.pi * p.step_hz * tt), pos_trunk[:, 0])
    hip_height = np.where(walk, 1.0 + 0.02 * np.cos(2 * np.pi * p.step_hz * tt), hip_height)

    # smooth the joins between activities (~1 s) so accelerations stay physical
    half = round(0.5 * rate_hz)
    k = np.hanning(2 * half + 1)
    k /= k.sum()
    for arr in (trunk_pitch, hip, knee, hip_height, pos_trunk[:, 0], pos_trunk[:, 1]):
        arr[:] = np.convolve(np.pad(arr, half, mode="edge"), k, mode="valid")
    pos_trunk[:, 2] = hip_height + 0.1

    r_trunk = rotmat_y(trunk_pitch)
    r_thigh = rotmat_y(hip)  # segment frames: x forward, y left, z up along the segment
    r_shank = rotmat_y(hip - knee)
    pos_thigh = pos_trunk + np.einsum("nij,j->ni", r_thigh, [0.0, -0.1, -0.2])
    knee_pos = pos_trunk + np.einsum("nij,j->ni", r_thigh, [0.0, -0.1, -0.45])
    pos_shank = knee_pos + np.einsum("nij,j->ni", r_shank, [0.05, 0.0, -0.2])

    out = {}
    for name, r_seg, pos in (
        ("lower_back", r_trunk, pos_trunk),
        ("thigh", r_thigh, pos_thigh),
        ("shank", r_shank, pos_shank),
    ):
        acc, gyr, r_s = imu_from_motion(
            t, r_seg, pos, _tilted_mount(rng, np.eye(3), p.mount_tilt_deg)
        )
        acc = acc + rng.standard_normal(acc.shape) * p.acc_noise_m_s2
        gyr = gyr + rng.standard_normal(gyr.shape) * p.gyro_noise_rad_s
        truth = {"activity_index": np.array([activities.index(a) for a in act], dtype=np.float64)}
        if name == "shank":
            truth["knee_angle_deg"] = np.degrees(knee)
        out[name] = SensorTrace(t, acc, gyr, matrix_to_quat(r_s), truth)
    return out


def encode_witmotion(acc: Array, gyr: Array, angles_deg: Array | None = None) -> bytes:
    """WitMotion 0x55 0x61 records: int16 acc/16 g, gyr/2000 deg/s, angles/180 deg (full
    scale 32768), clipped at full scale as the device saturates."""
    n = acc.shape[0]
    ang = np.zeros((n, 3)) if angles_deg is None else angles_deg
    raw = np.concatenate(
        [acc / G / 16 * 32768, np.degrees(gyr) / 2000 * 32768, ang / 180 * 32768], axis=1
    )
    raw = np.clip(np.round(raw), -32768, 32767).astype("<i2")
    rec = np.empty((n, 20), dtype=np.uint8)
    rec[:, 0], rec[:, 1] = 0x55, 0x61
    rec[:, 2:] = raw.view(np.uint8).reshape(n, 18)
    return rec.tobytes()


@dataclass(frozen=True)
class LinkParams:
    """BLE delivery: notifications leave at connection events, a few per event."""

    connection_interval_s: float = 0.015
    max_payload_bytes: int = 80  # 4 WitMotion records; 20 on a link left at MTU 23
    split_probability: float = 0.1  # a record split across two notifications
    jitter_s: float = 0.004  # host scheduling on top of the connection event
    stall_probability: float = 0.002  # an event that sends nothing (interference): a burst follows


def notifications(
    rng: np.random.Generator,
    records: bytes,
    record_len: int,
    sample_time_s: Array,
    link: LinkParams | None = None,
) -> Iterator[tuple[float, bytes]]:
    """Cut a device's record stream into (arrival time s, notification bytes), in order.

    A record is ready when its sample is taken; at each connection event everything ready
    is sent in notifications of at most ``max_payload_bytes`` (sometimes split mid-record)."""
    lp = link or LinkParams()
    n = len(sample_time_s)
    ready = 0  # records ready and sent so far
    sent_bytes = 0
    t_event = float(sample_time_s[0]) + rng.uniform(0, lp.connection_interval_s)
    while sent_bytes < len(records):
        while ready < n and sample_time_s[ready] <= t_event:
            ready += 1
        end = ready * record_len
        if ready == n:
            end = len(records)
        if end > sent_bytes and rng.random() >= lp.stall_probability:
            arrival = t_event + abs(rng.normal(0, lp.jitter_s))
            while sent_bytes < end:
                size = min(lp.max_payload_bytes, end - sent_bytes)
                if size > record_len and rng.random() < lp.split_probability:
                    size -= record_len // 2
                yield arrival, records[sent_bytes : sent_bytes + size]
                sent_bytes += size
        t_event += lp.connection_interval_s


def rows_for(channels: tuple[str, ...], trace: SensorTrace) -> Array:
    """A trace as the rows a codec encodes: one column per channel, SI units (a constant
    magnetic field where a profile has a magnetometer)."""
    mag = np.tile([20.0, -5.0, -40.0], (len(trace.time_s), 1))
    cols = {"acc": trace.acc, "gyr": trace.gyr, "mag": mag}
    return np.column_stack([cols[c[:3]][:, "xyz".index(c[-1])] for c in channels])


def codec_notifications(
    rng: np.random.Generator,
    codec: Any,
    rows: Array,
    sample_time_s: Array,
    rate_hz: float,
    link: LinkParams | None = None,
) -> Iterator[tuple[float, bytes]]:
    """A device's notifications (arrival time s, bytes), in order, for any profile: at each
    connection event the samples taken so far are encoded by the profile's own codec (the
    device side of ``collector.codecs``) to the link's payload size. Where the framing is a
    byte stream, a notification is sometimes split in two, as BLE stacks do."""
    lp = link or LinkParams()
    n = len(sample_time_s)
    mtu = lp.max_payload_bytes + 3
    sent = 0
    t_event = float(sample_time_s[0]) + rng.uniform(0, lp.connection_interval_s)
    while sent < n:
        ready = int(np.searchsorted(sample_time_s, t_event, side="right"))
        if ready > sent and rng.random() >= lp.stall_probability:
            arrival = t_event + abs(rng.normal(0, lp.jitter_s))
            for data, _k in codec.encode(rows[sent:ready], sent, rate_hz, mtu):
                if codec.splittable and len(data) > 2 and rng.random() < lp.split_probability:
                    cut = len(data) // 2
                    yield arrival, data[:cut]
                    yield arrival, data[cut:]
                else:
                    yield arrival, data
            sent = ready
        t_event += lp.connection_interval_s


# --- scenario traces of one lower-back (L5) sensor, for the instrumented clinical tests ---

# The sensor on the lower back: face (+z) pointing backwards, +y up, +x to the right.
# Columns: the sensor's axes expressed in the trunk segment frame (x fwd, y left, z up).
L5_MOUNT = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
L5_AP_AXIS = "-z"


def _min_jerk(tau: Array) -> Array:
    s = np.clip(tau, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _sit_to_stand(tau: Array, lean_deg: float, rise_m: float) -> tuple[Array, Array]:
    """Trunk pitch (rad) and L5 height gain (m) over a rise, tau from 0 to 1: the trunk leans
    forward first (momentum transfer), the hips rise in the last 70 %."""
    pitch = math.radians(lean_deg) * np.sin(np.pi * tau) ** 2 * (1 - 0.3 * tau)
    return pitch, rise_m * _min_jerk((tau - 0.3) / 0.7)


def _tilted_mount(rng: np.random.Generator, base: Array, tilt_deg: float) -> Array:
    rot: Array = axis_angle_matrix(rng.standard_normal(3), math.radians(tilt_deg)) @ base
    return rot


def _trunk_trace(
    rng: np.random.Generator,
    t: Array,
    pitch: Array,
    yaw: Array,
    pos: Array,
    mount_tilt_deg: float,
    acc_noise: float,
    gyr_noise: float,
    truth: dict[str, Array],
) -> SensorTrace:
    r = rotmat_z(yaw) @ rotmat_y(pitch)
    acc, gyr, r_s = imu_from_motion(t, r, pos, _tilted_mount(rng, L5_MOUNT, mount_tilt_deg))
    acc = acc + rng.normal(0, acc_noise, acc.shape)
    gyr = gyr + rng.normal(0, gyr_noise, gyr.shape)
    return SensorTrace(t, acc, gyr, matrix_to_quat(r_s), truth)


@dataclass(frozen=True)
class StandSpec:
    """One attempt in a chair-stand test. ``rise_fraction`` < 1 is an incomplete stand."""

    rise_s: float = 1.3
    hold_s: float = 0.4
    sit_s: float = 1.3
    seated_s: float = 0.5
    rise_fraction: float = 1.0


def chair_stand_trace(
    rng: np.random.Generator,
    stands: list[StandSpec],
    rate_hz: float = 100.0,
    lead_s: float = 2.0,
    tail_s: float = 2.0,
    rise_m: float = 0.42,
    lean_deg: float = 35.0,
    mount_tilt_deg: float = 8.0,
    acc_noise: float = 0.03,
    gyr_noise: float = 0.005,
) -> SensorTrace:
    """A seated person rising and sitting as ``stands`` say. Truth: ``full_stands`` (count)
    and ``stand_times_s`` (when each full stand was reached)."""
    total = lead_s + sum(s.rise_s + s.hold_s + s.sit_s + s.seated_s for s in stands) + tail_s
    t = np.arange(round(total * rate_hz)) / rate_hz
    pitch = np.zeros_like(t)
    height = np.zeros_like(t)
    fwd = np.zeros_like(t)
    full_times = []
    t0 = lead_s
    for s in stands:
        rise = (t >= t0) & (t < t0 + s.rise_s)
        tau = (t[rise] - t0) / s.rise_s
        pitch[rise], height[rise] = _sit_to_stand(tau, lean_deg, rise_m * s.rise_fraction)
        fwd[rise] = 0.12 * _min_jerk(tau)
        t1 = t0 + s.rise_s
        hold = (t >= t1) & (t < t1 + s.hold_s)
        height[hold] = rise_m * s.rise_fraction
        fwd[hold] = 0.12
        if s.rise_fraction >= 1.0:
            full_times.append(t1)
        t2 = t1 + s.hold_s
        sit = (t >= t2) & (t < t2 + s.sit_s)
        tau = (t[sit] - t2) / s.sit_s
        pitch[sit] = math.radians(lean_deg * 0.8) * np.sin(np.pi * tau) ** 2
        height[sit] = rise_m * s.rise_fraction * (1 - _min_jerk(tau / 0.8))
        fwd[sit] = 0.12 * (1 - _min_jerk(tau))
        t0 = t2 + s.sit_s + s.seated_s
    pos = np.column_stack([fwd, np.zeros_like(t), 0.62 + height])
    truth = {
        "full_stands": np.array([float(len(full_times))]),
        "stand_times_s": np.array(full_times),
    }
    return _trunk_trace(
        rng, t, pitch, np.zeros_like(t), pos, mount_tilt_deg, acc_noise, gyr_noise, truth
    )


def tug_trace(
    rng: np.random.Generator,
    rate_hz: float = 100.0,
    lead_s: float = 3.0,
    rise_s: float = 1.5,
    walk_m: float = 3.0,
    speed_m_s: float = 1.0,
    turn_s: float = 2.0,
    sit_s: float = 2.0,
    tail_s: float = 3.0,
    mount_tilt_deg: float = 8.0,
) -> SensorTrace:
    """Timed Up and Go: rise, walk 3 m, turn, walk back, turn and sit. Truth: the phase
    boundaries (``phases_s``: rise onset, walk, turn, walk, turn-to-sit start, seated) and
    ``duration_s`` from rise onset to seated."""
    walk_s = walk_m / speed_m_s
    edges = np.cumsum([lead_s, rise_s, walk_s, turn_s, walk_s, sit_s])
    total = edges[-1] + tail_s
    t = np.arange(round(total * rate_hz)) / rate_hz
    pitch = np.zeros_like(t)
    yaw = np.zeros_like(t)
    height = np.zeros_like(t)
    s_path = np.zeros_like(t)  # distance walked
    rise = (t >= edges[0]) & (t < edges[1])
    tau = (t[rise] - edges[0]) / rise_s
    pitch[rise], height[rise] = _sit_to_stand(tau, 35.0, 0.42)
    height[t >= edges[1]] = 0.42
    step_hz = 1.8
    walking = ((t >= edges[1]) & (t < edges[2])) | ((t >= edges[3]) & (t < edges[4]))
    w1 = (t >= edges[1]) & (t < edges[2])
    s_path[w1] = speed_m_s * (t[w1] - edges[1])
    s_path[t >= edges[2]] = walk_m
    w2 = (t >= edges[3]) & (t < edges[4])
    s_path[w2] = walk_m - speed_m_s * (t[w2] - edges[3])
    s_path[t >= edges[4]] = 0.0
    height = height + np.where(walking, 0.02 * np.cos(2 * np.pi * step_hz * t), 0.0)
    turn1 = (t >= edges[2]) & (t < edges[3])
    yaw[turn1] = np.pi * _min_jerk((t[turn1] - edges[2]) / turn_s)
    yaw[t >= edges[3]] = np.pi
    sit = (t >= edges[4]) & (t < edges[5])
    tau = (t[sit] - edges[4]) / sit_s
    yaw[sit] = np.pi + np.pi * _min_jerk(tau / 0.6)
    yaw[t >= edges[5]] = 2 * np.pi
    pitch[sit] = math.radians(28) * np.sin(np.pi * np.clip((tau - 0.3) / 0.7, 0, 1)) ** 2
    height[sit] = 0.42 * (1 - _min_jerk((tau - 0.35) / 0.65))
    height[t >= edges[5]] = 0.0
    # the walk goes out along +x and comes back: position from the path length
    pos = np.column_stack([s_path, np.zeros_like(t), 0.62 + height])
    # smooth the joins (0.3 s) so accelerations stay physical
    half = round(0.15 * rate_hz)
    k = np.hanning(2 * half + 1)
    k /= k.sum()
    for arr in (pos[:, 0], pos[:, 2], pitch, yaw):
        arr[:] = np.convolve(np.pad(arr, half, mode="edge"), k, mode="valid")
    truth = {"phases_s": edges.astype(np.float64), "duration_s": np.array([edges[5] - edges[0]])}
    return _trunk_trace(rng, t, pitch, yaw, pos, mount_tilt_deg, 0.03, 0.005, truth)


def stance_trace(
    rng: np.random.Generator,
    duration_s: float,
    sway_rms_m_s2: float,
    rate_hz: float = 100.0,
    step_at_s: float | None = None,
    mount_tilt_deg: float = 8.0,
) -> SensorTrace:
    """Quiet standing with trunk sway of a given RMS; optionally a step (loss of balance) at
    ``step_at_s``: the trunk lurches 15 cm sideways and rotates as the foot comes down."""
    n = round(duration_s * rate_hz)
    t = np.arange(n) / rate_hz
    pos = np.zeros((n, 3))
    for axis, scale in ((0, 1.0), (1, 0.7)):
        a = _smooth_noise(rng, n, rate_hz, 0.8) * sway_rms_m_s2 * scale
        v = np.cumsum(a) / rate_hz
        v -= _moving_average(v, 201)
        p = np.cumsum(v) / rate_hz
        pos[:, axis] = p - _moving_average(p, 201)
    pitch = np.zeros(n)
    roll_like_yaw = np.zeros(n)
    if step_at_s is not None:
        tau = (t - step_at_s) / 0.5
        pos[:, 1] += 0.15 * _min_jerk(tau)
        roll_like_yaw += math.radians(20) * _min_jerk(tau)
        pitch += math.radians(10) * np.sin(np.pi * np.clip(tau, 0, 1))
    pos[:, 2] = 1.05
    truth = {"step_at_s": np.array([np.nan if step_at_s is None else step_at_s])}
    return _trunk_trace(rng, t, pitch, roll_like_yaw, pos, mount_tilt_deg, 0.01, 0.003, truth)


# --- two segments joined by a hinge (knee, elbow), for joint-angle validation ---


def _random_rotation(rng: np.random.Generator) -> Array:
    """A uniformly random rotation matrix: the sensor strapped on any which way."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot: Array = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return rot


@dataclass(frozen=True)
class HingeMotion:
    """Repetitions of a hinge joint. ``kind``: 'seated_knee' (thigh still and horizontal, the
    shank swings), 'squat' (thigh and shank both move and the hips drop), 'elbow_curl'."""

    kind: str = "squat"
    reps: int = 8
    rom_deg: float | list[float] = 90.0  # per repetition if a list
    rep_s: float = 3.0
    pause_s: float = 1.0
    neutral_s: float = 3.0
    tail_s: float = 2.0
    yaw_wander_deg: float = 20.0  # the patient slowly turns a little: heading is not fixed


@dataclass(frozen=True)
class SensorErrors:
    acc_noise_m_s2: float = 0.05
    gyr_noise_rad_s: float = 0.005
    gyr_bias_rad_s: float = 0.01  # per axis, drawn once per sensor (≈ 0.6 °/s)


def hinge_traces(
    rng: np.random.Generator,
    motion: HingeMotion,
    rate_hz: float = 100.0,
    errors: SensorErrors | None = None,
) -> tuple[SensorTrace, SensorTrace]:
    """(proximal, distal) sensor traces. Truth on the distal trace: ``angle_deg`` (flexion,
    positive), ``rep_peaks_deg`` and ``rep_peak_times_s``."""
    e = errors or SensorErrors()
    roms = motion.rom_deg if isinstance(motion.rom_deg, list) else [motion.rom_deg] * motion.reps
    total = motion.neutral_s + len(roms) * (motion.rep_s + motion.pause_s) + motion.tail_s
    t = np.arange(round(total * rate_hz)) / rate_hz
    angle = np.zeros_like(t)
    peaks_t = []
    t0 = motion.neutral_s
    for rom in roms:
        tau = (t - t0) / motion.rep_s
        inside = (tau >= 0) & (tau < 1)
        angle[inside] = rom * 0.5 * (1 - np.cos(2 * np.pi * tau[inside]))
        peaks_t.append(t0 + motion.rep_s / 2)
        t0 += motion.rep_s + motion.pause_s
    theta = np.radians(angle)
    yaw = np.radians(motion.yaw_wander_deg) * np.sin(2 * np.pi * t / max(total, 1.0)) ** 2
    zero = np.zeros_like(t)
    if motion.kind == "seated_knee":
        # thigh horizontal and still, the leg straight at neutral (heel on a stool); the
        # knee flexes from there
        r_prox = rotmat_z(yaw) @ rotmat_y(np.full_like(t, np.pi / 2))
        r_dist = r_prox @ rotmat_y(theta)
        hip = np.column_stack([zero, zero, np.full_like(t, 0.5)])
    elif motion.kind == "squat":
        # thigh tilts back by 55 % of the flexion, shank forward by 45 %; the hips drop
        thigh = -0.55 * theta
        shank = 0.45 * theta
        r_prox = rotmat_z(yaw) @ rotmat_y(thigh)
        r_dist = rotmat_z(yaw) @ rotmat_y(shank)
        hip = np.column_stack([zero, zero, 0.45 * np.cos(shank) + 0.45 * np.cos(thigh)])
    elif motion.kind == "elbow_curl":
        # upper arm hanging (segment z up along the arm), forearm rotating forward
        r_prox = rotmat_z(yaw) @ rotmat_y(np.full_like(t, 0.1))
        r_dist = r_prox @ rotmat_y(-theta)
        hip = np.column_stack([zero, zero, np.full_like(t, 1.3)])
        theta = -theta  # flexion of the elbow is the negative y rotation here
    else:
        raise ValueError(f"unknown hinge motion {motion.kind!r}")
    # sensor positions: prox halfway up the thigh, distal halfway down the shank
    knee = hip + np.einsum("nij,j->ni", r_prox, [0.0, 0.0, -0.45])
    pos_p = hip + np.einsum("nij,j->ni", r_prox, [0.06, 0.0, -0.22])
    pos_d = knee + np.einsum("nij,j->ni", r_dist, [0.05, 0.0, -0.2])
    truth = {
        "angle_deg": np.abs(np.degrees(theta)),
        "rep_peaks_deg": np.array(roms, float),
        "rep_peak_times_s": np.array(peaks_t),
    }
    traces = []
    for r_seg, pos, tr in ((r_prox, pos_p, {}), (r_dist, pos_d, truth)):
        acc, gyr, r_s = imu_from_motion(t, r_seg, pos, _random_rotation(rng))
        bias = rng.uniform(-e.gyr_bias_rad_s, e.gyr_bias_rad_s, 3)
        acc = acc + rng.normal(0, e.acc_noise_m_s2, acc.shape)
        gyr = gyr + bias + rng.normal(0, e.gyr_noise_rad_s, gyr.shape)
        traces.append(SensorTrace(t, acc, gyr, matrix_to_quat(r_s), tr))
    return traces[0], traces[1]
