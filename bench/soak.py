"""Soak: sensors x 100 Hz for minutes through broker, ingest, worker and database.

``make soak`` runs 10 minutes at 100 sensors (not part of ``make test``). A gateway stand-in
publishes 100 ms frames in real time (QoS 1, as gateways do) while every patient stands in
a quiet-stance trial, so the worker scores sway, intensity and sensor status throughout.
Every 10 s the RSS of each process (mosquitto, influxd, poise ingest, poise worker) is
sampled from /proc. At the end: samples stored equal samples published (no loss), and each
process's RSS at the end against its RSS after the warm-up (growth in per cent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from collector.virtual import stance_trace
from poise.core import events as ev
from poise.core import topics, wire
from poise.stack import LocalStack

SITE = "soak"
FRAME = 10
PERIOD_NS = 10_000_000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup-s", type=float, default=60.0)
    ap.add_argument("--sample-every-s", type=float, default=10.0)
    args = ap.parse_args()
    total_s = args.minutes * 60
    with tempfile.TemporaryDirectory() as d, LocalStack(Path(d), sites=[SITE]) as stack:
        info = stack.info()
        env = {**os.environ, **stack.env}
        tmp = Path(d)
        at = f"{info.mqtt_host}:{info.mqtt_port}"
        db = ["--influx", info.influx_url, "--database", info.database]
        logs = {n: (tmp / f"{n}.log").open("ab") for n in ("ingest", "worker")}
        ingest = subprocess.Popen(
            [sys.executable, "-m", "poise.cli", "ingest", "--mqtt", at, *db,
             "--client-id", "soak-ingest"],
            env=env, stdout=logs["ingest"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        ready = tmp / "ready"
        worker = subprocess.Popen(
            [sys.executable, "-m", "poise.cli", "worker", "--mqtt", at, *db,
             "--state", str(tmp / "state.json"), "--ready-file", str(ready)],
            env=env, stdout=logs["worker"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)
        pids = {"mosquitto": stack.mosquitto.pid, "influxd": stack.influx.pid,
                "ingest": ingest.pid, "worker": worker.pid}  # fmt: skip
        gateway = stack.mqtt_client("gateway", SITE)
        gateway.max_inflight_messages_set(2000)
        gateway.max_queued_messages_set(0)
        gateway.connect(info.mqtt_host, info.mqtt_port)
        gateway.loop_start()
        console = stack.mqtt_client("console")
        console.connect(info.mqtt_host, info.mqtt_port)
        console.loop_start()
        rng = np.random.default_rng(0)
        # one minute of quiet stance, repeated: the signal's content does not matter here
        trunk = stance_trace(rng, 60.0, 0.05)
        base = np.hstack([trunk.acc, trunk.gyr]).astype(np.float32)
        patients = [f"p{i:03d}" for i in range((args.sensors + 2) // 3)]
        sensors: list[tuple[str, str]] = []
        start_ns = time.time_ns()
        for pid in patients:
            places = (("lowerback", "lower_back", "none"), ("thigh", "thigh", "right"),
                      ("shank", "shank", "right"))  # fmt: skip
            for short, _seg, _side in places:
                if len(sensors) < args.sensors:
                    sensors.append((pid, f"{pid}-{short}"))
            placement = tuple(ev.Placement(f"{pid}-{s}", seg, side) for s, seg, side in places)
            session = f"s-{pid}-soak"
            for e in (
                ev.Event("session_start", ev.new_id(), start_ns, "", pid, session,
                         placement=placement),
                ev.Event("trial_start", ev.new_id(), start_ns, "", pid, session,
                         trial=f"t-{pid}", exercise="quiet_stance",
                         condition={"eyes": "open"}),
            ):  # fmt: skip
                console.publish(topics.session(SITE, pid), ev.encode(e), qos=1).wait_for_publish(10)
        n_base = len(base) // FRAME
        samples: list[dict[str, Any]] = []
        published = 0
        t_begin = time.monotonic()
        next_sample = t_begin + args.warmup_s
        k = 0
        infos = []
        while True:
            due = t_begin + (k + 1) * 0.1
            if due > t_begin + total_s:
                break
            lag = due - time.monotonic()
            if lag > 0:
                time.sleep(lag)
            t0_ns = start_ns + k * FRAME * PERIOD_NS
            j = k % n_base
            chunk = base[j * FRAME : (j + 1) * FRAME]
            for _pid, sid in sensors:
                frame = wire.Frame(sid, k * FRAME, t0_ns, PERIOD_NS, wire.IMU6, chunk)
                infos.append(gateway.publish(topics.raw(SITE, _pid, sid), wire.encode(frame), qos=1))
                published += FRAME
            if len(infos) > 20000:
                infos = [i for i in infos if not i.is_published()]
            k += 1
            if time.monotonic() >= next_sample:
                row = {"t_s": round(time.monotonic() - t_begin, 1)}
                row.update({n: round(_rss_mb(p), 1) for n, p in pids.items() if p})
                samples.append(row)
                print(json.dumps(row), flush=True)
                next_sample += args.sample_every_s
        for i in infos:
            i.wait_for_publish(60)
        influx = stack.influx_client("admin")
        deadline = time.monotonic() + 300
        stored = 0
        while time.monotonic() < deadline:
            stored = influx.count_samples()
            if stored >= published:
                break
            time.sleep(1)
        for proc in (worker, ingest):
            proc.terminate()
            proc.wait(60)
        for c in (gateway, console):
            c.disconnect()
            c.loop_stop()
        first, last = samples[0], samples[-1]
        growth = {
            n: round(100.0 * (last[n] - first[n]) / first[n], 1)
            for n in pids
            if n in first and n in last and first[n]
        }
        result = {
            "sensors": len(sensors),
            "minutes": args.minutes,
            "samples_published": published,
            "samples_stored": stored,
            "lost": published - stored,
            "rss_mb_after_warmup": {n: first[n] for n in pids if n in first},
            "rss_mb_at_end": {n: last[n] for n in pids if n in last},
            "rss_growth_pct": growth,
            "rss_samples": samples,
        }
        print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}))
        return result


if __name__ == "__main__":
    main()
