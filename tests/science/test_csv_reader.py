"""The CSV reader as spreadsheets and people write files: what it accepts, what it refuses
(always a ``CsvError`` naming the problem, never another exception), and fuzzing."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poise.core.csvio import REQUIRED, CsvError, read_imu_csv

HEADER = ",".join(REQUIRED)


def rows(n: int = 5) -> list[list[float]]:
    return [[i / 100, 0.1 * i, 0.0, 9.8, 0.01, 0.0, -0.01 * i] for i in range(n)]


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text, encoding="utf-8")
    return f


def plain(n: int = 5) -> str:
    return HEADER + "\n" + "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows(n))


def test_what_spreadsheets_write_reads_the_same(tmp_path):
    ref = read_imu_csv(write(tmp_path, plain(), "ref.csv"))
    # a UTF-8 byte-order mark, as Excel's "CSV UTF-8" writes
    bom = read_imu_csv(write(tmp_path, b"\xef\xbb\xbf" + plain().encode(), "bom.csv"))
    # every field quoted, CRLF line ends
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(REQUIRED)
    w.writerows([[f"{v:g}" for v in r] for r in rows()])
    quoted = read_imu_csv(write(tmp_path, buf.getvalue(), "quoted.csv"))
    # a trailing comma on every line, and a blank line at the end
    trailing = plain().replace("\n", ",\n") + "\n"
    tc = read_imu_csv(write(tmp_path, trailing, "trailing.csv"))
    # extra columns, numeric and text, anywhere
    extra = "note,time_s,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z,trial\n" + "".join(
        f"standing still,{','.join(f'{v:g}' for v in r)},{i}\n" for i, r in enumerate(rows())
    )
    ex = read_imu_csv(write(tmp_path, extra, "extra.csv"))
    for rec in (bom, quoted, tc, ex):
        np.testing.assert_array_equal(rec.time_s, ref.time_s)
        np.testing.assert_array_equal(rec.acc, ref.acc)
        np.testing.assert_array_equal(rec.gyr, ref.gyr)
    assert list(ex.extra) == ["trial"]  # the text column is ignored


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        (HEADER + "\n", "the header has no data rows"),
        (HEADER + ",\n\n", "the header has no data rows"),
        ("time_s;acc_x;acc_y;acc_z;gyr_x;gyr_y;gyr_z\n0;0;0;9.8;0;0;0\n", "separated by ';'"),
        (HEADER + ",acc_x\n" + "0,0,0,9.8,0,0,0,0\n", "column 'acc_x' appears 2 times"),
        (HEADER + "\n0,0,0,9.8,0,0\n", "data row 1 has 6 values, the header names 7"),
        (HEADER + "\n0,0,0,9.8,0,0,0\n0.01,0,0,nine,0,0,0\n", "data row 2, column acc_z"),
        (HEADER + "\n0.02,0,0,9.8,0,0,0\n0.01,0,0,9.8,0,0,0\n", "data row 2 has 0.01 after 0.02"),
    ],
)
def test_refusals_name_the_problem(tmp_path, text, message):
    with pytest.raises(CsvError, match=message) as exc:
        read_imu_csv(write(tmp_path, text))
    assert "np.float64" not in str(exc.value)


def test_a_folder_and_binary_are_refused(tmp_path):
    with pytest.raises(CsvError, match="is a folder"):
        read_imu_csv(tmp_path)
    with pytest.raises(CsvError, match="not a text"):
        read_imu_csv(write(tmp_path, b"\xff\xfe\x00\x01binary"))
    with pytest.raises(CsvError, match="cannot read"):
        read_imu_csv(tmp_path / "absent.csv")


cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(["", " ", '"1.5"', "1e400", "-0", "nan", "0x10", "1,5", '"', "\r"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(st.sampled_from([*REQUIRED, "mag_x", "note", "", "time_s "]), max_size=10),
    body=st.lists(st.lists(cell, max_size=9), max_size=6),
    bom=st.booleans(),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_fuzz_any_text_is_a_recording_or_a_csv_error(tmp_path, header, body, bom, sep):
    text = sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in body)
    f = write(tmp_path, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "replace"))
    try:
        rec = read_imu_csv(f)
    except CsvError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith(str(f))
        assert "np.float64" not in message
        return
    assert rec.n_samples >= 2
    assert np.all(np.isfinite(rec.acc))
    assert np.all(np.diff(rec.time_s) > 0)
    assert rec.acc.shape == rec.gyr.shape == (rec.n_samples, 3)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_are_a_recording_or_a_csv_error(tmp_path, data):
    f = write(tmp_path, data)
    with contextlib.suppress(CsvError):
        read_imu_csv(f)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False) for _ in range(6)]),
        min_size=2,
        max_size=20,
    )
)
def test_fuzz_valid_values_round_trip(tmp_path, values):
    text = (
        HEADER
        + "\n"
        + "".join(
            f"{i * 0.01!r}," + ",".join(repr(v) for v in r) + "\n" for i, r in enumerate(values)
        )
    )
    rec = read_imu_csv(write(tmp_path, text))
    got = np.column_stack([rec.acc, rec.gyr])
    assert np.array_equal(got, np.array(values)) or all(
        math.isclose(a, b) for a, b in zip(got.ravel(), np.array(values).ravel(), strict=True)
    )
