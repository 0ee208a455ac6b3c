"""The ingest's line-protocol path gives exactly the bytes of the plain per-sample reference
(the formatting it replaced), and the one-reduction plausibility check gives the answers
of the column-by-column one, on random frames of every channel set."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from poise.core.channels import GROUPS, IMU6, IMU9, SAMPLE_CHANNELS
from poise.core.influx import frame_lines, frame_text, tag_string, tags_for
from poise.core.plausible import LIMITS, frame_problem
from poise.core.wire import Frame

F32 = np.finfo(np.float32)
SPECIAL = np.array(
    [
        0.0,
        -0.0,
        F32.tiny,
        -F32.tiny,
        1e-45,
        -1e-45,
        F32.max,
        -F32.max,
        F32.eps,
        1.0,
        -1.0,
        9.80665,
        1e-7,
        123456789.0,
        3e38,
        1600.0,
        1600.0001,
    ],
    dtype=np.float32,
)


def reference_text(frame: Frame, tags: dict[str, str], measurement: str = "imu") -> str:
    """One line per sample, formatted on its own."""
    head = f"{measurement},{tag_string(tags)} "
    lines = []
    for i, row in enumerate(frame.data.tolist()):
        fields = ",".join(f"{name}=%.9g" % v for name, v in zip(frame.channels, row, strict=True))
        lines.append(f"{head}{fields} {frame.t0_ns + i * frame.period_ns}")
    return "\n".join(lines)


def reference_problem(frame: Frame, now_ns: int) -> tuple[str, str] | None:
    """The column-by-column check with numpy times, as first written."""
    t = frame.times_ns()
    first, last = int(t[0]), int(t[-1])
    if first < LIMITS.earliest_ns:
        return ("implausible_time", f"first sample at {first} ns, before the year 2000")
    if last > now_ns + int(LIMITS.future_s * 1e9):
        return ("implausible_time", f"last sample {(last - now_ns) / 1e9:.0f} s in the future")
    for i, name in enumerate(frame.channels):
        column = frame.data[:, i]
        finite = column[np.isfinite(column)]
        if finite.size and float(np.max(np.abs(finite))) > LIMITS.bound(name):
            worst = float(np.max(np.abs(finite)))
            return (
                "implausible_value",
                f"{name} reaches {worst:.4g}, beyond ±{LIMITS.bound(name):g}",
            )
    return None


def channel_sets() -> list[tuple[str, ...]]:
    sets = [IMU6, IMU9, *GROUPS.values(), SAMPLE_CHANNELS]
    sets += [tuple(c) for c in itertools.combinations(SAMPLE_CHANNELS, 2)]
    return [s for s in dict.fromkeys(sets) if s]


def random_frame(rng: np.random.Generator, channels: tuple[str, ...]) -> Frame:
    n = int(rng.choice([1, 2, 10, 37]))
    scale = 10.0 ** rng.integers(-40, 39, size=(n, len(channels)))
    data = (rng.standard_normal((n, len(channels))) * scale).astype(np.float32)
    mask = rng.random(data.shape) < 0.3
    data[mask] = rng.choice(SPECIAL, size=int(np.count_nonzero(mask)))
    t0 = int(rng.integers(0, 2**62))
    period = int(rng.integers(1, 2**32))
    return Frame(f"s{rng.integers(100)}", 0, t0, period, channels, data)


@pytest.mark.parametrize("channels", channel_sets(), ids="-".join)
def test_frame_text_is_byte_identical(channels: tuple[str, ...]) -> None:
    rng = np.random.default_rng(zlib.crc32("-".join(channels).encode()))
    for k in range(40):
        frame = random_frame(rng, channels)
        tags = tags_for(f"site{k % 3}", f"p{k % 5}", frame.sensor_id)
        expected = reference_text(frame, tags)
        assert frame_text(frame, tags).encode() == expected.encode()
        assert frame_lines(frame, tags) == expected.split("\n")
        assert frame_text(frame, tags, "other") == reference_text(frame, tags, "other")


def test_non_finite_values_format_as_before() -> None:
    """The wire never carries them, but frame_text of a hand-made frame stays as it was."""
    data = np.array([[np.nan, np.inf, -np.inf]], dtype=np.float32)
    frame = Frame("s1", 0, 10**18, 10, ("acc_x", "acc_y", "acc_z"), data)
    tags = tags_for("a", "b", "s1")
    assert frame_text(frame, tags) == reference_text(frame, tags)


@pytest.mark.parametrize("channels", [IMU6, IMU9, GROUPS["mag"], SAMPLE_CHANNELS])
def test_plausibility_answers_as_before(channels: tuple[str, ...]) -> None:
    rng = np.random.default_rng(7)
    now = 1_800_000_000 * 10**9
    for _ in range(300):
        n = int(rng.integers(1, 20))
        data = (rng.standard_normal((n, len(channels))) * 10.0 ** rng.integers(0, 5)).astype(
            np.float32
        )
        if rng.random() < 0.2:
            data[rng.integers(n), rng.integers(len(channels))] = rng.choice(
                [np.nan, np.inf, -np.inf]
            )
        t0 = int(rng.choice([now, now + 10**14, 10**17, now - 10**15]))
        frame = Frame("s1", 0, t0, int(rng.integers(1, 2**32)), channels, data)
        assert frame_problem(frame, now) == reference_problem(frame, now)
