"""Offline IMU files: CSV with a header row and columns ``time_s, acc_x, acc_y, acc_z, gyr_x,
gyr_y, gyr_z`` and optionally ``mag_x, mag_y, mag_z``, in s, m/s², rad/s and µT, sensor frame.

Extra numeric columns are kept aside (``extra``), extra text columns ignored. Problems are reported as
``CsvError`` naming the file, the column or row, what was expected and what was found.
"""

from __future__ import annotations

import csv
import gzip
import lzma
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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


def _num(x: float) -> str:
    """A number as a person writes it (never ``np.float64(...)``)."""
    return f"{float(x):.10g}"


def check_recording(rec: ImuRecording, name: str, min_samples: int = 2) -> None:
    """Raise CsvError for too few samples, NaNs, or time that does not increase."""
    if rec.n_samples == 0:
        raise CsvError(f"{name}: the header has no data rows below it")
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
            f"{name}: time_s must increase; data row {i + 2} has {_num(rec.time_s[i + 1])} "
            f"after {_num(rec.time_s[i])}"
        )


def _column(path: Path, rows: list[list[str]], name: str, index: int) -> Array | None:
    """The column as numbers; None when it holds text (an extra column to ignore)."""
    values = [r[index] for r in rows]
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        if name not in REQUIRED + MAG:
            return None
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                shown = v if len(v) <= 40 else v[:37] + "..."
                raise CsvError(
                    f"{path}: data row {i + 1}, column {name}: {shown!r} is not a number"
                ) from None
        raise CsvError(f"{path}: column {name} is not numeric") from None  # pragma: no cover


_OPENERS: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".xz": lzma.open}


def read_imu_csv(path: Path | str, *, min_samples: int = 2) -> ImuRecording:
    """Read an IMU CSV as spreadsheets write them: an optional UTF-8 byte-order mark, quoted
    or unquoted numbers, a trailing comma on every line, blank lines, extra columns (text
    columns are ignored, numeric ones kept in ``extra``). ``.csv.gz`` and ``.csv.xz`` files
    are read as they are."""
    path = Path(path)
    if path.is_dir():
        raise CsvError(f"{path}: is a folder, not a CSV file")
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except (OSError, EOFError, lzma.LZMAError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise CsvError(f"{path}: cannot read: {reason}") from None
    except UnicodeDecodeError:
        raise CsvError(f"{path}: not a text (UTF-8) CSV file") from None
    except csv.Error as exc:
        raise CsvError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise CsvError(f"{path}: empty file; expected a header row with {', '.join(REQUIRED)}")
    header, rows = rows[0], rows[1:]
    names = [h.strip() for h in header]
    while names and names[-1] == "":  # a trailing comma (as spreadsheets write) is no column
        names.pop()
    if len(names) == 1 and ";" in names[0]:
        raise CsvError(
            f"{path}: the columns are separated by ';'; poise reads comma-separated files"
        )
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CsvError(
            f"{path}: missing column {missing[0]!r} (required: {', '.join(REQUIRED)}; "
            f"found: {', '.join(names) or 'nothing'})"
        )
    dup = next((n for n in names if n and names.count(n) > 1), None)
    if dup is not None:
        raise CsvError(f"{path}: column {dup!r} appears {names.count(dup)} times")
    width = len(names)
    for i, r in enumerate(rows):
        if len(r) > width and not any(c.strip() for c in r[width:]):
            rows[i] = r[:width]
        if len(rows[i]) != width:
            raise CsvError(
                f"{path}: data row {i + 1} has {len(rows[i])} values, the header names {width}"
            )
    col = {n: i for i, n in enumerate(names) if n}
    data = {n: _column(path, rows, n, i) for n, i in col.items()}

    def stack(cols: tuple[str, ...]) -> Array:
        arrays = [a for c in cols if (a := data[c]) is not None]  # required: never None
        return np.column_stack(arrays) if rows else np.empty((0, len(cols)))

    has_mag = all(c in col for c in MAG)
    rec = ImuRecording(
        time_s=stack(("time_s",))[:, 0],
        acc=stack(REQUIRED[1:4]),
        gyr=stack(REQUIRED[4:7]),
        mag=stack(MAG) if has_mag else None,
        extra={n: a for n, a in data.items() if n not in REQUIRED + MAG and a is not None},
        source=str(path),
    )
    check_recording(rec, str(path), min_samples)
    return rec


def write_csv(path: Path | str, columns: dict[str, Array]) -> None:
    """Write named 1-D columns with a header row (full float precision)."""
    path = Path(path)
    if path.is_dir():
        raise CsvError(f"{path}: is a folder; give a file name to write")
    names = list(columns)
    data = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])
    try:
        np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt="%.10g")
    except OSError as exc:
        raise CsvError(f"{path}: cannot write: {exc.strerror or exc}") from None
