"""Session intensity against answers computed by hand (see each test's arithmetic)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis import intensity as it
from analysis.contract import ImuChunk
from poise.cli import main
from poise.core.channels import G

FS = 100.0


def steady(norm_g: float, seconds: float, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Acceleration of constant norm (in g), pointing along a fixed oblique direction."""
    n = round(seconds * FS)
    t = t0 + np.arange(n) / FS
    u = np.array([1.0, 2.0, 2.0]) / 3.0
    return t, np.tile(u * norm_g * G, (n, 1))


def test_enmo_of_a_constant_norm():
    # |a| = 1.25 g -> ENMO = 250 mg; |a| = 0.9 g -> max(-100, 0) = 0 mg
    _, acc = steady(1.25, 1.0)
    assert it.enmo_mg(acc) == pytest.approx(np.full(100, 250.0))
    _, acc = steady(0.9, 1.0)
    assert it.enmo_mg(acc) == pytest.approx(np.zeros(100))


def test_mad_of_a_sine_resultant():
    # r = 1 g + 0.1 g sin(2 pi 1 Hz t) over whole periods: mean |r - mean r| = 0.1 g * 2/pi
    # = 63.66 mg; ENMO = mean(max(0.1 sin, 0)) g = 0.1/pi g = 31.83 mg
    t = np.arange(500) / FS
    r = G * (1.0 + 0.1 * np.sin(2 * np.pi * t))
    acc = np.column_stack([np.zeros_like(r), np.zeros_like(r), r])
    (ep,) = it.epochs(t, acc)
    assert ep.mad_mg == pytest.approx(200 / math.pi, rel=1e-3)
    assert ep.enmo_mg == pytest.approx(100 / math.pi, rel=1e-3)
    assert ep.duration_s == pytest.approx(5.0)
    assert ep.zone == "sedentary"  # 31.8 mg < 47.4 mg


@pytest.mark.parametrize(
    ("placement", "enmo", "zone"),
    [
        ("lumbar", 47.3, "sedentary"),
        ("lumbar", 47.4, "light"),
        ("lumbar", 69.1, "moderate"),
        ("lumbar", 258.6, "moderate"),
        ("lumbar", 258.7, "vigorous"),
        ("thigh", 60.0, "light"),
        ("wrist", 60.0, "light"),
        ("wrist", 100.6, "moderate"),
        ("wrist", 428.7, "moderate"),
        ("wrist", 428.8, "vigorous"),
    ],
)
def test_cutpoints(placement, enmo, zone):
    p = it.IntensityParams(placement=placement)
    assert it.ZONES[it.zone_index(enmo, p)] == zone


def test_session_summary_by_hand():
    # 60 s sedentary (1.0 g), 60 s light (1.06 g: 60 mg), 60 s moderate (1.2 g: 200 mg),
    # 60 s vigorous (1.5 g: 500 mg) on the trunk.
    parts = [steady(g, 60.0, t0=60.0 * i) for i, g in enumerate((1.0, 1.06, 1.2, 1.5))]
    t = np.concatenate([p[0] for p in parts])
    acc = np.concatenate([p[1] for p in parts])
    res = it.analyze(t, acc, it.IntensityParams("lumbar"))
    assert res["duration_s"] == pytest.approx(240.0)
    assert res["zones_s"] == pytest.approx(
        {"sedentary": 60.0, "light": 60.0, "moderate": 60.0, "vigorous": 60.0}
    )
    assert res["active_s"] == pytest.approx(180.0)
    # load = 1 min x 1 + 1 min x 2 + 1 min x 3 = 6
    assert res["load"] == pytest.approx(6.0)
    # mean ENMO = (0 + 60 + 200 + 500) / 4 = 190 mg; the best minute is the vigorous one
    assert res["enmo_mean_mg"] == pytest.approx(190.0)
    assert res["enmo_peak_1min_mg"] == pytest.approx(500.0)
    assert res["mad_mean_mg"] == pytest.approx(0.0, abs=1e-9)
    assert res["epochs"] == 48
    # 1.08 g (80 mg) is light on the wrist (44.8-100.6 mg), moderate on the trunk
    wrist = it.analyze(*steady(1.08, 60.0), it.IntensityParams("wrist"))
    trunk = it.analyze(*steady(1.08, 60.0), it.IntensityParams("lumbar"))
    assert wrist["zones_s"]["light"] == pytest.approx(60.0)
    assert trunk["zones_s"]["moderate"] == pytest.approx(60.0)


def test_short_session_has_no_peak_minute():
    res = it.analyze(*steady(1.2, 30.0))
    assert res["enmo_peak_1min_mg"] is None
    assert res["duration_s"] == pytest.approx(30.0)


def test_epochs_sit_on_the_time_axis():
    # a recording starting at 2.5 s: epochs [0, 5) (2.5 s of data), [5, 10), [10, 12.5)
    t, acc = steady(1.1, 10.0, t0=2.5)
    eps = it.epochs(t, acc)
    assert [e.index for e in eps] == [0, 1, 2]
    assert [e.duration_s for e in eps] == pytest.approx([2.5, 5.0, 2.5])


def test_streaming_equals_batch_with_state_handover():
    rng = np.random.default_rng(3)
    n = 3000
    t = 1_800_000_000.0 + np.arange(n) / FS
    acc = rng.normal(0, 2.0, (n, 3)) + np.array([0, 0, G])
    batch = it.epochs(t, acc)
    live = it.LiveIntensity(1 / FS)
    got = []
    for lo in range(0, n, 137):
        chunk = {"segment": ImuChunk(t[lo : lo + 137], acc[lo : lo + 137])}
        got += live.update(chunk)
        # hand the state to a fresh object through JSON, as a worker checkpoint would
        fresh = it.LiveIntensity(1 / FS)
        fresh.set_state(json.loads(json.dumps(live.get_state())))
        live = fresh
    got += live.finish()
    assert [r.fields["enmo_mg"] for r in got] == pytest.approx([e.enmo_mg for e in batch])
    assert [r.fields["mad_mg"] for r in got] == pytest.approx([e.mad_mg for e in batch])
    assert [r.t_s for r in got] == [e.t_last_s for e in batch]
    assert all(r.algorithm_version == it.ALGORITHM_VERSION for r in got)


def test_heart_rate_zones_and_trimp_by_hand():
    # rest 60, max 180: 10 min at 120 bpm (HRR 50 %: moderate; 66.7 % HRmax: weight 2)
    # and 5 min at 160 bpm (HRR 83 %: vigorous; 88.9 % HRmax: weight 4), 1 Hz
    t = np.arange(900.0)
    hr = np.where(t < 600, 120.0, 160.0)
    res = it.heart_rate_summary(t, hr, it.HeartRateParams(rest_bpm=60, max_bpm=180))
    assert res["hrr_zones_s"]["moderate"] == pytest.approx(600.0)
    assert res["hrr_zones_s"]["vigorous"] == pytest.approx(300.0)
    # TRIMP = 10 min x 2 + 5 min x 4 = 40
    assert res["trimp"] == pytest.approx(40.0)
    assert res["hr_mean_bpm"] == pytest.approx((600 * 120 + 300 * 160) / 900)


def test_heart_rate_gaps_are_capped():
    # two samples 60 s apart count 5 s (max_gap_s) each, not 60 s
    res = it.heart_rate_summary(
        np.array([0.0, 60.0]), np.array([120.0, 120.0]), it.HeartRateParams(60, 180)
    )
    assert sum(res["hrr_zones_s"].values()) == pytest.approx(10.0)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="placement"):
        it.IntensityParams(placement="ankle")
    with pytest.raises(ValueError, match="rest"):
        it.HeartRateParams(rest_bpm=190, max_bpm=180)


def _write_csv(path: Path, t: np.ndarray, acc: np.ndarray, hr: np.ndarray | None = None) -> None:
    cols = ["time_s", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
    rows = [t, acc[:, 0], acc[:, 1], acc[:, 2], *(np.zeros_like(t),) * 3]
    if hr is not None:
        cols.append("hr_bpm")
        rows.append(hr)
    lines = [",".join(cols)] + [",".join(f"{v:.6f}" for v in r) for r in zip(*rows, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_cli_json_known_answer(tmp_path, capsys):
    parts = [steady(g, 30.0, t0=30.0 * i) for i, g in enumerate((1.0, 1.2))]
    t = np.concatenate([p[0] for p in parts])
    acc = np.concatenate([p[1] for p in parts])
    f = tmp_path / "session.csv"
    _write_csv(f, t, acc, hr=np.full_like(t, 120.0))
    assert (
        main(["analyze", "intensity", str(f), "--json", "--hr-rest", "60", "--hr-max", "180"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["duration_s"] == pytest.approx(60.0)
    assert out["active_s"] == pytest.approx(30.0)
    assert out["zones_s"]["moderate"] == pytest.approx(30.0)
    assert out["enmo_mean_mg"] == pytest.approx(100.0, rel=1e-4)
    assert out["load"] == pytest.approx(1.0)  # 0.5 min x 2
    assert out["trimp"] == pytest.approx(2.0)  # 1 min at 66.7 % HRmax x 2
    assert out["algorithm_version"] == it.ALGORITHM_VERSION
    assert main(["analyze", "intensity", str(f), "--placement", "wrist"]) == 0
    text = capsys.readouterr().out
    assert "active_s" in text
    assert "moderate" in text


def test_cli_refuses_bad_input(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("time_s,acc_x\n0,1\n")
    assert main(["analyze", "intensity", str(f)]) == 2
    assert "acc_y" in capsys.readouterr().err
    t, acc = steady(1.0, 10.0)
    # a living signal (a constant one is refused before anything else: a stuck sensor)
    acc = acc + np.random.default_rng(0).normal(0.0, 0.02, acc.shape)
    g = tmp_path / "ok.csv"
    _write_csv(g, t, acc)
    assert main(["analyze", "intensity", str(g), "--hr-rest", "60", "--hr-max", "180"]) == 2
    assert "hr_bpm" in capsys.readouterr().err
