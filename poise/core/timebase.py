"""Sampling rate from timestamps: never from a default, always from the data."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def sample_period_s(time_s: Array) -> float:
    """The median interval of the timestamps (robust to the odd late sample).

    Rounded to the picosecond, so that one stream cut into different chunks (whose time
    differences round differently in the last bit) gives the same period."""
    if time_s.shape[0] < 2:
        raise ValueError("need at least two timestamps to know the sample rate")
    return round(float(np.median(np.diff(time_s))), 12)


def sampling_rate_hz(time_s: Array) -> float:
    return 1.0 / sample_period_s(time_s)
