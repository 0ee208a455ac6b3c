"""Topic scheme, ids, and line protocol (checked against literal lines)."""

import numpy as np
import pytest

from poise.core import influx, topics, wire


def test_raw_topic_round_trip_and_id_rules():
    t = topics.raw("clinic-1", "p007", "p007-shank")
    assert t == "poise/v1/raw/clinic-1/p007/p007-shank"
    assert topics.parse_raw(t) == topics.RawKey("clinic-1", "p007", "p007-shank")
    for bad in ("Jane Doe", "", "a/b", "x" * 65, "é"):
        with pytest.raises(topics.TopicError):
            topics.raw("s", bad, "x")
    for bad_topic in ("poise/v1/raw/a/b", "poise/v2/raw/a/b/c", "poise/v1/raw/a/b c/d", "x"):
        with pytest.raises(topics.TopicError):
            topics.parse_raw(bad_topic)


def test_other_topics():
    assert topics.status("s", "gw") == "poise/v1/status/s/gw"
    assert topics.session("s", "p") == "poise/v1/session/s/p"
    assert topics.metrics("s", "p") == "poise/v1/metrics/s/p"
    assert topics.alerts("s", "p") == "poise/v1/alerts/s/p"


def test_frame_lines_literal():
    f = wire.Frame(
        "s1",
        0,
        1_000,
        10,
        ("acc_x", "gyr_z"),
        np.array([[1.0, -0.5], [0.1, 3e-8]], dtype=np.float32),
    )
    lines = influx.frame_lines(f, {"site": "a", "patient": "p1", "sensor": "s1"})
    assert lines == [
        "imu,patient=p1,sensor=s1,site=a acc_x=1,gyr_z=-0.5 1000",
        "imu,patient=p1,sensor=s1,site=a acc_x=0.100000001,gyr_z=2.99999989e-08 1010",
    ]


def test_frame_lines_round_trip_float32_exactly():
    rng = np.random.default_rng(3)
    data = rng.normal(0, 50, (200, 3)).astype(np.float32)
    f = wire.Frame("s", 0, 0, 1, ("acc_x", "acc_y", "acc_z"), data)
    parsed = np.array(
        [
            [float(kv.split("=")[1]) for kv in line.split(" ")[1].split(",")]
            for line in influx.frame_lines(f, {"site": "x"})
        ],
        dtype=np.float32,
    )
    assert np.array_equal(parsed, data)


def test_tag_escaping_and_point_line():
    assert influx.tag_string({"b": "x y", "a": "1,2=3"}) == r"a=1\,2\=3,b=x\ y"
    line = influx.point_line(
        "sway",
        {"patient": "p1"},
        {"rms": 0.5, "n": 3, "ok": True, "v": "1.2", "bad": float("nan")},
        5,
    )
    assert line == 'sway,patient=p1 rms=0.5,n=3i,ok=true,v="1.2" 5'
    with pytest.raises(ValueError, match="no finite field"):
        influx.point_line("m", {}, {"x": float("inf")}, 1)
