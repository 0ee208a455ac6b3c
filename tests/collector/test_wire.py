"""Wire format v1: pinned bytes, round trips, and every damaged payload rejected with a reason."""

import contextlib
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from poise.core import wire

# A frame written out by hand from docs/wire-format.md, independent of the encoder's tables:
# sensor "s1", first sample 7, t0 1 s, period 10 ms, 2 samples of (acc_x, gyr_z).
GOLDEN = bytes.fromhex(
    "5046"
    "01"
    "00"  # magic, version, flags
    "0700000000000000"  # first_sample_seq 7
    "00ca9a3b00000000"  # t0_ns 1_000_000_000
    "80969800"  # period_ns 10_000_000
    "0200"
    "02"
    "02"  # n_samples 2, n_channels 2, sensor_len 2
    "7331"  # "s1"
    "01"
    "06"  # acc_x, gyr_z
    "0000803f"
    "000000bf"  # 1.0, -0.5
    "00000040"
    "0000803e"  # 2.0, 0.25
)
GOLDEN += struct.pack("<I", zlib.crc32(GOLDEN))


def test_golden_bytes_decode_to_the_documented_values():
    f = wire.decode(GOLDEN)
    assert f.sensor_id == "s1"
    assert f.first_sample_seq == 7
    assert f.t0_ns == 1_000_000_000
    assert f.period_ns == 10_000_000
    assert f.channels == ("acc_x", "gyr_z")
    assert f.data.tolist() == [[1.0, -0.5], [2.0, 0.25]]
    assert f.times_ns().tolist() == [1_000_000_000, 1_010_000_000]


def test_encoder_produces_the_golden_bytes():
    f = wire.Frame(
        "s1",
        7,
        1_000_000_000,
        10_000_000,
        ("acc_x", "gyr_z"),
        np.array([[1.0, -0.5], [2.0, 0.25]], dtype=np.float32),
    )
    assert wire.encode(f) == GOLDEN


frames = st.builds(
    wire.Frame,
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(1, 2**32 - 1),
    st.sampled_from([wire.IMU6, wire.IMU9, ("acc_x", "acc_y", "acc_z"), ("mag_z",)]),
    st.just(None),
).flatmap(
    lambda f: hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 40), st.just(len(f.channels))),
        elements=st.floats(-1e6, 1e6, width=32),
    ).map(
        lambda d: wire.Frame(f.sensor_id, f.first_sample_seq, f.t0_ns, f.period_ns, f.channels, d)
    )
)


@given(frames)
@settings(max_examples=200)
def test_round_trip(frame):
    assert wire.decode(wire.encode(frame)) == frame


@given(frames, st.data())
@settings(max_examples=100)
def test_every_truncation_is_rejected(frame, data):
    payload = wire.encode(frame)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload[:cut])
    assert exc.value.reason == "truncated"


def test_every_truncation_of_one_frame_exhaustively():
    payload = wire.encode(wire.Frame("abc", 0, 5, 10, wire.IMU6, np.ones((3, 6), np.float32)))
    for cut in range(len(payload)):
        with pytest.raises(wire.WireError, match="truncated"):
            wire.decode(payload[:cut])


def test_every_single_bit_flip_is_rejected():
    payload = wire.encode(wire.Frame("abc", 3, 5, 10, wire.IMU6, np.ones((2, 6), np.float32)))
    for i in range(len(payload)):
        for bit in range(8):
            bad = bytearray(payload)
            bad[i] ^= 1 << bit
            with pytest.raises(wire.WireError) as exc:
                wire.decode(bytes(bad))
            assert exc.value.reason in {
                "bad_magic",
                "unsupported_version",
                "truncated",
                "trailing_bytes",
                "bad_crc",
            }


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (3, 1, "bad_flags"),
        (20, 0, "bad_period"),
        (26 + 2 + 2, 99, "unknown_channel"),  # first channel code
    ],
)
def test_semantic_errors_behind_a_valid_crc(offset, value, reason):
    body = bytearray(GOLDEN[:-4])
    if reason == "bad_period":
        body[20:24] = b"\0\0\0\0"
    else:
        body[offset] = value
    with pytest.raises(wire.WireError) as exc:
        wire.decode(_with_crc(bytes(body)))
    assert exc.value.reason == reason


def test_duplicate_channel_and_non_finite_and_bad_sensor():
    body = bytearray(GOLDEN[:-4])
    body[31] = 1  # gyr_z -> acc_x again
    with pytest.raises(wire.WireError, match="duplicate_channel"):
        wire.decode(_with_crc(bytes(body)))
    body = bytearray(GOLDEN[:-4])
    body[32:36] = struct.pack("<f", float("nan"))
    with pytest.raises(wire.WireError) as exc:
        wire.decode(_with_crc(bytes(body)))
    assert (exc.value.reason, exc.value.offset) == ("non_finite", 32)
    body = bytearray(GOLDEN[:-4])
    body[28:30] = b"s/"
    with pytest.raises(wire.WireError, match="bad_sensor_id"):
        wire.decode(_with_crc(bytes(body)))


def test_foreign_payloads_are_rejected_not_crashing():
    for junk in (b"", b"PF", b'{"acc": 1}', b"\x00" * 100, bytes(range(256))):
        with pytest.raises(wire.WireError):
            wire.decode(junk)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bytes_raise_only_wire_error(blob):
    with contextlib.suppress(wire.WireError):
        wire.decode(blob)


def test_encoder_refuses_what_could_not_be_decoded():
    ok = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match="sensor id"):
        wire.encode(wire.Frame("Jane Doe", 0, 0, 1, ("acc_x",), ok))
    with pytest.raises(ValueError, match="unknown channel"):
        wire.encode(wire.Frame("s", 0, 0, 1, ("heart",), ok))
    with pytest.raises(ValueError, match="NaN"):
        wire.encode(wire.Frame("s", 0, 0, 1, ("acc_x",), np.array([[np.nan]], np.float32)))
    with pytest.raises(ValueError, match="period"):
        wire.encode(wire.Frame("s", 0, 0, 0, ("acc_x",), ok))
