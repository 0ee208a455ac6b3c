"""Every firmware profile decodes its test vectors exactly, and every decoder survives random
input with only its documented error."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import profiles
from collector.codecs import codec_for
from collector.decode import DecodeError, Decoder

VECTORS = profiles.PROFILE_DIR / "vectors"
# Unit conversions written out here, independent of the production tables.
TO_SI = {
    "g": 9.80665,
    "mg": 0.00980665,
    "m/s2": 1.0,
    "deg/s": math.pi / 180,
    "rad/s": 1.0,
    "uT": 1.0,
}
REQUIRED = {
    "witmotion-wt901ble",
    "thingy52",
    "polar-h10",
    "polar-verity-sense",
    "microbit",
    "metamotion-bmi160",
    "nus-json",
    "movella-dot",
}


def _cases():
    for path in sorted(VECTORS.glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        for i, vec in enumerate(doc["vector"]):
            yield pytest.param(path.stem, vec, id=f"{path.stem}-{i}")


def test_every_required_profile_exists_with_vectors():
    loaded = profiles.load_all()
    assert set(loaded) >= REQUIRED
    assert {p.stem for p in VECTORS.glob("*.toml")} >= REQUIRED
    readme = (profiles.PROFILE_DIR / "README.md").read_text()
    for pid in REQUIRED:
        assert f"`{pid}`" in readme


@pytest.mark.parametrize(("profile_id", "vec"), list(_cases()))
def test_vector_decodes_exactly(profile_id, vec):
    prof = profiles.get(profile_id)
    dec = Decoder(prof, strict=True, settings=vec.get("settings"))
    for hexstr in vec.get("answers", []):  # the device's answers to configuration writes
        dec.answer(bytes.fromhex(hexstr.replace(" ", "")))
    assert dec.last_refusal is None
    samples = []
    for hexstr in vec["notifications"]:
        samples += dec.feed(bytes.fromhex(hexstr.replace(" ", "")))
    assert dec.pending_bytes() == 0
    assert len(samples) == len(vec["expect"])
    for sample, exp in zip(samples, vec["expect"], strict=True):
        got = sample.as_dict()
        for group in ("acc", "gyr", "mag"):
            names = [f"{group}_{a}" for a in "xyz"]
            if group in exp:
                want = [v * TO_SI[exp[f"{group}_unit"]] for v in exp[group]]
                assert [got[n] for n in names] == pytest.approx(want, rel=1e-12, abs=1e-12), group
            else:  # the decoder returns only the channels a sample has
                assert not set(names) & set(got), f"{group} should be absent"
            assert all(math.isfinite(v) for v in got.values())
        assert sample.device_time_ns == exp.get("device_time_ns")


def test_settings_are_checked():
    prof = profiles.get("metamotion-bmi160")
    with pytest.raises(profiles.ProfileError, match="expected one of"):
        Decoder(prof, settings={"range_g": "3"})
    with pytest.raises(profiles.ProfileError, match="no setting 'speed'"):
        Decoder(prof, settings={"speed": "1"})
    writes = prof.writes_for(None, prof.resolve({"range_g": "8"}))
    assert writes[0].data == bytes.fromhex("03032808")


def test_polar_frames_space_samples_by_the_previous_timestamp():
    prof = profiles.get("polar-h10")  # nominal 100 Hz
    dec = Decoder(prof)
    one = "01" + "f7ffffffe703" * 4  # 4 raw samples

    def frame(t_ns: int) -> list[int]:
        out = dec.feed(bytes.fromhex("02" + t_ns.to_bytes(8, "little").hex() + one))
        return [s.device_time_ns - profiles.POLAR_EPOCH_NS for s in out]

    frame(10**9)
    # 4 samples over the 44 ms since the last frame: the device runs at 90.9 Hz, 11 ms apart
    assert frame(10**9 + 44_000_000) == [1_011_000_000, 1_022_000_000, 1_033_000_000, 1_044_000_000]
    # a frame went missing (84 ms for 4 samples): nominal spacing back from the timestamp
    assert frame(10**9 + 128_000_000) == [
        1_098_000_000,
        1_108_000_000,
        1_118_000_000,
        1_128_000_000,
    ]


def test_verity_factor_comes_from_the_device_per_measurement_type():
    """A real Verity answers each start write with its FACTOR; acc and gyro differ. Without
    that answer a compressed frame is refused, never decoded as if FACTOR were 1 (which
    made 1 g read as ~40,000 m/s²)."""
    prof = profiles.get("polar-verity-sense")
    acc = bytes.fromhex("02 00ca9a3b00000000 81 0000 0000 0010")  # one sample (0, 0, 4096)
    gyr = bytes.fromhex("05 00ca9a3b00000000 80 1000 0000 0000")  # one sample (16, 0, 0)
    dec = Decoder(prof, strict=True)
    with pytest.raises(DecodeError, match="before the device said its FACTOR"):
        dec.feed(acc)
    for write, answer in prof.device.answers:
        assert write in {w.data for w in prof.writes_for(52, prof.resolve({}))}
        dec.answer(answer)
    assert dec.factors == {"acc": 2.44140625e-4, "gyr": 0.06103515625}
    (a,) = dec.feed(acc)
    assert a.as_dict()["acc_z"] == pytest.approx(9.80665)  # 4096 counts = 1 g
    (g,) = dec.feed(gyr)
    assert g.channels == ("gyr_x", "gyr_y", "gyr_z")
    assert g.values[0] == pytest.approx(math.radians(16 * 0.06103515625))
    refused = Decoder(prof)
    refused.answer(bytes.fromhex("f0 02 05 03 00"))  # GYRO start: status 3, not supported
    assert refused.last_refusal is not None
    assert "not supported" in refused.last_refusal


@pytest.mark.parametrize("profile_id", sorted(REQUIRED))
def test_decoders_only_raise_their_own_error_on_random_input(profile_id):
    prof = profiles.get(profile_id)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=8))
    def check(chunks):
        dec = Decoder(prof, strict=False)
        strict = Decoder(prof, strict=True)
        for chunk in chunks:
            out = dec.feed(chunk)
            assert len(out) <= 3 * len(chunk)  # bounded by the input: no runaway loop or allocation
            assert dec.pending_bytes() <= 4096 + 300
            offsets = []
            try:
                strict.feed(chunk)
            except DecodeError as exc:
                offsets.append(exc.offset)
            assert all(o >= 0 for o in offsets)

    check()


def test_polar_delta_block_claiming_huge_sizes_is_rejected_quickly():
    prof = profiles.get("polar-verity-sense")
    dec = Decoder(prof, strict=True, settings={"gyr_factor": "1"})
    frame = bytes.fromhex(
        "05 0000000000000000 80 0000 0000 0000 20 ff"
    )  # 255 x 32-bit deltas, no data
    with pytest.raises(DecodeError, match="cut short"):
        dec.feed(frame)


@pytest.mark.parametrize("profile_id", sorted(profiles.load_all()))
def test_each_codec_encodes_what_it_decodes(profile_id):
    """The device side of a profile's codec (what the virtual sensors send) and the gateway
    side are inverse, to the profile's quantisation; each device answer is understood."""
    prof = profiles.get(profile_id)
    device, gateway = codec_for(prof), Decoder(prof)
    for _write, answer in prof.device.answers:
        device.answer(answer)
        gateway.answer(answer)
    assert gateway.last_refusal is None
    rng = np.random.default_rng(1)
    span = {"acc": 15.0, "gyr": 3.0, "mag": 40.0}
    rows = np.column_stack([rng.uniform(-1, 1, 40) * span[c[:3]] for c in prof.channels])
    out = device.encode(rows, 0, prof.default_rate_hz, 247)
    assert sum(n for _data, n in out) == len(rows)
    got: dict[str, list[float]] = {c: [] for c in prof.channels}
    for data, _n in out:
        assert len(data) <= 244
        for s in gateway.feed(data):
            for c, v in s.as_dict().items():
                got[c].append(v)
    assert gateway.stats.errors == 0
    for i, c in enumerate(prof.channels):
        assert np.allclose(got[c], rows[:, i], atol=0.01 * span[c[:3]]), c
    if prof.pmd is not None:
        for group, frame_type in prof.pmd.device_frames.items():
            assert any(d[9] == frame_type for d, _n in out), group


def test_virtual_verity_sends_compressed_frames_only():
    prof = profiles.get("polar-verity-sense")
    device = codec_for(prof)
    for _w, answer in prof.device.answers:
        device.answer(answer)
    out = device.encode(np.zeros((10, 6)), 0, 52, 247)
    assert out
    assert all(d[9] & 0x80 for d, _n in out)
