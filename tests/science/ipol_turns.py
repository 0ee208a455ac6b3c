"""Turn timing and plausibility on real walks: poise's turn detection against the annotated
U-turns of a public lower-back IMU data set, and the plausibility checks on the same walks (not redistributed here: its repository carries no data
licence beyond the AGPL of its code, so nothing of it is committed).

Data set: C. Voisard et al., "A reference data set for the study of healthy subject gait
with inertial measurement units", IPOL 2023 (https://www.ipol.im/pub/art/2023/497/), data at
https://github.com/CyrilVoisard/ipol_dataset_1: 19 healthy adults, XSens MTw Awinda at L5,
100 Hz, standing still, walking 10 m, turning 180°, walking back; each trial's U-turn start
and end annotated (from a published detector, checked by hand).

Run (prints one line per trial and the summary that docs/metrics.md quotes)::

    git clone https://github.com/CyrilVoisard/ipol_dataset_1
    python -m tests.science.ipol_turns ipol_dataset_1/GaitData
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from analysis import steadi
from analysis.plausibility import check_imu


def load(lb: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.loadtxt(lb, skiprows=2)
    t = data[:, 0] / 100.0  # PacketCounter at 100 Hz
    return t, data[:, 1:4], data[:, 4:7]


def main(folder: str) -> int:
    errors_start, errors_end, errors_dur, durations = [], [], [], []
    missed = 0
    refused: list[str] = []
    deg_named = 0
    for lb_path in sorted(Path(folder).glob("*_lb.txt")):
        t, acc, gyr = load(lb_path)
        report = check_imu(t, acc, gyr)
        if not report.ok:
            refused.append(f"{lb_path.name}: {report.message()}")
        slip = check_imu(t, acc, np.degrees(gyr))
        deg_named += [f.code for f in slip.problems] == ["gyr_unit_deg_s"]
    n_files = len(list(Path(folder).glob("*_lb.txt")))
    print(f"plausibility: {n_files - len(refused)} of {n_files} walks pass; refused: {refused}")
    print(f"the same walks with the gyroscope in deg/s: {deg_named} named as deg/s")
    for meta_path in sorted(Path(folder).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        lb = meta_path.with_name(meta_path.stem + "_lb.txt")
        if not lb.exists() or "UTurnBoundaries" not in meta:
            continue
        t, acc, gyr = load(lb)
        if not np.all(np.diff(t) > 0):  # a repeated packet counter: drop the repeats
            keep = np.concatenate([[True], np.diff(t) > 0])
            t, acc, gyr = t[keep], acc[keep], gyr[keep]
        a_ref, b_ref = (v / 100.0 for v in meta["UTurnBoundaries"])
        m = steadi.trunk_motion(t, acc, gyr)
        turns = steadi.find_turns(t, m.yaw_rate_rad_s)
        near = [x for x in turns if x.start_s < b_ref and x.end_s > a_ref]
        if not near:
            missed += 1
            print(f"{meta_path.stem}: no turn found (reference {a_ref:.2f}-{b_ref:.2f} s)")
            continue
        turn = max(near, key=lambda x: abs(x.angle_rad))
        errors_start.append(turn.start_s - a_ref)
        errors_end.append(turn.end_s - b_ref)
        errors_dur.append((turn.end_s - turn.start_s) - (b_ref - a_ref))
        durations.append(b_ref - a_ref)
        print(
            f"{meta_path.stem}: reference {a_ref:.2f}-{b_ref:.2f} s, poise "
            f"{turn.start_s:.2f}-{turn.end_s:.2f} s, {np.degrees(abs(turn.angle_rad)):.0f}°"
        )
    es, ee, ed = (np.array(x) for x in (errors_start, errors_end, errors_dur))
    dur = np.array(durations)
    print(
        f"\n{len(ed)} trials ({missed} without a turn found); reference turn duration median "
        f"{np.median(dur):.2f} s; poise minus reference: start median {np.median(es):+.2f} s, "
        f"end median {np.median(ee):+.2f} s, duration median {np.median(ed):+.2f} s "
        f"(IQR {np.percentile(ed, 25):+.2f} to {np.percentile(ed, 75):+.2f} s), relative "
        f"duration error median {np.median(ed / dur) * 100:+.1f} %, "
        f"median |error| {np.median(np.abs(ed / dur)) * 100:.1f} %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
