"""Every firmware profile decodes its test vectors exactly, and every decoder survives random
input with only its documented error."""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import profiles
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
    samples = []
    for hexstr in vec["notifications"]:
        samples += dec.feed(bytes.fromhex(hexstr.replace(" ", "")))
    assert dec.pending_bytes() == 0
    assert len(samples) == len(vec["expect"])
    for sample, exp in zip(samples, vec["expect"], strict=True):
        got = dict(zip(prof.channels, sample.values, strict=True))
        for group in ("acc", "gyr", "mag"):
            names = [f"{group}_{a}" for a in "xyz"]
            if group in exp:
                want = [v * TO_SI[exp[f"{group}_unit"]] for v in exp[group]]
                assert [got[n] for n in names] == pytest.approx(want, rel=1e-12, abs=1e-12), group
            elif names[0] in got:
                assert all(math.isnan(got[n]) for n in names), f"{group} should be absent"
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
    dec = Decoder(prof, strict=True)
    frame = bytes.fromhex(
        "05 0000000000000000 80 0000 0000 0000 20 ff"
    )  # 255 x 32-bit deltas, no data
    with pytest.raises(DecodeError, match="cut short"):
        dec.feed(frame)
