"""``analysis.plausibility`` on the independent simulations: each slip is named, the SI
recording passes, and the checks are a pure function the worker can call."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.plausibility import (
    TIME_UNITS,
    ImplausibleInputError,
    Units,
    check_imu,
    gyro_scale,
    require_plausible,
)
from poise.core.channels import UNIT_TO_SI
from tests.science import sims


@pytest.fixture(scope="module")
def walk():
    return sims.tug(np.random.default_rng(21))


@pytest.fixture(scope="module")
def rises():
    return sims.chair_stand(np.random.default_rng(22), [sims.Stand()] * 5)


def codes(report) -> list[str]:
    return [f.code for f in report.problems]


@pytest.mark.parametrize("name", ["walk", "rises"])
def test_si_recordings_pass_and_the_gyro_scale_is_measured(request, name):
    tr = request.getfixturevalue(name)
    report = require_plausible(tr.time_s, tr.acc, tr.gyr)
    assert report.ok
    assert report.sampling_rate_hz == pytest.approx(100.0)
    assert report.gyr_scale == pytest.approx(1.0, abs=0.3)
    fit = gyro_scale(tr.time_s, tr.acc, tr.gyr)
    assert fit is not None
    assert fit.correlation > 0.6
    assert fit.tilt_range_deg > 15  # rising and walking tilt the trunk widely


@pytest.mark.parametrize(
    ("slip", "code", "likely"),
    [
        (Units(gyr="deg/s"), "gyr_unit_deg_s", "deg/s"),
        (Units(gyr="mdeg/s"), "gyr_unit_mdeg_s", "mdeg/s"),
        (Units(acc="g"), "acc_unit_g", "g"),
        (Units(acc="mg"), "acc_unit_mg", "mg"),
        (Units(time="ms"), "time_unit_ms", "ms"),
        (Units(time="us"), "time_unit_us", "us"),
        (Units(time="ns"), "time_unit_ns", "ns"),
    ],
)
def test_each_unit_slip_is_named_and_its_override_undoes_it(rises, slip, code, likely):
    # a file in `slip` units holds the SI values divided by the units' factors
    si = Units()
    t, a, g = rises.time_s, rises.acc, rises.gyr
    ft = t / TIME_UNITS[slip.time]
    fa = a / UNIT_TO_SI[slip.acc]
    fg = g / UNIT_TO_SI[slip.gyr]
    report = check_imu(ft, fa, fg)
    assert codes(report) == [code]
    assert report.problems[0].likely_unit == likely
    with pytest.raises(ImplausibleInputError, match="look like") as exc:
        require_plausible(ft, fa, fg)
    assert exc.value.report.problems[0].code == code
    back = slip.to_si(ft, fa, fg)
    assert check_imu(*back).ok
    assert si.to_si(t, a, g)[0] is t  # SI needs no copy


def test_raw_counts_and_other_scales(rises):
    t, a, g = rises.time_s, rises.acc, rises.gyr
    assert codes(check_imu(t, a / 9.80665 * 16384, g)) == ["acc_raw_counts"]
    assert codes(check_imu(t, a * 2.0, g)) == ["acc_not_gravity"]
    assert codes(check_imu(t, a, g * 10.0)) == ["gyr_scale"]
    assert codes(check_imu(t[::-1].copy(), a, g)) == ["time_not_increasing"]
    assert codes(check_imu(t * 1000 * 1000 * 1000 * 1000, a, g)) == ["sampling_rate"]


def test_quiet_standing_is_not_refused_for_its_own_acceleration():
    """At L5 the trunk's acceleration is in phase with its tilt in quiet standing and biases
    the gyro fit (~2.5 × here); with so little tilt only a unit-sized error refuses."""
    tr = sims.stance(np.random.default_rng(23), 30.0, sway_deg=0.5)
    report = check_imu(tr.time_s, tr.acc, tr.gyr, needs_gyr=False)
    assert report.ok, report.message()
    assert report.gyr_fit_tilt_range_deg is not None
    assert report.gyr_fit_tilt_range_deg < 15
    assert codes(check_imu(tr.time_s, tr.acc, np.degrees(tr.gyr))) == ["gyr_unit_deg_s"]


def test_dead_and_non_finite_signals(walk):
    t, a, g = walk.time_s, walk.acc.copy(), walk.gyr.copy()
    assert codes(check_imu(t, np.tile([0, 0, 9.81], (len(t), 1)), g)) == ["acc_constant"]
    assert codes(check_imu(t, a, np.zeros_like(g))) == ["gyr_missing"]
    assert codes(check_imu(t, a, np.tile([0.1, 0, 0], (len(t), 1)))) == ["gyr_missing"]
    alone = check_imu(t, a, None, needs_gyr=False)
    assert alone.ok
    assert "no_gyroscope" in alone.flags
    bad = a.copy()
    bad[5, 1] = math.nan
    assert codes(check_imu(t, bad, g)) == ["non_finite"]
    bad[5, 1] = math.inf
    assert "sample 6" in check_imu(t, bad, g).message()
    huge = a.copy()
    huge[10:12] = 3e38
    assert codes(check_imu(t, huge, g)) == ["acc_out_of_range"]
    axis = a.copy()
    axis[:, 1] = 0.5
    assert "acc_y_constant" in check_imu(t, axis, g).flags


def test_messages_print_numbers_plainly(rises):
    report = check_imu(rises.time_s, rises.acc / 9.80665, np.degrees(rises.gyr))
    assert "np.float64" not in report.message()
    assert "accelerometer values look like g; poise expects m/s²" in report.message()
    with pytest.raises(ValueError, match="acceleration unit must be one of"):
        Units(acc="furlong/fortnight²")
