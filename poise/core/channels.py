"""Sample channels and units: the one table every part shares.

Inside poise: acceleration in m/s², angular rate in rad/s, magnetic field in µT, time in s
or ns (names say which). ``CHANNELS`` gives each channel its wire code (docs/wire-format.md);
a new channel is one row, and codes are never reused.
"""

from __future__ import annotations

import math

G = 9.80665  # standard gravity, m/s²

# wire code -> (channel name, SI unit)
CHANNELS: dict[int, tuple[str, str]] = {
    1: ("acc_x", "m/s²"),
    2: ("acc_y", "m/s²"),
    3: ("acc_z", "m/s²"),
    4: ("gyr_x", "rad/s"),
    5: ("gyr_y", "rad/s"),
    6: ("gyr_z", "rad/s"),
    7: ("mag_x", "µT"),
    8: ("mag_y", "µT"),
    9: ("mag_z", "µT"),
}
CHANNEL_CODES: dict[str, int] = {name: code for code, (name, _unit) in CHANNELS.items()}
SAMPLE_CHANNELS: tuple[str, ...] = tuple(name for name, _unit in CHANNELS.values())
GROUPS: dict[str, tuple[str, str, str]] = {
    g: (f"{g}_x", f"{g}_y", f"{g}_z") for g in ("acc", "gyr", "mag")
}
IMU6 = (*GROUPS["acc"], *GROUPS["gyr"])
IMU9 = (*IMU6, *GROUPS["mag"])

# unit name (as written in profiles and overrides) -> factor to the SI unit of its family
UNIT_TO_SI: dict[str, float] = {
    "m/s2": 1.0,
    "g": G,
    "mg": G / 1000.0,
    "rad/s": 1.0,
    "deg/s": math.pi / 180.0,
    "mdeg/s": math.pi / 180_000.0,
    "uT": 1.0,
    "gauss": 100.0,
    "mgauss": 0.1,
    "rad": 1.0,
    "deg": math.pi / 180.0,
    "1": 1.0,
}
