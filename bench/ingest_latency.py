"""Ingest under load: sample-to-stored latency, the most 100 Hz sensors one machine keeps
up with, and good-frame throughput during a flood of malformed frames.

Latency: a gateway stand-in publishes 100 ms frames in real time for S sensors (QoS 1); a
poller asks InfluxDB every 50 ms for each sensor's last stored sample; when a newer sample
becomes visible, the time since that sample's timestamp (its frame's 100 ms of batching
included) is one latency observation. A size is *sustained* when everything published is
stored within 10 s of the end and the p99 stays under 2 s.

Flood, saturated: the same number of good frames queued at the broker alone, then
interleaved with as many malformed ones; the ingest drains each backlog; the ratio of good
samples per second with and without the flood, in alternating rounds. This is the worst
case: the ingest has no spare time, so every refused frame's delivery and acknowledgement
comes out of the good frames' time.

Flood, live: a clinic's load in real time (100 sensors x 100 Hz) with and without a second
gateway client sending malformed frames at a fixed rate beside it; good samples stored per
second of the run (against what was published) and the latency of the good ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from poise.core import topics, wire
from poise.ingest import Ingest
from poise.stack import LocalStack

SITE = "bench"
FRAME = 10
PERIOD_NS = 10_000_000
_ROUNDS = itertools.count()


def _flood(stack: LocalStack, per_s: float, names: list[str], stop: threading.Event) -> int:
    """Malformed frames at ``per_s`` on the sensors' topics until ``stop``; how many were sent."""
    info = stack.info()
    bad = stack.mqtt_client("gateway", SITE)
    bad.max_inflight_messages_set(5000)
    bad.max_queued_messages_set(0)
    bad.connect(info.mqtt_host, info.mqtt_port)
    bad.loop_start()
    sent = 0
    t_begin = time.monotonic()
    k = 0
    while not stop.is_set():
        k += 1
        due = int(per_s * k * 0.1) - sent
        for j in range(due):
            bad.publish(topics.raw(SITE, "p0", names[j % len(names)]), b"\x00bad frame", qos=1)
        sent += due
        lag = t_begin + k * 0.1 - time.monotonic()
        if lag > 0:
            stop.wait(lag)
    bad.disconnect()
    bad.loop_stop()
    return sent


def latency_round(
    stack: LocalStack, sensors: int, seconds: float, flood_per_s: float = 0.0
) -> dict[str, Any]:
    info = stack.info()
    env = {**os.environ, **stack.env}
    tmp = Path(tempfile.mkdtemp(prefix="poise-bench-lat-"))
    with (tmp / "ingest.log").open("ab") as log:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "poise.cli", "ingest", "--mqtt",
             f"{info.mqtt_host}:{info.mqtt_port}", "--influx", info.influx_url,
             "--client-id", f"lat-{sensors}"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    time.sleep(4)
    influx = stack.influx_client("admin")
    gateway = stack.mqtt_client("gateway", SITE)
    gateway.max_inflight_messages_set(5000)
    gateway.max_queued_messages_set(0)
    gateway.connect(info.mqtt_host, info.mqtt_port)
    gateway.loop_start()
    prefix = f"l{sensors}r{next(_ROUNDS)}-"  # a round's own sensors: counts start at zero
    names = [f"{prefix}{i}" for i in range(sensors)]
    data = np.random.default_rng(0).normal(0, 1, (FRAME, 6)).astype(np.float32)
    latencies: list[float] = []
    last_seen: dict[str, int] = {}
    stop = threading.Event()

    def poll() -> None:
        q = f'SELECT last("acc_x") FROM "raw"."imu" WHERE sensor =~ /^{prefix}/ GROUP BY sensor'
        while not stop.is_set():
            try:
                series = influx.query(q)
            except Exception:
                continue
            now = time.time_ns()
            for s in series:
                t = int(s["values"][0][0])
                sid = s["tags"]["sensor"]
                if t > last_seen.get(sid, 0):
                    if sid in last_seen:
                        latencies.append((now - t) / 1e9)
                    last_seen[sid] = t
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    flood_stop = threading.Event()
    flood_sent: list[int] = []
    flooder = threading.Thread(
        target=lambda: flood_sent.append(_flood(stack, flood_per_s, names, flood_stop)),
        daemon=True,
    )
    if flood_per_s > 0:
        flooder.start()
    start_ns = time.time_ns()
    t_begin = time.monotonic()
    n_frames = int(seconds * 10)
    behind = 0.0
    for k in range(n_frames):
        lag = t_begin + (k + 1) * 0.1 - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        else:
            behind = max(behind, -lag)
        t0 = start_ns + k * FRAME * PERIOD_NS
        for sid in names:
            frame = wire.Frame(sid, k * FRAME, t0, PERIOD_NS, wire.IMU6, data)
            gateway.publish(topics.raw(SITE, "p0", sid), wire.encode(frame), qos=1)
    published = n_frames * FRAME * sensors
    flood_stop.set()
    if flood_per_s > 0:
        flooder.join(30)
    deadline = time.monotonic() + 10
    stored = 0
    while time.monotonic() < deadline:
        stored = influx.count_samples(f"sensor =~ /^{prefix}/")
        if stored >= published:
            break
        time.sleep(0.2)
    stop.set()
    poller.join(5)
    ingest.terminate()
    ingest.wait(30)
    gateway.disconnect()
    gateway.loop_stop()
    influx.close()
    lat = np.array(latencies) if latencies else np.array([np.nan])
    p99 = float(np.percentile(lat, 99))
    return {
        "sensors": sensors,
        "flood_frames_sent": flood_sent[0] if flood_sent else 0,
        "published": published,
        "stored_within_10_s": stored,
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p99_s": round(p99, 3),
        "generator_behind_max_s": round(behind, 3),
        "sustained": stored >= published and p99 < 2.0 and behind < 0.5,
    }


def flood_round(stack: LocalStack, good_frames: int, flood: bool, seed: int) -> float:
    info = stack.info()
    influx = stack.influx_client("admin")
    client_id = f"flood-{seed}"
    ing = Ingest(info.mqtt_host, info.mqtt_port, stack.influx_client("ingest"),
                 client_id=client_id, **stack.mqtt_kwargs("ingest"))
    ing.start()
    ing.subscribed.wait(10)
    ing.stop()
    pub = stack.mqtt_client("gateway", SITE)
    pub.max_inflight_messages_set(2000)
    pub.connect(info.mqtt_host, info.mqtt_port)
    pub.loop_start()
    data = np.random.default_rng(seed).normal(0, 1, (FRAME, 6)).astype(np.float32)
    t0 = time.time_ns() - 3600 * 10**9
    infos = []
    for k in range(good_frames):
        sid = f"f{seed}-{k % 30}"
        frame = wire.Frame(sid, k * FRAME, t0 + k * FRAME * PERIOD_NS, PERIOD_NS, wire.IMU6, data)
        infos.append(pub.publish(topics.raw(SITE, "p0", sid), wire.encode(frame), qos=1))
        if flood:
            infos.append(pub.publish(topics.raw(SITE, "p0", sid), b"\x00bad frame", qos=1))
    for i in infos:
        i.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()
    start = time.perf_counter()
    ing = Ingest(info.mqtt_host, info.mqtt_port, stack.influx_client("ingest"),
                 client_id=client_id, **stack.mqtt_kwargs("ingest"))
    ing.start()
    target = good_frames * FRAME
    while ing.stats.samples_written < target:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    ing.stop()
    influx.close()
    return target / elapsed


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 300, 400])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--flood-frames", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--live-flood-per-s", type=float, default=10_000.0,
                    help="malformed frames a second beside 100 live sensors (default 10,000: "
                    "ten times their good frames)")  # fmt: skip
    ap.add_argument("--only", choices=["latency", "flood", "live-flood"], default=None,
                    help="run one part only")  # fmt: skip
    args = ap.parse_args()
    out: dict[str, Any] = {"latency": [], "flood": {}, "live_flood": {}}
    if args.only in (None, "live-flood"):
        with tempfile.TemporaryDirectory() as d, LocalStack(Path(d), sites=[SITE]) as stack:
            rounds: dict[str, list[dict[str, Any]]] = {"clean": [], "flooded": []}
            for r in range(args.rounds):
                for name, rate in (("clean", 0.0), ("flooded", args.live_flood_per_s)):
                    res = latency_round(stack, 100, args.seconds, rate)
                    res["sensors"] = f"100 round {r + 1} {name}"
                    print(json.dumps(res), flush=True)
                    rounds[name].append(res)
        out["live_flood"] = {
            name: {
                "stored_over_published_min": min(x["stored_within_10_s"] / x["published"] for x in rs),
                "p99_s_median": statistics.median(x["p99_s"] for x in rs),
                "flood_frames_per_s": round(statistics.median(x["flood_frames_sent"] for x in rs) / args.seconds),
            }
            for name, rs in rounds.items()
        }  # fmt: skip
    for n in args.sizes if args.only in (None, "latency") else []:
        with tempfile.TemporaryDirectory() as d, LocalStack(Path(d), sites=[SITE]) as stack:
            res = latency_round(stack, n, args.seconds)
        print(json.dumps(res), flush=True)
        out["latency"].append(res)
        if not res["sustained"]:
            break
    sustained = [r["sensors"] for r in out["latency"] if r["sustained"]]
    out["most_sensors_sustained"] = max(sustained) if sustained else 0
    if args.only not in (None, "flood"):
        print(json.dumps(out))
        return out
    with tempfile.TemporaryDirectory() as d, LocalStack(Path(d), sites=[SITE]) as stack:
        clean, flooded = [], []
        for r in range(args.rounds):
            clean.append(flood_round(stack, args.flood_frames, False, 2 * r))
            flooded.append(flood_round(stack, args.flood_frames, True, 2 * r + 1))
            print(f"flood round {r + 1}: clean {clean[-1]:,.0f}, flooded {flooded[-1]:,.0f} "
                  "good samples/s", flush=True)  # fmt: skip
        out["flood"] = {
            "good_samples_per_s_clean_median": round(statistics.median(clean)),
            "good_samples_per_s_flooded_median": round(statistics.median(flooded)),
            "ratio_median": round(statistics.median(f / c for f, c in zip(flooded, clean, strict=True)), 3),
        }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
