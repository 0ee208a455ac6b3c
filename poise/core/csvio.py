"""Offline IMU files: CSV with a header row and columns ``time_s, acc_x, acc_y, acc_z, gyr_x,
gyr_y, gyr_z`` and optionally ``mag_x, mag_y, mag_z``, in s, m/s², rad/s and µT, sensor frame.

Extra columns are kept aside (``extra``) and otherwise ignored. Problems are reported as
``CsvError`` naming the file, the column or row, what was expected and what was found.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
REQUIRED = ("time_s", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
MAG = ("mag_x", "mag_y", "mag_z")


class CsvError(ValueError):
    """A file that is not a usable IMU recording."""


@dataclass(frozen=True)
class ImuRecording:
    time_s: Array  # (n,)
    acc: Array  # (n, 3) m/s², sensor frame
    gyr: Array  # (n, 3) rad/s
    mag: Array | None = None  # (n, 3) µT
    extra: dict[str, Array] = field(default_factory=dict)
    source: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def sampling_rate_hz(self) -> float:
        """From the timestamps (median interval), never from a default."""
        return float(1.0 / np.median(np.diff(self.time_s)))


def check_recording(rec: ImuRecording, name: str, min_samples: int = 2) -> None:
    """Raise CsvError for too few samples, NaNs, or time that does not increase."""
    if rec.n_samples < min_samples:
        raise CsvError(f"{name}: {rec.n_samples} samples; at least {min_samples} are needed")
    for label, arr in (
        ("time_s", rec.time_s),
        ("acc", rec.acc),
        ("gyr", rec.gyr),
        ("mag", rec.mag),
    ):
        if arr is None:
            continue
        bad = np.flatnonzero(~np.isfinite(arr.reshape(rec.n_samples, -1)).all(axis=1))
        if bad.size:
            raise CsvError(f"{name}: NaN or infinite value in {label} at data row {bad[0] + 1}")
    dt = np.diff(rec.time_s)
    bad = np.flatnonzero(dt <= 0)
    if bad.size:
        i = int(bad[0])
        raise CsvError(
            f"{name}: time_s must increase; data row {i + 2} has {rec.time_s[i + 1]!r} after "
            f"{rec.time_s[i]!r}"
        )


def read_imu_csv(path: Path | str, *, min_samples: int = 2) -> ImuRecording:
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CsvError(f"{path}: not a text (UTF-8) CSV file") from None
    if not header:
        raise CsvError(f"{path}: empty file; expected a header row with {', '.join(REQUIRED)}")
    names = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CsvError(
            f"{path}: missing column {missing[0]!r} (required: {', '.join(REQUIRED)}; "
            f"found: {', '.join(names)})"
        )
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise CsvError(f"{path}: a value is not a number: {exc}") from None
    if data.shape[0] and data.shape[1] != len(names):
        raise CsvError(f"{path}: rows have {data.shape[1]} values, the header names {len(names)}")
    col = {n: i for i, n in enumerate(names)}
    has_mag = all(c in col for c in MAG)
    rec = ImuRecording(
        time_s=data[:, col["time_s"]].copy(),
        acc=data[:, [col[c] for c in REQUIRED[1:4]]].copy(),
        gyr=data[:, [col[c] for c in REQUIRED[4:7]]].copy(),
        mag=data[:, [col[c] for c in MAG]].copy() if has_mag else None,
        extra={n: data[:, i].copy() for n, i in col.items() if n not in REQUIRED + MAG},
        source=str(path),
    )
    check_recording(rec, str(path), min_samples)
    return rec


def write_csv(path: Path | str, columns: dict[str, Array]) -> None:
    """Write named 1-D columns with a header row (full float precision)."""
    names = list(columns)
    data = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])
    np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt="%.10g")
