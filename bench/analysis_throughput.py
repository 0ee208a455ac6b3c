"""Analysis throughput, in multiples of real time for one core.

- sway: one 100 Hz lower-back sensor; a 60 s trial scored at once, and the live path
  (10 s window every 1 s) over 10 minutes. Baseline in the same run: the zero-phase
  Butterworth filter of the two horizontal axes alone (what any sway pipeline must do).
- joint: a two-sensor 100 Hz stream (knee flexion with the thigh moving too, from the
  independent hinge simulator in tests/simulators/hinge.py); batch over 10 minutes, and live
  in 100 ms chunks as frames arrive. Baseline in the same run: VQF on both sensors alone.

Each figure is the median of repeated runs. One thread: BLAS is pinned to one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

from analysis import joint, sway  # noqa: E402
from analysis.orientation import Orientation  # noqa: E402
from bench.common import median_time  # noqa: E402
from collector.virtual import stance_trace  # noqa: E402
from tests.simulators.hinge import Scenario, simulate  # noqa: E402


def bench_sway(repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    trial = stance_trace(rng, 60.0, 0.05)
    long = stance_trace(rng, 600.0, 0.05)
    fs = 100.0

    def baseline() -> None:
        sos = signal.butter(4, 3.5, fs=fs, output="sos")
        signal.sosfiltfilt(sos, trial.acc[:, 0])
        signal.sosfiltfilt(sos, trial.acc[:, 2])

    def per_trial() -> None:
        sway.analyze_trial(trial.time_s, trial.acc, trial.gyr)

    def unchecked_trial() -> None:  # the same without the plausibility checks
        sway.analyze_trial(trial.time_s, trial.acc, trial.gyr, check=False)

    def live() -> None:
        ls = sway.LiveSway(fs)
        for i in range(0, len(long.time_s), 10):
            ls.update(long.time_s[i : i + 10], long.acc[i : i + 10], long.gyr[i : i + 10])

    t_base = median_time(baseline, repeats)
    t_trial = median_time(per_trial, repeats)
    t_unchecked = median_time(unchecked_trial, repeats)
    t_live = median_time(live, max(1, repeats // 3))
    return {
        "trial_x_realtime": round(60.0 / t_trial),
        "trial_without_plausibility_x_realtime": round(60.0 / t_unchecked),
        "live_x_realtime": round(600.0 / t_live),
        "filter_only_x_realtime": round(60.0 / t_base),
        "trial_cost_vs_filter_only": round(t_trial / t_base, 1),
    }


def bench_joint(repeats: int) -> dict[str, Any]:
    reps = 150  # 150 knee flexions of 3 s with 1 s pauses: 10 minutes
    sim = simulate(
        Scenario(joint="knee", proximal="move", roms_deg=(70.0,) * reps),
        np.random.default_rng(1),
    )
    p = d = sim
    p_acc, p_gyr, d_acc, d_gyr = sim.acc_p, sim.gyr_p, sim.acc_d, sim.gyr_d
    duration = float(sim.time_s[-1] - sim.time_s[0])

    def baseline() -> None:
        Orientation().update(p.time_s, p_acc, p_gyr)
        Orientation().update(d.time_s, d_acc, d_gyr)

    def batch() -> None:
        t, a = joint.joint_angle(p.time_s, p_acc, p_gyr, d_acc, d_gyr)
        joint.count_reps(t, a)

    def live() -> None:
        ja, rc = joint.JointAngle(), joint.RepCounter()
        for i in range(0, len(p.time_s), 10):
            s = slice(i, i + 10)
            t, a = ja.update(p.time_s[s], p_acc[s], p_gyr[s], d_acc[s], d_gyr[s])
            rc.update(t, a)

    t_base = median_time(baseline, repeats)
    t_batch = median_time(batch, repeats)
    t_live = median_time(live, max(1, repeats // 3))
    return {
        "stream_s": round(duration),
        "batch_x_realtime": round(duration / t_batch),
        "live_100ms_chunks_x_realtime": round(duration / t_live),
        "vqf_only_x_realtime": round(duration / t_base),
        "batch_cost_vs_vqf_only": round(t_batch / t_base, 1),
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    result = {"sway": bench_sway(args.repeats), "joint": bench_joint(args.repeats)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
