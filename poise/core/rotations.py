"""Rotations: quaternions ``(w, x, y, z)`` and rotation matrices, vectorised over a leading
axis. The one home for these helpers (orientation, joint angles and the simulators use them).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def qmul(a: Array, b: Array) -> Array:
    """Hamilton product a ⊗ b."""
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )


def qconj(q: Array) -> Array:
    out: Array = q * np.array([1.0, -1.0, -1.0, -1.0])
    return out


def qrotate(q: Array, v: Array) -> Array:
    """Rotate vectors v (..., 3) by quaternions q (..., 4)."""
    qv = np.concatenate([np.zeros((*v.shape[:-1], 1)), v], -1)
    return qmul(qmul(q, qv), qconj(q))[..., 1:]


def quat_about_z(angle_rad: float) -> Array:
    """Quaternion of a rotation about the vertical (earth z)."""
    return np.array([np.cos(angle_rad / 2), 0.0, 0.0, np.sin(angle_rad / 2)])


def mean_quat(q: Array) -> Array:
    """Average of nearby unit quaternions (sign-aligned to the first, normalised)."""
    q = q * np.sign(q @ q[0])[:, None]
    m = q.mean(axis=0)
    out: Array = m / np.linalg.norm(m)
    return out


def quat_to_matrix(q: Array) -> Array:
    """Unit quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat(r: Array) -> Array:
    """Rotation matrices (n, 3, 3) -> unit quaternions (n, 4), w ≥ 0 (Shepperd's method,
    vectorised: each row uses the largest of w, x, y, z for a stable division)."""
    r = np.asarray(r, dtype=np.float64)
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    k = np.argmax(cand, axis=-1)
    s = 2.0 * np.sqrt(np.maximum(cand[np.arange(len(r)), k], 1e-300))
    d21, d02, d10 = r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]
    s01, s02, s12 = r[:, 0, 1] + r[:, 1, 0], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 2] + r[:, 2, 1]
    out = np.empty((len(r), 4))
    rows = [
        np.stack([0.25 * s, d21 / s, d02 / s, d10 / s], -1),
        np.stack([d21 / s, 0.25 * s, s01 / s, s02 / s], -1),
        np.stack([d02 / s, s01 / s, 0.25 * s, s12 / s], -1),
        np.stack([d10 / s, s02 / s, s12 / s, 0.25 * s], -1),
    ]
    for i, row in enumerate(rows):
        out[k == i] = row[k == i]
    out *= np.where(out[:, :1] < 0, -1.0, 1.0)
    result: Array = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return result


def _stack3(rows: list[list[Array]]) -> Array:
    return np.stack([np.stack(r, -1) for r in rows], -2)


def rotmat_x(a: Array) -> Array:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return _stack3([[o, z, z], [z, c, -s], [z, s, c]])


def rotmat_y(a: Array) -> Array:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return _stack3([[c, z, s], [z, o, z], [-s, z, c]])


def rotmat_z(a: Array) -> Array:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return _stack3([[c, -s, z], [s, c, z], [z, z, o]])


def axis_angle_matrix(axis: Array, angle_rad: float) -> Array:
    """Rotation matrix about a unit ``axis`` by ``angle_rad`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    out: Array = np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * kx @ kx
    return out
