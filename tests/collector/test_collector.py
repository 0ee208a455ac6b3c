"""Profiles, decoder, clock model, pipeline and spool: pure parts of the collector."""

from pathlib import Path

import numpy as np
import pytest

from collector import profiles
from collector.clock import ClockParams, HostClock
from collector.decode import DecodeError, Decoder
from collector.pipeline import SensorPipeline
from collector.spool import Spool
from collector.virtual import encode_witmotion, notifications, simulate_patient

G = 9.80665
# One real 80-byte WitMotion notification (4 records), from the vendor's SDK documentation.
WIT_80 = bytes.fromhex(
    "5561fcffefff110800000000000098ff0d00f831"
    "5561fdffecff0e0800000000000098ff0d00f831"
    "5561fdffecff0e0800000000000098ff0d00f831"
    "5561feffe9ff0f0800000000000098ff0d00f831"
)


@pytest.fixture(scope="module")
def wit():
    return profiles.get("witmotion-wt901ble")


def test_witmotion_vector_decodes_exactly(wit):
    samples = Decoder(wit, strict=True).feed(WIT_80)
    assert len(samples) == 4
    # frame 1: raw (-4, -17, 2065) / 32768 * 16 g; angles (-104, 13, 12792) / 32768 * 180 deg
    acc_g = [v / G for v in samples[0].values[:3]]
    assert acc_g == pytest.approx([-4 / 2048, -17 / 2048, 2065 / 2048], abs=1e-12)
    assert acc_g == pytest.approx([-0.0020, -0.0083, 1.0083], abs=1e-4)
    assert samples[0].values[3:] == (0.0, 0.0, 0.0)
    deg = {k: np.degrees(v) for k, v in samples[0].extra.items()}
    assert deg == pytest.approx({"roll": -0.571, "pitch": 0.071, "yaw": 70.269}, abs=1e-3)


def test_split_and_packed_notifications_give_the_same_samples(wit):
    whole = Decoder(wit).feed(WIT_80)
    for cut in range(1, len(WIT_80)):
        d = Decoder(wit)
        assert d.feed(WIT_80[:cut]) + d.feed(WIT_80[cut:]) == whole
        assert d.pending_bytes() == 0


def test_resync_after_lost_bytes(wit):
    d = Decoder(wit)
    out = d.feed(WIT_80[7:])  # the first record lost its head
    assert len(out) == 3
    assert d.stats.skipped_bytes == 13


def test_register_replies_are_recognised_and_skipped(wit):
    reply = bytes.fromhex("55713a00680169007a0000000000000000000000")
    d = Decoder(wit, strict=True)
    assert d.feed(reply + WIT_80[:20]) == d.feed(b"") + Decoder(wit).feed(WIT_80[:20])
    assert d.stats.other_records == 1


def test_strict_mode_names_the_offset(wit):
    with pytest.raises(DecodeError) as exc:
        Decoder(wit, strict=True).feed(b"\x00\x01" + WIT_80)
    assert exc.value.offset == 0


def test_all_shipped_profiles_load():
    loaded = profiles.load_all()
    assert "witmotion-wt901ble" in loaded
    for p in loaded.values():
        assert p.channels[:3] == ("acc_x", "acc_y", "acc_z")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (('framing = "stream"', 'framing = "morse"'), "field 'packet.framing': expected one of"),
        (
            (
                'type = "i16", scale = 0.00048828125, unit = "g" }',
                'type = "i17", scale = 1, unit = "g" }',
            ),
            "field 'packet.records[0].fields[0].type'",
        ),
        (('unit = "g" }', 'unit = "furlong" }'), "expected one of"),
        (("offset = 18,", "offset = 19,"), "expected a field inside the 20-byte record, found 19"),
        (
            ('id = "witmotion-wt901ble"\n', ""),
            "field 'id': expected the profile id, found nothing (missing)",
        ),
    ],
)
def test_malformed_profile_names_file_field_expected_found(tmp_path: Path, patch, message):
    text = (profiles.PROFILE_DIR / "witmotion-wt901ble.toml").read_text()
    assert patch[0] in text
    bad = tmp_path / "broken.toml"
    bad.write_text(text.replace(patch[0], patch[1], 1))
    with pytest.raises(profiles.ProfileError) as exc:
        profiles.load_profile(bad)
    assert str(exc.value).startswith("broken.toml: ")
    assert message in str(exc.value)


def test_clock_recovers_true_times_under_jitter_bursts_and_drift():
    rng = np.random.default_rng(7)
    rate, n = 100.0, 6000
    drift = 1 + 100e-6  # the device's clock runs 100 ppm fast
    true_t = np.arange(n) / (rate * drift)
    clock = HostClock(ClockParams(nominal_rate_hz=rate))
    stamped, truth = [], []
    i = 0
    while i < n:
        k = int(rng.integers(1, 5))  # a burst of 1-4 samples per connection event
        j = min(n, i + k)
        arrival = true_t[j - 1] + 0.008 + abs(rng.normal(0, 0.03))  # 30 ms jitter, never early
        stamped.extend(clock.stamp(j - i, int(arrival * 1e9)).tolist())
        truth.extend(true_t[i:j].tolist())
        i = j
    err = np.array(stamped) / 1e9 - np.array(truth)
    assert np.all(np.diff(stamped) > 0)
    settled = err[1000:]  # after the first 10 s
    # a constant offset (the minimum latency) is common to all sensors; the rest must be small
    assert np.ptp(settled) < 0.010
    assert abs(np.median(settled) - 0.008) < 0.010


def test_pipeline_counts_and_values_match_the_virtual_sensor(wit):
    rng = np.random.default_rng(11)
    trace = simulate_patient(rng, 20.0)["shank"]
    recs = encode_witmotion(trace.acc, trace.gyr)
    pipe = SensorPipeline(wit, "p1-shank", 100.0)
    frames = []
    for t, data in notifications(rng, recs, 20, trace.time_s):
        frames += pipe.feed(data, int(1e18 + t * 1e9))
    frames += pipe.flush()
    data = np.concatenate([f.data for f in frames])
    assert data.shape == (2000, 6)
    # WitMotion resolution: 16 g / 32768 and 2000 deg/s / 32768, rounded to nearest
    assert np.abs(data[:, :3] - trace.acc).max() <= 0.5 * 16 * G / 32768 + 1e-5
    assert np.abs(data[:, 3:] - trace.gyr).max() <= 0.5 * np.radians(2000) / 32768 + 1e-6
    assert [f.first_sample_seq for f in frames] == list(range(0, 2000, 10))
    times = np.concatenate([f.times_ns() for f in frames])
    assert np.all(np.diff(times) > 0), "frames must never overlap in time"
    assert abs(np.median(np.diff(times)) - 10_000_000) < 20_000


def test_spool_keeps_unacked_frames_across_reopen(tmp_path: Path):
    path = tmp_path / "spool.db"
    s = Spool(path)
    s.put([("t/a", b"1"), ("t/a", b"2"), ("t/b", b"3")])
    rows = s.unacked_after(0, 10)
    assert [r[2] for r in rows] == [b"1", b"2", b"3"]
    s.ack([rows[0][0]], now_ns=100)
    s.close()
    s = Spool(path)
    assert [r[2] for r in s.unacked_after(0, 10)] == [b"2", b"3"]
    assert [r[2] for r in s.acked_since(50)] == [b"1"]
    assert s.acked_since(101) == []
    assert s.counts() == (2, 1)
    assert s.purge(acked_before_ns=101) == 1
    assert s.counts() == (2, 0)


@pytest.mark.parametrize(("withheld", "reported"), [(9, 0), (20, 20), (57, 57), (300, 300)])
def test_clock_counts_samples_lost_in_a_gap(withheld, reported):
    """A device without counters goes quiet (drop, stall, FIFO overflow) and resumes: the
    samples it measured meanwhile are counted as lost and later samples keep true times.
    A gap shorter than ClockParams.gap_s (150 ms) cannot be told from BLE latency without a
    device counter: 9 samples at 100 Hz go unreported (and their time is absorbed)."""
    rng = np.random.default_rng(withheld)
    rate = 100.0
    true_t = np.arange(4000) / rate
    sent = np.ones(4000, bool)
    sent[1500 : 1500 + withheld] = False
    clock = HostClock(ClockParams(nominal_rate_hz=rate))
    stamped, truth = [], []
    idx = np.flatnonzero(sent)
    i = 0
    while i < len(idx):
        j = min(len(idx), i + int(rng.integers(1, 4)))
        arrival = true_t[idx[j - 1]] + 0.004 + abs(rng.normal(0, 0.004))
        stamped.extend(clock.stamp(j - i, int(arrival * 1e9)).tolist())
        truth.extend(true_t[idx[i:j]].tolist())
        i = j
    assert clock.lost_samples == reported
    err = np.array(stamped[2000:]) / 1e9 - np.array(truth[2000:])
    if reported:
        assert np.ptp(err) < 0.01
    assert np.all(np.diff(stamped) > 0)


def _h10_frame(t_last_ns: int, samples: list[tuple[int, int, int]]) -> bytes:
    body = b"".join(int(v).to_bytes(2, "little", signed=True) for s in samples for v in s)
    return bytes([2]) + t_last_ns.to_bytes(8, "little") + bytes([1]) + body


def test_device_timestamps_drop_duplicates_reorder_and_count_gaps():
    """Duplicate and reordered notifications, tested through the pipeline (the transport seam):
    the virtual BLE peripheral speaks WitMotion, whose packets carry neither counter nor time."""
    prof = profiles.get("polar-h10")
    pipe = SensorPipeline(prof, "h10", 100.0)
    frames_ns = [(k + 1) * 50_000_000 for k in range(40)]  # 5 samples per frame, 10 ms apart
    notes = [
        _h10_frame(t, [(k * 5 + i, 0, 1000) for i in range(5)]) for k, t in enumerate(frames_ns)
    ]
    order = list(range(40))
    order[10], order[11] = order[11], order[10]  # reordered
    order.insert(20, 19)  # duplicated
    del order[order.index(30)]  # lost: 5 samples
    out = []
    for j, k in enumerate(order):
        out += pipe.feed(notes[k], 10**18 + j * 50_000_000 + 3_000_000)
    out += pipe.flush()
    xs = np.concatenate([f.data[:, 0] for f in out])
    expected = [v for k in range(40) if k != 30 for v in range(k * 5, k * 5 + 5)]
    np.testing.assert_allclose(xs, np.array(expected) * 0.00980665, rtol=1e-6)
    assert pipe.stats.duplicates == 5
    assert pipe.lost_samples == 5
    times = np.concatenate([f.times_ns() for f in out])
    assert np.all(np.diff(times) > 0)
    seqs = [f.first_sample_seq for f in out]
    assert seqs == sorted(seqs)
    assert out[-1].first_sample_seq + out[-1].n_samples == 200  # indices include the lost ones


def test_two_sensors_of_one_patient_agree_within_10_ms():
    """Two host-stamped sensors with crystals 100 ppm fast and 100 ppm slow, 30 ms of arrival
    jitter and bursts of 1-6 samples per connection event: their clock models must put samples
    taken at the same moment within 10 ms of each other (a joint angle combines them)."""
    rate, seconds = 100.0, 120.0
    stamped = {}
    for name, ppm, seed in (("thigh", +100, 1), ("shank", -100, 2)):
        rng = np.random.default_rng(seed)
        true_t = np.arange(int(seconds * rate)) / (rate * (1 + ppm * 1e-6))
        clock = HostClock(ClockParams(nominal_rate_hz=rate))
        out, i = [], 0
        while i < len(true_t):
            j = min(len(true_t), i + int(rng.integers(1, 7)))
            arrival = true_t[j - 1] + 0.0075 + abs(rng.normal(0, 0.03))
            out.extend(clock.stamp(j - i, int(arrival * 1e9)).tolist())
            i = j
        stamped[name] = (true_t, np.array(out) / 1e9)
    # compare at common true times (interpolate each sensor's stamped times)
    t_common = np.linspace(20, seconds - 5, 500)
    est = {n: np.interp(t_common, tt, st) for n, (tt, st) in stamped.items()}
    disagreement = np.abs(est["thigh"] - est["shank"])
    assert disagreement.max() < 0.010
