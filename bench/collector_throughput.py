"""Collector speed: decoding per firmware profile, and CPU per sensor at 100 Hz.

- decode: samples/s on one core for each profile's generic decoder, fed notifications of the
  sizes the devices send. Baseline in the same run: ``struct.iter_unpack`` over the same
  WitMotion bytes (the least any Python parser of them can do).
- pipeline: decoder + clock model + framer + wire encoding for one 100 Hz sensor, as CPU
  seconds per second of data (the collector's own work per sensor).
- virtual gateway: whole-process CPU per sensor while SensorSessions stream from virtual
  BLE peripherals for a while. This includes bumble's simulated controllers and the
  peripherals themselves, so it is an upper bound for the collector on real hardware.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import median_time  # noqa: E402
from collector import profiles  # noqa: E402
from collector.decode import Decoder  # noqa: E402
from collector.pipeline import SensorPipeline  # noqa: E402
from collector.virtual import encode_witmotion, notifications, simulate_patient  # noqa: E402
from poise.core import wire  # noqa: E402

N = 20_000  # samples per decode run


def _i16(a: np.ndarray) -> bytes:
    return np.clip(np.round(a), -32768, 32767).astype("<i2").tobytes()


def streams(rng: np.random.Generator) -> dict[str, tuple[list[bytes], dict[str, str]]]:
    raw = rng.normal(0, 2000, (N, 9))
    out: dict[str, tuple[list[bytes], dict[str, str]]] = {}
    wit = encode_witmotion(raw[:, :3] / 2048 * 9.80665, np.radians(raw[:, 3:6] / 16))
    out["witmotion-wt901ble"] = ([wit[i : i + 80] for i in range(0, len(wit), 80)], {})
    out["thingy52"] = ([_i16(raw[i]) for i in range(N)], {})
    out["microbit"] = ([_i16(raw[i, :3]) for i in range(N)], {})
    out["metamotion-bmi160"] = ([b"\x03\x04" + _i16(raw[i, :3]) for i in range(N)], {})
    h10 = []
    for k in range(0, N, 36):
        t = (10**9 + k * 10_000_000).to_bytes(8, "little")
        h10.append(b"\x02" + t + b"\x01" + _i16(raw[k : k + 36, :3].ravel()))
    out["polar-h10"] = (h10, {})
    verity = []
    for k in range(0, N, 35):  # reference + 34 deltas of 8 bits
        t = (10**9 + k * 19_230_769).to_bytes(8, "little")
        deltas = rng.integers(-100, 100, (34, 3)).astype(np.int8).tobytes()
        verity.append(b"\x02" + t + b"\x81" + _i16(raw[k, :3]) + bytes([8, 34]) + deltas)
    out["polar-verity-sense"] = (verity, {"acc_factor": "0.000244", "gyr_factor": "0.061"})
    lines = [
        json.dumps({"t": i * 10, "ax": round(x, 4), "ay": round(y, 4), "az": round(z, 4)}) + "\n"
        for i, (x, y, z) in enumerate(raw[:, :3] / 200)
    ]
    out["nus-json"] = ([line.encode() for line in lines], {})
    return out


def bench_decode(repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {}
    wit_bytes = b""
    for pid, (notes, settings) in streams(rng).items():
        prof = profiles.get(pid)
        counted = {"n": 0}

        def run(
            prof: Any = prof,
            notes: list[bytes] = notes,
            settings: dict[str, str] = settings,
            counted: dict[str, int] = counted,
        ) -> None:
            dec = Decoder(prof, settings=settings)
            n = 0
            for b in notes:
                n += len(dec.feed(b))
            counted["n"] = n

        t = median_time(run, repeats)
        result[pid] = round(counted["n"] / t)
        if pid == "witmotion-wt901ble":
            wit_bytes = b"".join(notes)
    rec = struct.Struct("<2x9h")

    def baseline() -> None:
        for _ in rec.iter_unpack(wit_bytes):
            pass

    result["baseline_struct_iter_unpack_witmotion"] = round(N / median_time(baseline, repeats))
    return result


def bench_pipeline(repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    seconds = 120.0
    trace = simulate_patient(rng, seconds)["shank"]
    recs = encode_witmotion(trace.acc, trace.gyr)
    notes = list(notifications(rng, recs, 20, trace.time_s))
    prof = profiles.get("witmotion-wt901ble")

    def run() -> None:
        pipe = SensorPipeline(prof, "s-1", 100.0)
        for t, b in notes:
            for f in pipe.feed(b, int(1e18 + t * 1e9)):
                wire.encode(f)

    t = median_time(run, repeats)
    return {
        "cpu_s_per_sensor_second": round(t / seconds, 6),
        "percent_of_a_core_per_100hz_sensor": round(100 * t / seconds, 3),
    }


def bench_virtual_gateway(sensors: int, seconds: float) -> dict[str, Any]:
    from collector.ble import SensorSession, SensorSpec, SupervisorParams
    from collector.virtual_ble import VirtualWitMotion, VirtualWorld

    async def main() -> tuple[float, int]:
        world = VirtualWorld()
        await world.start()
        for i in range(sensors):
            tr = simulate_patient(np.random.default_rng(i), seconds + 30)["lower_back"]
            await VirtualWitMotion(world, f"WT901BLE{i}", tr.acc, tr.gyr).start()
        lock = asyncio.Lock()
        got = {"n": 0}
        sessions = [
            SensorSession(
                SensorSpec(f"s-{i}", "p-1", "witmotion-wt901ble", name=f"WT901BLE{i}"),
                lambda spec, fr: got.__setitem__("n", got["n"] + sum(f.n_samples for f in fr)),
                client_class=world.client_class(),
                scanner_backend=world.scanner_backend(),
                params=SupervisorParams(scan_timeout_s=5),
                connect_lock=lock,
            )
            for i in range(sensors)
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in sessions]
        while not all(s.stats.state == "streaming" for s in sessions):
            await asyncio.sleep(0.1)
        c0, n0 = time.process_time(), got["n"]
        await asyncio.sleep(seconds)
        cpu, n = time.process_time() - c0, got["n"] - n0
        stop.set()
        await asyncio.gather(*tasks)
        await world.close()
        return cpu, n

    cpu, n = asyncio.run(main())
    return {
        "sensors": sensors,
        "seconds": seconds,
        "samples": n,
        "percent_of_a_core_per_sensor_upper_bound": round(100 * cpu / seconds / sensors, 2),
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--virtual-sensors", type=int, default=4)
    ap.add_argument("--virtual-seconds", type=float, default=10.0)
    args = ap.parse_args()
    result = {
        "decode_samples_per_s": bench_decode(args.repeats),
        "pipeline": bench_pipeline(args.repeats),
        "virtual_gateway": bench_virtual_gateway(args.virtual_sensors, args.virtual_seconds),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
