"""Ingest throughput against InfluxDB's own ceiling, measured in the same run.

Ceiling: the same points the ingest writes (measurement imu, 3 tags, 6 float fields),
pre-formatted as line protocol, POSTed in batches of 5,000 points, one after another.

Ingest: frames of 10 samples queued at the broker for the ingest's (persistent) session
while it is stopped; then the ingest starts and the clock runs until InfluxDB holds every
sample. That is the whole ingest path: MQTT delivery, decoding, line protocol, the write,
and the acknowledgement of every frame.

Rounds alternate ceiling and ingest so both see the same machine load; the result is the
median of each and the median of the per-round ratios.

``--processes 1 2`` also runs replicas: N ingest processes in one shared-subscription group
(``$share/bench/...``, as ``poise ingest --group`` runs them), each with its own persistent
session, draining the same queue; the clock runs until all of them together wrote every
sample.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from poise.core import topics, wire
from poise.core.influx import InfluxV1, frame_lines, tags_for
from poise.ingest import Ingest, IngestParams
from poise.stack import LocalStack

FRAME_SAMPLES = 10
PERIOD_NS = 10_000_000


def make_frames(
    n_samples: int, sensors: int, t0_ns: int, seed: int
) -> list[tuple[str, wire.Frame]]:
    rng = np.random.default_rng(seed)
    per_sensor = n_samples // sensors
    out = []
    for s in range(sensors):
        sid = f"b{seed}-s{s}"
        topic = topics.raw("bench", f"p{s // 3}", sid)
        for k in range(0, per_sensor, FRAME_SAMPLES):
            data = rng.normal(0, 3, (FRAME_SAMPLES, 6)).astype(np.float32)
            out.append(
                (topic, wire.Frame(sid, k, t0_ns + k * PERIOD_NS, PERIOD_NS, wire.IMU6, data))
            )
    return out


def ceiling_round(influx: InfluxV1, n_samples: int, sensors: int, seed: int, t0_ns: int) -> float:
    frames = make_frames(n_samples, sensors, t0_ns, seed)
    lines: list[str] = []
    for topic, f in frames:
        key = topics.parse_raw(topic)
        lines.extend(frame_lines(f, tags_for(key.site, key.patient, key.sensor)))
    bodies = ["\n".join(lines[i : i + 5000]).encode() for i in range(0, len(lines), 5000)]
    start = time.perf_counter()
    for body in bodies:
        influx.write(body)
    return len(lines) / (time.perf_counter() - start)


def _replica(
    host: str, port: int, influx_args: tuple[Any, ...], group: str, client_id: str,
    login: dict[str, Any], written: Any, go: Any, stop: Any,
) -> None:
    """One ingest process of a shared group: connects on ``go`` (its start-up is not timed),
    runs until ``stop``, reporting what it wrote."""
    influx = InfluxV1(*influx_args)
    ing = Ingest(host, port, influx, client_id=client_id, params=IngestParams(group=group),
                 **login)
    written.value = -1  # ready
    go.wait()
    ing.start()
    while not stop.is_set():
        written.value = ing.stats.samples_written
        stop.wait(0.01)
    ing.stop()
    influx.close()


def group_round(
    stack: LocalStack, influx: InfluxV1, n_samples: int, sensors: int, seed: int, t0_ns: int,
    processes: int,
) -> float:
    """N ingest processes of one shared group drain the queue; samples per second."""
    info = stack.info()
    login = stack.mqtt_kwargs("ingest")
    group = f"bench{processes}"
    ids = [f"bench-{group}-{seed}-{k}" for k in range(processes)]
    for cid in ids:  # each member's session, then leave: the broker queues its share
        ing = Ingest(info.mqtt_host, info.mqtt_port, influx, client_id=cid,
                     params=IngestParams(group=group), **login)
        ing.start()
        ing.subscribed.wait(10)
        ing.stop()
    _queue_frames(stack, n_samples, sensors, seed, t0_ns)
    ctx = mp.get_context("spawn")
    stop, go = ctx.Event(), ctx.Event()
    counters = [ctx.Value("q", 0) for _ in ids]
    influx_args = (stack.influx.url, stack.database, stack.influx_auth("ingest"))
    procs = [
        ctx.Process(target=_replica, args=(info.mqtt_host, info.mqtt_port, influx_args, group, cid,
                                           login, c, go, stop))
        for cid, c in zip(ids, counters, strict=True)
    ]
    for p in procs:
        p.start()
    while any(c.value != -1 for c in counters):
        time.sleep(0.01)
    for c in counters:
        c.value = 0
    start = time.perf_counter()
    go.set()
    last_change, seen = time.perf_counter(), -1
    while (total := sum(c.value for c in counters)) < n_samples:
        if total != seen:
            last_change, seen = time.perf_counter(), total
        elif time.perf_counter() - last_change > 30:
            stop.set()
            raise RuntimeError(f"{processes} ingests stalled at {total} of {n_samples} samples: "
                               f"{[c.value for c in counters]}")
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    for p in procs:
        p.join(30)
    # end the members' sessions: an absent member keeps its share of later frames queued
    # (the other rounds' too) until its session expires
    for cid in ids:
        _end_session(stack, cid)
    stored = influx.count_samples(f"sensor =~ /^b{seed}-/")
    if stored != n_samples:
        raise RuntimeError(f"{processes} ingests stored {stored} of {n_samples} samples")
    return n_samples / elapsed


def _end_session(stack: LocalStack, client_id: str) -> None:
    info = stack.info()
    gone = stack.mqtt_client("ingest", client_id=client_id)
    gone.connect(info.mqtt_host, info.mqtt_port, clean_start=True)
    gone.disconnect()


def _queue_frames(stack: LocalStack, n_samples: int, sensors: int, seed: int, t0_ns: int) -> None:
    info = stack.info()
    frames = make_frames(n_samples, sensors, t0_ns, seed)
    pub = stack.mqtt_client("gateway", "bench")  # a gateway of the site in the topics
    pub.max_inflight_messages_set(1000)
    pub.connect(info.mqtt_host, info.mqtt_port)
    pub.loop_start()
    infos = [pub.publish(t, wire.encode(f), qos=1) for t, f in frames]
    for i in infos:
        i.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def ingest_round(
    stack: LocalStack, influx: InfluxV1, n_samples: int, sensors: int, seed: int, t0_ns: int
) -> tuple[float, dict[str, Any]]:
    info = stack.info()
    client_id = f"bench-ingest-{seed}"
    # 1. create the ingest's session, then leave: the broker queues for it from now on
    login = stack.mqtt_kwargs("ingest")
    ing = Ingest(info.mqtt_host, info.mqtt_port, influx, client_id=client_id, **login)
    ing.start()
    ing.subscribed.wait(10)
    ing.stop()
    # 2. queue the frames at the broker
    _queue_frames(stack, n_samples, sensors, seed, t0_ns)
    where = f"sensor =~ /^b{seed}-/"
    before = influx.count_samples(where)
    assert before == 0
    # 3. the ingest comes back and drains the queue into InfluxDB
    start, cpu_start = time.perf_counter(), time.process_time()
    ing = Ingest(info.mqtt_host, info.mqtt_port, influx, client_id=client_id, **login)
    ing.start()
    while ing.stats.samples_written < n_samples:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start  # this process: the ingest's threads
    ing.stop()
    _end_session(stack, client_id)  # or the broker queues the later rounds' frames for it
    stored = influx.count_samples(where)
    if stored != n_samples:
        raise RuntimeError(f"ingest stored {stored} of {n_samples} samples")
    return n_samples / elapsed, {
        **ing.stats.as_dict(),
        "cpu_us_per_sample": cpu_s / n_samples * 1e6,
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=150_000, help="samples per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sensors", type=int, default=30)
    ap.add_argument("--processes", type=int, nargs="+", default=[1],
                    help="also run this many ingest processes in one shared group (e.g. 1 2)")  # fmt: skip
    args = ap.parse_args()
    groups: dict[int, list[float]] = {n: [] for n in args.processes if n > 1}
    with tempfile.TemporaryDirectory() as d, LocalStack(Path(d), sites=["bench"]) as stack:
        influx = stack.influx_client("admin")
        influx.ensure_schema()
        t0 = time.time_ns() - 3600 * 10**9
        # warm-up: the first writes to a new shard are slower than the rest
        ceiling_round(influx, 20_000, args.sensors, 999, t0)
        ceilings, ingests, ratios, cpus = [], [], [], []
        for r in range(args.rounds):
            c = ceiling_round(influx, args.samples, args.sensors, 2 * r, t0)
            i, stats = ingest_round(stack, influx, args.samples, args.sensors, 2 * r + 1, t0)
            ceilings.append(c)
            ingests.append(i)
            ratios.append(i / c)
            cpus.append(stats["cpu_us_per_sample"])
            for n, rates in groups.items():
                rates.append(group_round(stack, influx, args.samples, args.sensors,
                                         1000 + 10 * r + n, t0, n) / c)  # fmt: skip
                print(f"round {r + 1}: {n} ingest processes, ratio {rates[-1]:.2f}", flush=True)
            print(
                f"round {r + 1}: ceiling {c:,.0f} samples/s, ingest {i:,.0f} samples/s, "
                f"ratio {i / c:.2f} (batches {stats['batches']}, "
                f"ingest CPU {cpus[-1]:.2f} us/sample)",
                flush=True,
            )
        result = {
            "samples_per_round": args.samples,
            "rounds": args.rounds,
            "ceiling_samples_per_s_median": round(statistics.median(ceilings)),
            "ingest_samples_per_s_median": round(statistics.median(ingests)),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            # CPU time of the ingest per sample: less sensitive to other load than the rates
            "ingest_cpu_us_per_sample_median": round(statistics.median(cpus), 2),
            **{
                f"ratio_median_{n}_processes": round(statistics.median(rates), 3)
                for n, rates in groups.items()
            },
        }
        print(json.dumps(result))
        return result


if __name__ == "__main__":
    main()
