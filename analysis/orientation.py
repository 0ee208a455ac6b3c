"""Orientation per sensor with VQF (Laidig & Seel 2023, Information Fusion 91:187-204).

No home-made filter: this module only wires arrays into the ``vqf`` package. 6D (acc + gyr)
by default, 9D with the magnetometer on request. The sample period comes from the
timestamps. Quaternions are ``(w, x, y, z)``, sensor-to-earth, earth z up (VQF's convention:
the 6D earth frame has an arbitrary heading).

``Orientation(mode="online")`` is VQF's causal filter; its state is carried across calls, so
feeding a recording in chunks gives exactly the batch result (the live path).
``mode="offline"`` is VQF's acausal variant (better bias estimation), for whole files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import vqf

from poise.core.rotations import quat_to_matrix
from poise.core.timebase import sample_period_s

__all__ = [
    "Orientation",
    "inclination_error_deg",
    "quat_to_matrix",
    "sample_period_s",
    "vertical_in_sensor",
]

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = f"vqf-{getattr(vqf, '__version__', '2')}"


@dataclass
class Orientation:
    """Parameters, then ``update(time_s, acc, gyr[, mag])`` returns quaternions (n, 4)."""

    use_mag: bool = False
    mode: str = "online"  # "online" (causal, streams) or "offline" (whole recording)
    vqf_params: dict[str, Any] = field(default_factory=dict)  # VQF's own parameters
    # state (online mode)
    _filter: Any = field(default=None, init=False, repr=False)
    _period_s: float | None = field(default=None, init=False, repr=False)

    def update(self, time_s: Array, acc: Array, gyr: Array, mag: Array | None = None) -> Array:
        if self.mode not in ("online", "offline"):
            raise ValueError(f"mode must be 'online' or 'offline', not {self.mode!r}")
        if self.use_mag and mag is None:
            raise ValueError("9D orientation asked for, but the recording has no magnetometer")
        acc = np.ascontiguousarray(acc, dtype=np.float64)
        gyr = np.ascontiguousarray(gyr, dtype=np.float64)
        mag_c = (
            np.ascontiguousarray(mag, dtype=np.float64)
            if self.use_mag and mag is not None
            else None
        )
        key = "quat9D" if self.use_mag else "quat6D"
        if self.mode == "offline":
            out = vqf.offlineVQF(gyr, acc, mag_c, sample_period_s(time_s), self.vqf_params or None)
            return np.asarray(out[key])
        if self._filter is None:
            self._period_s = sample_period_s(time_s)
            self._filter = vqf.VQF(self._period_s, **self.vqf_params)
        out = self._filter.updateBatch(gyr, acc, mag_c)
        return np.asarray(out[key])

    def get_state(self) -> dict[str, Any] | None:
        """The online filter's whole state as plain data (VQF's own state, the sample
        period), or None before the first sample."""
        if self._filter is None:
            return None
        return {"period_s": self._period_s, "vqf": dict(self._filter.state)}

    def set_state(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self._filter, self._period_s = None, None
            return
        self._period_s = float(state["period_s"])
        self._filter = vqf.VQF(self._period_s, **self.vqf_params)
        self._filter.state = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state["vqf"].items()
        }


def vertical_in_sensor(q: Array) -> Array:
    """Earth's up direction seen in the sensor frame: the third row of R (sensor->earth),
    computed alone (the whole matrix costs three times as much)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)


def inclination_error_deg(q_est: Array, q_ref: Array) -> Array:
    """Angle between the up directions of two orientations, per sample, degrees."""
    a, b = vertical_in_sensor(q_est), vertical_in_sensor(q_ref)
    err: Array = np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))
    return err
