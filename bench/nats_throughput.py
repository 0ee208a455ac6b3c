"""Scale-out on NATS JetStream: ingest throughput with 1 and 2 ingest processes, against
InfluxDB's own bulk-write ceiling measured in the same run.

Each round empties the stream, publishes frames of 10 samples to JetStream (as gateways on
the native path do), then starts N ``poise ingest --nats`` processes sharing one durable
consumer and times until InfluxDB holds every sample. Rounds alternate the ceiling, one
process and two processes, so all see the same machine load; results are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ingest_throughput import ceiling_round, make_frames
from poise.core import wire
from poise.core.influx import InfluxV1
from poise.jetstream import layout
from poise.jetstream.server import NatsServer
from poise.stack import LocalStack


async def _fill(server: NatsServer, frames: list[tuple[str, wire.Frame]]) -> None:
    import nats

    nc = await nats.connect(server.url, **server.connect_kwargs("admin"))
    js = nc.jetstream()
    for i in range(0, len(frames), 500):
        futs = [
            js.publish(topic.replace("/", "."), wire.encode(f)) for topic, f in frames[i : i + 500]
        ]
        await asyncio.gather(*futs)
    await nc.close()


async def _purge(server: NatsServer) -> None:
    import nats

    nc = await nats.connect(server.url, **server.connect_kwargs("admin"))
    await nc.jetstream().purge_stream(layout.STREAM)
    await nc.close()


async def _waiting(server: NatsServer, durable: str) -> int:
    import nats

    nc = await nats.connect(server.url, **server.connect_kwargs("admin"))
    try:
        info = await nc.jetstream().consumer_info(layout.STREAM, durable)
        return int(info.num_waiting or 0)
    except Exception:
        return 0
    finally:
        await nc.close()


async def _drop_consumer(server: NatsServer, name: str) -> None:
    import nats

    nc = await nats.connect(server.url, **server.connect_kwargs("admin"))
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_consumer(layout.STREAM, name)
    await nc.close()


def nats_ingest_round(
    stack: LocalStack,
    influx: InfluxV1,
    processes: int,
    n_samples: int,
    sensors: int,
    seed: int,
    t0_ns: int,
) -> float:
    server: NatsServer = stack.mosquitto
    influx_url = stack.influx.url
    frames = make_frames(n_samples, sensors, t0_ns, seed)
    asyncio.run(_purge(server))
    durable = f"bench-{seed}"
    env = {**os.environ, **stack.env}
    where = f"sensor =~ /^b{seed}-/"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "poise.cli",
                "ingest",
                "--nats",
                server.url,
                "--influx",
                influx_url,
                "--database",
                "poise",
                "--client-id",
                durable,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        # time the stream's delivery, not the start of a Python process: begin when every
        # process has a pull request waiting on the (empty) stream
        while asyncio.run(_waiting(server, durable)) < processes:
            time.sleep(0.05)
        start = time.perf_counter()
        asyncio.run(_fill(server, frames))
        while influx.count_samples(where) < n_samples:
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
    asyncio.run(_drop_consumer(server, durable))
    return n_samples / elapsed


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=150_000, help="samples per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sensors", type=int, default=30)
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory() as d,
        LocalStack(Path(d), sites=["bench"], broker="nats") as stack,
    ):
        influx = stack.influx_client("admin")
        t0 = time.time_ns() - 3600 * 10**9
        ceiling_round(influx, 20_000, args.sensors, 999, t0)
        rows: dict[str, list[float]] = {"ceiling": [], "1": [], "2": []}
        for r in range(args.rounds):
            rows["ceiling"].append(ceiling_round(influx, args.samples, args.sensors, 10 * r, t0))
            for n in (1, 2):
                rate = nats_ingest_round(
                    stack, influx, n, args.samples, args.sensors, 10 * r + n, t0
                )
                rows[str(n)].append(rate)
            print(
                f"round {r + 1}: ceiling {rows['ceiling'][-1]:,.0f}, 1 ingest "
                f"{rows['1'][-1]:,.0f}, 2 ingests {rows['2'][-1]:,.0f} samples/s",
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in rows.items()}
        result = {
            "samples_per_round": args.samples,
            "rounds": args.rounds,
            "ceiling_samples_per_s_median": round(med["ceiling"]),
            "nats_ingest_1_samples_per_s_median": round(med["1"]),
            "nats_ingest_2_samples_per_s_median": round(med["2"]),
            "ratio_1_to_ceiling": round(med["1"] / med["ceiling"], 3),
            "ratio_2_to_ceiling": round(med["2"] / med["ceiling"], 3),
            "speedup_2_over_1": round(med["2"] / med["1"], 3),
        }
        print(json.dumps(result))
        return result


if __name__ == "__main__":
    main()
