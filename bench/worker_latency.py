"""Worker latency: from a sample's time to its live score stored in InfluxDB, at 30 and 100
sensors x 100 Hz, with the broker, InfluxDB, the ingest and the worker all running.

Each patient wears three sensors (lower back, thigh, shank) and stands in a quiet-stance
trial, so the worker scores sway over a 10 s window every second per patient and intensity
every 5 s. A gateway stand-in publishes 100 ms frames (10 samples) in real time, stamped with
the wall clock, as a gateway batches them. ``poise ingest`` and ``poise worker`` run as their
own processes. A ``sway_live`` point is stamped with the time of the last sample of its
window; it is published on the metrics topic right after the worker's write to InfluxDB
returned, so its arrival at a subscriber minus its timestamp is the time from that sample
to the score stored (the frame's own 100 ms of batching included, since the last sample of a
window is the last of its frame). The worker's RSS and CPU come from /proc.

Each size runs ``--rounds`` times; the figures are the medians over rounds.
"""

from __future__ import annotations

import argparse
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

from collector.virtual import stance_trace
from poise.core import derived, topics, wire
from poise.core import events as ev
from poise.core.channels import G
from poise.stack import LocalStack

SITE = "bench"
FRAME = 10
PERIOD_NS = 10_000_000
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "poise.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def run_round(
    stack: LocalStack, sensors: int, measure_s: float, warmup_s: float, workers: int = 1
) -> dict[str, Any]:
    info = stack.info()
    env = {**os.environ, **stack.env}
    tmp = Path(tempfile.mkdtemp(prefix="poise-bench-worker-"))
    patients = [f"p{i:03d}" for i in range((sensors + 2) // 3)]
    mqtt_at = f"{info.mqtt_host}:{info.mqtt_port}"
    # on NATS, ingest and workers consume the partitioned JetStream stream
    broker = ["--nats", info.nats_url] if info.nats_url else ["--mqtt", mqtt_at]
    ingest = _spawn(["ingest", *broker, "--influx", info.influx_url,
                     "--client-id", "bench-ingest"], env, tmp / "ingest.log")  # fmt: skip
    procs = []
    for w in range(workers if info.nats_url else 1):
        ready = tmp / f"ready-{w}"
        member = ["--member", f"w{w}"] if info.nats_url else []
        procs.append(_spawn(
            [
                "worker",
                *broker,
                *member,
                "--influx",
                info.influx_url,
                "--state",
                str(tmp / "state.json"),
                "--ready-file",
                str(ready),
                "--client-id",
                "bench-worker",
            ],
            env,
            tmp / f"worker-{w}.log",
        ))
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    if info.nats_url:
        time.sleep(5.0)  # the workers share out the partitions (lease renewals every 1.5 s)
    latencies: list[float] = []
    collecting = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = time.time_ns()
        if not collecting.is_set():
            return
        for p in derived.parse_message(msg.payload):
            if p["measurement"] == "sway_live":
                t_ns = p["t_ns"]
                assert isinstance(t_ns, int)
                latencies.append((now - t_ns) / 1e9)

    sub = stack.mqtt_client("reader")
    sub.on_message = on_message
    sub.on_connect = lambda c, *a: c.subscribe(f"{topics.PREFIX}/metrics/{SITE}/+", qos=0)
    sub.connect(info.mqtt_host, info.mqtt_port)
    sub.loop_start()
    console = stack.mqtt_client("console")
    console.connect(info.mqtt_host, info.mqtt_port)
    console.loop_start()
    gateway = stack.mqtt_client("gateway", SITE)
    gateway.max_queued_messages_set(0)
    gateway.connect(info.mqtt_host, info.mqtt_port)
    gateway.loop_start()

    rng = np.random.default_rng(sensors)
    total_s = warmup_s + measure_s + 2.0
    trunk = stance_trace(rng, total_s, 0.05)
    still_up = np.array([0.0, 0.0, G])
    sensor_list: list[tuple[str, str, str, np.ndarray]] = []  # (patient, sensor, topic, data)
    start_ns = time.time_ns()
    for pid in patients:
        places = (("lowerback", "lower_back", "none"), ("thigh", "thigh", "right"),
                  ("shank", "shank", "right"))  # fmt: skip
        for short, _seg, _side in places:
            if len(sensor_list) == sensors:
                break
            sid = f"{pid}-{short}"
            n = len(trunk.time_s)
            if short == "lowerback":
                data = np.hstack([trunk.acc, trunk.gyr])
            else:
                acc = np.tile(still_up, (n, 1)) + rng.normal(0, 0.02, (n, 3))
                data = np.hstack([acc, rng.normal(0, 0.003, (n, 3))])
            sensor_list.append((pid, sid, topics.raw(SITE, pid, sid), data.astype(np.float32)))
        placement = tuple(ev.Placement(f"{pid}-{s}", seg, side) for s, seg, side in places)
        session = f"s-{pid}-{tmp.name[-6:]}"
        for e in (
            ev.Event("session_start", ev.new_id(), start_ns, "", pid, session, placement=placement),
            ev.Event("trial_start", ev.new_id(), start_ns, "", pid, session, trial=f"t-{pid}",
                     exercise="quiet_stance", condition={"eyes": "open"}),
        ):  # fmt: skip
            console.publish(topics.session(SITE, pid), ev.encode(e), qos=1).wait_for_publish(10)
    # the gateway stand-in: every 100 ms, one frame per sensor with the samples just taken
    k = 0
    cpu0 = wall0 = 0.0
    n_frames = int(total_s * 10) - 1
    t_begin = time.monotonic()
    behind_s = 0.0  # how far the stand-in itself fell behind the clock
    while k < n_frames:
        due = t_begin + (k + 1) * 0.1
        lag = due - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        elif collecting.is_set():
            behind_s = max(behind_s, -lag)
        t0_ns = start_ns + k * FRAME * PERIOD_NS
        for _pid, sid, topic, data in sensor_list:
            frame = wire.Frame(sid, k * FRAME, t0_ns, PERIOD_NS, wire.IMU6,
                               data[k * FRAME : (k + 1) * FRAME])  # fmt: skip
            gateway.publish(topic, wire.encode(frame), qos=1)
        k += 1
        if k == int(warmup_s * 10):
            collecting.set()
            cpu0, wall0 = sum(_cpu_s(w.pid) for w in procs), time.monotonic()
    cpu1, wall1 = sum(_cpu_s(w.pid) for w in procs), time.monotonic()
    rss = max(_rss_mb(w.pid) for w in procs)
    time.sleep(2.0)  # the last windows in flight
    collecting.clear()
    for proc in (*procs, ingest):
        proc.terminate()
        proc.wait(30)
    for c in (sub, console, gateway):
        c.disconnect()
        c.loop_stop()
    lat = np.array(latencies)
    cpu_pct = 100.0 * (cpu1 - cpu0) / (wall1 - wall0)
    return {
        "sensors": len(sensor_list),
        "patients": len(patients),
        "scores": len(lat),
        "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_s": float(lat.max()) if len(lat) else None,
        "generator_behind_max_s": round(behind_s, 3),
        "workers": len(procs),
        "worker_rss_mb": round(rss, 1),
        "worker_cpu_pct": round(cpu_pct, 1),
        "worker_cpu_pct_per_sensor": round(cpu_pct / len(sensor_list), 3),
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, nargs="+", default=[30, 100])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--measure-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=12.0)
    ap.add_argument("--broker", choices=["mosquitto", "nats"], default="mosquitto")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (NATS only)")
    args = ap.parse_args()
    out: dict[str, Any] = {
        "rounds": args.rounds,
        "measure_s": args.measure_s,
        "broker": args.broker,
        "workers": args.workers,
        "sizes": {},
    }
    for n in args.sensors:
        rounds = []
        for r in range(args.rounds):
            # a fresh stack per round: a persistent session left behind by the last round
            # would hand its backlog to the next
            with (
                tempfile.TemporaryDirectory() as d,
                LocalStack(Path(d), sites=[SITE], broker=args.broker) as stack,
            ):
                res = run_round(stack, n, args.measure_s, args.warmup_s, args.workers)
            print(f"{n} sensors, round {r + 1}: {json.dumps(res)}", flush=True)
            rounds.append(res)
        med = {
            key: statistics.median(x[key] for x in rounds if x[key] is not None)
            for key in (
                "p50_s",
                "p99_s",
                "max_s",
                "worker_rss_mb",
                "worker_cpu_pct",
                "worker_cpu_pct_per_sensor",
            )
        }
        out["sizes"][str(n)] = {"rounds": rounds, "median": med}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
