"""Per-frame cost of each step of the ingest's hot path, one core, no broker or database.

A frame of 10 IMU6 samples as the benchmark's gateway sends it; each step timed with
``timeit`` in rounds that alternate the steps, the median of the rounds reported in µs per
frame. ``--old DIR`` also times ``frame_text`` and ``frame_problem`` of another copy of the
package (e.g. ``git archive COMMIT poise | tar -x -C DIR``) in the same rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from poise.core import topics, wire
from poise.core.influx import frame_text, tags_for
from poise.core.plausible import frame_problem


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--number", type=int, default=3000)
    ap.add_argument("--old", type=Path, help="a copy of an older poise package to compare")
    args = ap.parse_args()
    data = np.random.default_rng(0).normal(0, 3, (10, 6)).astype(np.float32)
    payload = wire.encode(wire.Frame("s1", 0, time.time_ns(), 10_000_000, wire.IMU6, data))
    topic = topics.raw("bench", "p1", "s1")
    frame, tags, now = wire.decode(payload), tags_for("bench", "p1", "s1"), time.time_ns()
    steps: dict[str, Callable[[], object]] = {
        "decode": lambda: wire.decode(payload),
        "parse_raw": lambda: topics.parse_raw(topic),
        "frame_problem": lambda: frame_problem(frame, now),
        "frame_text": lambda: frame_text(frame, tags),
    }
    if args.old:
        old_influx = _load("old_influx", args.old / "poise/core/influx.py")
        old_plausible = _load("old_plausible", args.old / "poise/core/plausible.py")
        assert old_influx.frame_text(frame, tags) == frame_text(frame, tags)
        steps["old frame_problem"] = lambda: old_plausible.frame_problem(frame, now)
        steps["old frame_text"] = lambda: old_influx.frame_text(frame, tags)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            times[name].append(timeit.timeit(fn, number=args.number) / args.number * 1e6)
    result = {f"{k}_us_per_frame": round(statistics.median(v), 1) for k, v in times.items()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
