"""Simulated patients on the real data path: virtual sensors -> decoder -> clock -> MQTT.

Each virtual sensor emits its firmware profile's own notification bytes with BLE-like
timing; the bytes go through the collector's decoder, clock model, framer and spooling
publisher, exactly as a real sensor's would. The ground truth stays in ``traces``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector import profiles
from collector.codecs import codec_for
from collector.pipeline import SensorPipeline
from collector.publisher import Publisher
from collector.virtual import (
    PLACEMENTS,
    SensorTrace,
    codec_notifications,
    rows_for,
    simulate_patient,
)
from poise.core import status, topics, wire


@dataclass(frozen=True)
class SimConfig:
    site: str = "demo"
    patients: int = 3
    duration_s: float = 60.0
    speed: float = 1.0  # 1 = real time; 0 or less = as fast as possible
    rate_hz: float = 100.0
    seed: int = 0
    profile: str = "witmotion-wt901ble"

    def patient_ids(self) -> list[str]:
        return [f"p{i + 1:03d}" for i in range(self.patients)]


@dataclass
class SensorState:
    patient: str
    placement: str
    sensor_id: str
    pipeline: SensorPipeline
    topic: str
    samples: int = 0
    frames: int = 0
    last_values: tuple[float, ...] | None = None


@dataclass
class SimResult:
    samples_published: int = 0
    frames_published: int = 0
    per_sensor: dict[str, int] = field(default_factory=dict)
    drained: bool = True
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples_published": self.samples_published,
            "frames_published": self.frames_published,
            "sensors": len(self.per_sensor),
            "all_acknowledged_by_broker": self.drained,
            "wall_s": round(self.wall_s, 3),
        }


class Simulation:
    def __init__(
        self,
        cfg: SimConfig,
        traces: dict[str, dict[str, SensorTrace]] | None = None,
        silent_s: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        """``traces`` (patient -> placement -> trace) replace the default activity cycle
        (poise.clinic scripts them); ``silent_s`` (sensor -> (from, to) s) drops a sensor's
        notifications in that span, as a sensor out of range would."""
        self.cfg = cfg
        self.profile = profiles.get(cfg.profile)
        rate_hz = cfg.rate_hz
        if self.profile.rate_writes and round(rate_hz) not in self.profile.rate_writes:
            rate_hz = self.profile.default_rate_hz
        rng = np.random.default_rng(cfg.seed)
        self.traces: dict[str, dict[str, SensorTrace]] = {}
        self.sensors: dict[str, SensorState] = {}
        self._streams: list[Iterator[tuple[float, str, bytes]]] = []
        for pid in traces or cfg.patient_ids():
            topics.check_id("patient", pid)
            self.traces[pid] = (
                traces[pid] if traces else simulate_patient(rng, cfg.duration_s, cfg.rate_hz)
            )
            for placement in self.traces[pid]:
                sid = f"{pid}-{placement.replace('_', '')}"
                trace = self.traces[pid][placement]
                self.sensors[sid] = SensorState(
                    pid,
                    placement,
                    sid,
                    SensorPipeline(self.profile, sid, rate_hz),
                    topics.raw(cfg.site, pid, sid),
                )
                # the device side of the profile's codec: what a real sensor would send
                device = codec_for(self.profile)
                for _write, answer in self.profile.device.answers:
                    device.answer(answer)
                    self.sensors[sid].pipeline.answer(answer)
                times = trace.time_s[:: max(1, round(cfg.rate_hz / rate_hz))]
                rows = rows_for(self.profile.channels, trace)[
                    :: max(1, round(cfg.rate_hz / rate_hz))
                ]
                stream = codec_notifications(rng, device, rows, times, rate_hz)
                if silent_s and sid in silent_s:
                    stream = _drop_span(stream, *silent_s[sid])
                self._streams.append(_tagged(stream, sid))

    def events(self) -> Iterator[tuple[float, str, bytes]]:
        """All sensors' notifications in arrival order: (seconds from start, sensor, bytes)."""
        return heapq.merge(*self._streams, key=lambda e: e[0])

    def run(
        self,
        publish: Callable[[list[tuple[str, bytes]]], None],
        *,
        start_ns: int | None = None,
        on_progress: Callable[[float], None] | None = None,
        progress_every_s: float = 0.25,
    ) -> SimResult:
        """Feed every notification through its pipeline and publish the frames.

        Sample times start at ``start_ns`` (now by default) and advance at the device rate;
        with ``speed`` > 1 they run ahead of the wall clock."""
        t0_ns = start_ns if start_ns is not None else time.time_ns()
        wall0 = time.monotonic()
        last_pub = last_prog = wall0
        out: list[tuple[str, bytes]] = []
        res = SimResult()

        def take(sensor: SensorState, frames: list[wire.Frame]) -> None:
            for fr in frames:
                out.append((sensor.topic, wire.encode(fr)))
                sensor.samples += fr.n_samples
                sensor.frames += 1

        for t_s, sid, data in self.events():
            if self.cfg.speed > 0:
                lag = (t_s / self.cfg.speed) - (time.monotonic() - wall0)
                if lag > 0:
                    if out:
                        publish(out)
                        out = []
                    time.sleep(lag)
            sensor = self.sensors[sid]
            take(sensor, sensor.pipeline.feed(data, t0_ns + int(t_s * 1e9)))
            sensor.last_values = sensor.pipeline.last_values
            now = time.monotonic()
            if out and (len(out) >= 200 or now - last_pub > 0.05):
                publish(out)
                out = []
                last_pub = now
            if on_progress and now - last_prog > progress_every_s:
                on_progress(t_s)
                last_prog = now
        for sensor in self.sensors.values():
            take(sensor, sensor.pipeline.flush())
        if out:
            publish(out)
        if on_progress:
            on_progress(self.cfg.duration_s)
        res.per_sensor = {sid: s.samples for sid, s in self.sensors.items()}
        res.samples_published = sum(res.per_sensor.values())
        res.frames_published = sum(s.frames for s in self.sensors.values())
        res.wall_s = time.monotonic() - wall0
        return res


def _drop_span(
    stream: Iterator[tuple[float, bytes]], lo_s: float, hi_s: float
) -> Iterator[tuple[float, bytes]]:
    for t, data in stream:
        if not lo_s <= t < hi_s:
            yield t, data


def _tagged(
    stream: Iterator[tuple[float, bytes]], sensor_id: str
) -> Iterator[tuple[float, str, bytes]]:
    for t, data in stream:
        yield t, sensor_id, data


def sensor_status(
    sensor: SensorState, rate_hz: float, profile_id: str, *, online: bool = True
) -> dict[str, Any]:
    """A simulated sensor's status, in the one schema every gateway publishes."""
    p = sensor.pipeline
    return status.sensor_status(
        state="streaming" if online else "stopped",
        profile=profile_id,
        placement=sensor.placement,
        rate_hz=rate_hz,
        counters={
            "connects": 1,
            "samples": sensor.samples,
            "frames": sensor.frames,
            "lost_samples": p.lost_samples,
            "duplicates": p.stats.duplicates,
            "skipped_bytes": p.decoder.stats.skipped_bytes,
        },
    )


def run_with_publisher(
    cfg: SimConfig,
    publisher: Publisher,
    *,
    drain_timeout_s: float = 60.0,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[Simulation, SimResult]:
    sim = Simulation(cfg)
    for s in sim.sensors.values():
        publisher.publish_status(s.sensor_id, sensor_status(s, cfg.rate_hz, sim.profile.id))
    res = sim.run(publisher.publish, on_progress=on_progress)
    res.drained = publisher.wait_drained(drain_timeout_s)
    for s in sim.sensors.values():
        publisher.publish_status(
            s.sensor_id, sensor_status(s, cfg.rate_hz, sim.profile.id, online=False)
        )
    return sim, res


async def virtual_world_for(config: Any, seed: int = 0, duration_s: float = 3600.0) -> Any:
    """Virtual BLE peripherals for every sensor of a gateway config (``collect --virtual``):
    each speaks its profile over bumble and measures a simulated patient at its placement."""
    from collector.virtual_ble import VirtualSensor, VirtualWorld

    world = VirtualWorld()
    await world.start()
    for i, spec in enumerate(config.sensors):
        placement = spec.placement if spec.placement in PLACEMENTS else "lower_back"
        trace = simulate_patient(np.random.default_rng(seed + i), duration_s)[placement]
        await VirtualSensor(
            world,
            spec.profile,
            spec.name or f"virtual-{spec.sensor_id}",
            trace.acc,
            trace.gyr,
            address=spec.address,
        ).start()
    return world
