"""The BLE shell: scan, connect, configure, subscribe and supervise sensors with bleak.

One ``SensorSession`` per sensor keeps it streaming: it finds the device, connects with
bleak-retry-connector, writes the profile's configuration, subscribes, and supervises. On
a drop it reconnects with backoff, configures and subscribes again; a sensor that stops
notifying without disconnecting (a stall) is disconnected and reconnected the same way.
Other sensors are not disturbed. The notification callback only stamps the arrival time
and queues the bytes; decoding, the clock model and framing run in the session's own task.

bleak is reached through its public API only, with two seams for tests: the client class
handed to ``establish_connection`` and the scanner backend (``collector.virtual_ble``
provides bumble-backed ones). No science here: the pipeline (decoder, clock, framer) is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakError
from bleak_retry_connector import establish_connection

from collector import profiles
from collector.clock import HostTime
from collector.config import (
    GatewayConfig,
    GatewayConfigError,
    ScanParams,
    SensorSpec,
    SupervisorParams,
    load_gateway_config,
)
from collector.pipeline import SensorPipeline
from collector.profiles import Profile
from poise.core import status, topics, wire

log = logging.getLogger("poise.collector.ble")
ConfigError = GatewayConfigError  # the config loader lives in collector.config (no bleak there)
__all__ = [
    "BluetoothUnavailableError",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "SensorSession",
    "SensorSpec",
    "SensorStats",
    "SupervisorParams",
    "load_gateway_config",
    "scan",
]
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"


@dataclass
class SensorStats:
    state: str = "idle"  # scanning, connecting, streaming, reconnecting, stopped
    connects: int = 0
    drops: int = 0
    stalls: int = 0
    notifications: int = 0
    samples: int = 0
    frames: int = 0
    lost_samples: int = 0
    duplicates: int = 0
    skipped_bytes: int = 0
    battery_pct: int | None = None
    rssi_dbm: int | None = None
    effective_rate_hz: float | None = None
    jitter_ms: float | None = None

    def as_status(self, spec: SensorSpec, rate_hz: float) -> dict[str, Any]:
        return status.sensor_status(
            state=self.state,
            profile=spec.profile,
            placement=spec.placement,
            rate_hz=rate_hz,
            counters={k: getattr(self, k) for k in status.COUNTERS},
            effective_rate_hz=self.effective_rate_hz,
            jitter_ms=self.jitter_ms,
            battery_pct=self.battery_pct,
            rssi_dbm=self.rssi_dbm,
        )


class BluetoothUnavailableError(RuntimeError):
    """No Bluetooth stack to talk to: no adapter, BlueZ not running, no D-Bus, no permission.
    Retrying cannot help, so the gateway stops and says so."""


def _unavailable(exc: BaseException) -> bool:
    # bleak names it when it can; with no system D-Bus at all the socket is simply missing
    return isinstance(
        exc, BleakBluetoothNotAvailableError | FileNotFoundError | ConnectionRefusedError
    )


FramesCallback = Callable[[SensorSpec, list[wire.Frame]], None]


class SensorSession:
    def __init__(
        self,
        spec: SensorSpec,
        on_frames: FramesCallback,
        *,
        client_class: type[BleakClient] = BleakClient,
        scanner_backend: type[BaseBleakScanner] | None = None,
        params: SupervisorParams | None = None,
        connect_lock: asyncio.Lock | None = None,
        profile: Profile | None = None,
        host_time: HostTime | None = None,
    ) -> None:
        self.spec = spec
        self._now_ns = (host_time or HostTime()).now_ns
        self.profile = profile or profiles.get(spec.profile)
        self.settings = self.profile.resolve(spec.settings)
        self.rate_hz = spec.rate_hz or self.profile.default_rate_hz
        self.params = params or SupervisorParams()
        self.on_frames = on_frames
        self.client_class = client_class
        self.scanner_backend = scanner_backend
        self.connect_lock = connect_lock or asyncio.Lock()
        self.stats = SensorStats()
        self.pipeline = SensorPipeline(
            self.profile,
            spec.sensor_id,
            self.rate_hz,
            settings=self.settings,
            channels=spec.channels,
        )
        self._queue: asyncio.Queue[tuple[int, bytes, bool]] = asyncio.Queue()
        self._last_notify = 0.0
        self._disconnected = asyncio.Event()
        self._arrivals: deque[int] = deque(maxlen=200)
        self._samples_window: deque[tuple[float, int]] = deque(maxlen=50)

    # the notification callback: trivial by design (bleak calls it on the event loop)
    def _on_notify(self, _sender: Any, data: bytearray) -> None:
        self._last_notify = time.monotonic()
        self._queue.put_nowait((self._now_ns(), bytes(data), False))

    def _on_answer(self, _sender: Any, data: bytearray) -> None:
        # the device's answer to a configuration write: in the same queue, so it is handled
        # before the data that follows it
        self._queue.put_nowait((self._now_ns(), bytes(data), True))

    def status(self) -> dict[str, Any]:
        """This sensor's status payload (poise.core.status)."""
        return self.stats.as_status(self.spec, self.rate_hz)

    def _on_disconnect(self, _client: Any) -> None:
        self._disconnected.set()

    def _handle_answer(self, data: bytes) -> None:
        self.pipeline.answer(data)
        refusal = self.pipeline.decoder.last_refusal
        if refusal:
            self.pipeline.decoder.last_refusal = None
            log.warning("sensor %s: %s", self.spec.sensor_id, refusal)

    async def _decode_loop(self) -> None:
        while True:
            arrival_ns, data, is_answer = await self._queue.get()
            if is_answer:
                self._handle_answer(data)
                continue
            self.stats.notifications += 1
            self._arrivals.append(arrival_ns)
            frames = self.pipeline.feed(data, arrival_ns)
            self._account(frames)

    def _account(self, frames: list[wire.Frame], *, arrived: bool = True) -> None:
        p = self.pipeline
        self.stats.lost_samples = p.lost_samples
        self.stats.duplicates = p.stats.duplicates
        self.stats.skipped_bytes = p.decoder.stats.skipped_bytes
        if frames:
            self.stats.frames += len(frames)
            self.stats.samples += sum(f.n_samples for f in frames)
            self.on_frames(self.spec, frames)
        if not arrived:
            return
        self._samples_window.append((time.monotonic(), p.decoder.stats.samples))
        if len(self._samples_window) > 1:
            (t0, n0), (t1, n1) = self._samples_window[0], self._samples_window[-1]
            if t1 > t0:
                self.stats.effective_rate_hz = round((n1 - n0) / (t1 - t0), 2)
        if len(self._arrivals) > 2:
            gaps = [
                (b - a) / 1e6
                for a, b in zip(self._arrivals, list(self._arrivals)[1:], strict=False)
            ]
            self.stats.jitter_ms = round(statistics.pstdev(gaps), 2)

    async def _find(self) -> BLEDevice | None:
        spec = self.spec

        def match(dev: BLEDevice, adv: AdvertisementData) -> bool:
            if spec.address is not None:
                return dev.address.upper() == spec.address.upper()
            return (adv.local_name or dev.name) == spec.name

        found: dict[str, int] = {}

        def remember(dev: BLEDevice, adv: AdvertisementData) -> bool:
            ok = match(dev, adv)
            if ok:
                found["rssi"] = adv.rssi
            return ok

        kw: dict[str, Any] = {"backend": self.scanner_backend} if self.scanner_backend else {}
        device = await BleakScanner.find_device_by_filter(
            remember, timeout=self.params.scan_timeout_s, **kw
        )
        if device is not None:
            self.stats.rssi_dbm = found.get("rssi")
        return device

    async def _configure(self, client: BleakClient) -> None:
        for w in self.profile.writes_for(self.rate_hz, self.settings):
            char = (w.char or self.profile.write or "").lower()
            await client.write_gatt_char(char, w.data, response=w.response)
            if w.delay_s:
                await asyncio.sleep(w.delay_s)
        if self.profile.battery:
            with contextlib.suppress(BleakError, ValueError, KeyError):
                self.stats.battery_pct = int((await client.read_gatt_char(BATTERY_LEVEL))[0])

    async def _one_connection(self, stop: asyncio.Event) -> str:
        """Connect, configure, stream until a drop, a stall or stop. Returns why it ended."""
        async with self.connect_lock:  # sensors connect one at a time, never while scanning
            self.stats.state = "scanning"
            device = await self._find()
            if device is None:
                return "not_found"
            self.stats.state = "connecting"
            self._disconnected.clear()
            client = await establish_connection(
                self.client_class,
                device,
                self.spec.sensor_id,
                disconnected_callback=self._on_disconnect,
                max_attempts=self.params.connect_attempts,
            )
            try:
                if self.profile.answers_char:
                    await client.start_notify(self.profile.answers_char, self._on_answer)
                await self._configure(client)
                await client.start_notify(self.profile.notify, self._on_notify)
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.disconnect()
                raise
        self.stats.connects += 1
        self.stats.state = "streaming"
        self._last_notify = time.monotonic()
        log.info(
            "sensor %s streaming (%s at %d Hz)", self.spec.sensor_id, self.profile.id, self.rate_hz
        )
        try:
            while True:
                if stop.is_set():
                    return "stopped"
                if self._disconnected.is_set():
                    return "dropped"
                if time.monotonic() - self._last_notify > self.params.stall_s:
                    return "stalled"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._disconnected.wait(), 0.1)
        finally:
            if not self._disconnected.is_set():
                with contextlib.suppress(Exception):
                    await client.disconnect()

    async def run(self, stop: asyncio.Event) -> None:
        decoder = asyncio.create_task(self._decode_loop())
        delay = self.params.reconnect_initial_s
        try:
            while not stop.is_set():
                try:
                    why = await self._one_connection(stop)
                except (BleakError, TimeoutError, OSError) as exc:
                    if _unavailable(exc):
                        raise BluetoothUnavailableError(
                            f"no Bluetooth to use ({type(exc).__name__}: {exc}). Is there a "
                            "Bluetooth adapter, is BlueZ (bluetoothd) running, and may this "
                            "user reach the system D-Bus?"
                        ) from exc
                    why = f"error: {exc}"
                if why == "stopped":
                    break
                if why == "dropped":
                    self.stats.drops += 1
                    delay = self.params.reconnect_initial_s  # it was streaming: retry soon
                elif why == "stalled":
                    self.stats.stalls += 1
                    delay = self.params.reconnect_initial_s
                self.stats.state = "reconnecting"
                log.warning(
                    "sensor %s: %s; reconnecting in %.1f s", self.spec.sensor_id, why, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.params.reconnect_max_s)
        finally:
            # hand over what was received before stopping
            while not self._queue.empty():
                arrival_ns, data, is_answer = self._queue.get_nowait()
                if is_answer:
                    self._handle_answer(data)
                else:
                    self._account(self.pipeline.feed(data, arrival_ns))
            self._account(self.pipeline.flush(), arrived=False)
            decoder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await decoder
            self.stats.state = "stopped"


class Gateway:
    """All configured sensors of one gateway, publishing frames and status."""

    def __init__(
        self,
        config: GatewayConfig,
        publisher: Any,
        *,
        client_class: type[BleakClient] = BleakClient,
        scanner_backend: type[BaseBleakScanner] | None = None,
    ) -> None:
        self.config = config
        self.publisher = publisher
        lock = asyncio.Lock()
        host_time = HostTime()  # one arrival timeline for every sensor of the gateway
        self.sessions = [
            SensorSession(
                spec,
                self._publish,
                client_class=client_class,
                scanner_backend=scanner_backend,
                params=config.supervision,
                connect_lock=lock,
                host_time=host_time,
            )
            for spec in config.sensors
        ]

    def _publish(self, spec: SensorSpec, frames: list[wire.Frame]) -> None:
        topic = topics.raw(self.config.site, spec.patient, spec.sensor_id)
        self.publisher.publish([(topic, wire.encode(f)) for f in frames])

    def publish_status(self) -> None:
        for s in self.sessions:
            self.publisher.publish_status(s.spec.sensor_id, s.status())

    async def run(self, stop: asyncio.Event) -> None:
        async def status_loop() -> None:
            while not stop.is_set():
                self.publish_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.supervision.status_every_s)

        tasks = [asyncio.create_task(s.run(stop)) for s in self.sessions]
        status = asyncio.create_task(status_loop())
        try:
            await asyncio.gather(*tasks)
        except BluetoothUnavailableError:
            stop.set()  # every other session ends the same way: stop them cleanly
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            stop.set()
            await status
            self.publish_status()


async def scan(
    timeout_s: float = ScanParams.timeout_s, scanner_backend: type[BaseBleakScanner] | None = None
) -> list[dict[str, Any]]:
    """Nearby devices with the profile that matches each (by name first, then service)."""
    kw: dict[str, Any] = {"backend": scanner_backend} if scanner_backend else {}
    found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **kw)
    known = profiles.load_all()
    out = []
    for dev, adv in found.values():
        name = adv.local_name or dev.name
        prof = profiles.match(known, name, adv.service_uuids)
        out.append(
            {
                "address": dev.address,
                "name": name,
                "rssi_dbm": adv.rssi,
                "profile": prof.id if prof else None,
            }
        )
    return sorted(out, key=lambda d: -(d["rssi_dbm"] or -999))
