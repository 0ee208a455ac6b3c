"""Collector A/B: the same decode and pipeline work, timed so that two trees can be compared
side by side on a busy machine. Run it in each tree, interleaved, e.g.

    git archive 1db100b | tar -x -C /tmp/before
    (cd /tmp/before && PYTHONPATH=. python -m bench.collector_ab)
    python -m bench.collector_ab

and compare the medians (the minimum is printed too: on a shared machine it is the steadier
figure). CPU time of this process, 9 runs each: 20,000 samples decoded per profile, and one
100 Hz WitMotion sensor's 120 s through decoder, clock, framer and wire encoding.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.collector_throughput import streams
from collector import profiles
from collector.decode import Decoder
from collector.pipeline import SensorPipeline
from collector.virtual import encode_witmotion, notifications, simulate_patient
from poise.core import wire

REPEATS = 9


def _times(run: Callable[[], None]) -> dict[str, float]:
    ts = []
    for _ in range(REPEATS):
        t0 = time.process_time()
        run()
        ts.append(time.process_time() - t0)
    return {"median_ms": round(statistics.median(ts) * 1e3, 1), "min_ms": round(min(ts) * 1e3, 1)}


def main() -> dict[str, dict[str, float]]:
    out = {}
    st = streams(np.random.default_rng(0))
    for pid in ("witmotion-wt901ble", "polar-verity-sense", "nus-json"):
        notes, settings = st[pid]
        prof = profiles.get(pid)
        if pid == "polar-verity-sense" and "factor" in prof.settings:  # an older tree
            settings = {"factor": "0.000244"}

        def decode(prof: profiles.Profile = prof, notes: list[bytes] = notes,
                   settings: dict[str, str] = settings) -> None:  # fmt: skip
            dec = Decoder(prof, settings=settings)
            for b in notes:
                dec.feed(b)

        out[f"decode_{pid}"] = _times(decode)
    rng = np.random.default_rng(1)
    trace = simulate_patient(rng, 120.0)["shank"]
    notes = list(notifications(rng, encode_witmotion(trace.acc, trace.gyr), 20, trace.time_s))
    wit = profiles.get("witmotion-wt901ble")

    def pipeline() -> None:
        pipe = SensorPipeline(wit, "s-1", 100.0)
        for t, b in notes:
            for f in pipe.feed(b, int(1e18 + t * 1e9)):
                wire.encode(f)

    out["pipeline_120s"] = _times(pipeline)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
