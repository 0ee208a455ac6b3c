"""Virtual BLE: sensors as bumble peripherals, reached through bleak's public API.

There is no Bluetooth controller here, and bleak needs a kernel HCI device. Google's
``bumble`` runs a whole BLE host and controller in-process; two or more of them on a
``LocalLink`` talk to each other. This module provides

- ``VirtualWorld``: the link, the gateway's central device and the peripherals;
- a bleak backend (``BaseBleakClient`` and ``BaseBleakScanner`` subclasses) over the central,
  so the collector's real bleak code path (``BleakScanner``, ``BleakClient``,
  bleak-retry-connector's ``establish_connection``) runs unchanged against virtual sensors;
- ``VirtualWitMotion``: a peripheral that speaks the WitMotion profile's GATT protocol
  (rate writes answered as the device does, 0x55 0x61 records streamed at the configured
  rate, packed to the link's MTU) from simulated motion, with faults to inject: a
  peripheral-side drop, a stall (notifications stop, the link stays up), withheld samples.

Pitfalls handled (met while building this): bumble's connect waits forever for a cancel its
virtual controller never sends, so connects are wrapped in ``asyncio.wait_for``; a write
handler must raise bumble's ``ATT_Error`` (anything else leaves the client waiting 30 s);
the link starts at MTU 23, so the client asks for a larger one as BlueZ does; everything is
created inside the running loop. bleak 3.1.0 and bumble 0.0.236 are pinned: bumble is pre-1.0
and bleak's backend signatures changed in 3.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from bleak import BleakClient
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str
from bumble.att import ATT_Error, ErrorCode
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

log = logging.getLogger("poise.collector.virtual_ble")

_PROPS = {
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
}
CONNECTION_INTERVAL_S = 0.015


def _uuid(u: UUID) -> str:
    """bumble's UUID as bleak writes it: 128-bit, lower case, dashed."""
    h = u.to_hex_str()
    if len(h) <= 8:
        return normalize_uuid_str(h.lower())
    h = h.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _device(link: LocalLink, name: str, address: str) -> Device:
    controller = Controller(name, link=link, public_address=address)
    return Device(
        name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller))
    )


class VirtualWorld:
    """The air of one test: a LocalLink, the gateway's central and its peripherals."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self.central = _device(self.link, "poise-gateway", "F0:00:00:00:00:01")
        self.peripherals: dict[str, VirtualSensor] = {}
        self._next = 2

    async def start(self) -> None:
        await self.central.power_on()

    def new_address(self) -> str:
        addr = f"F0:00:00:00:00:{self._next:02X}"
        self._next += 1
        return addr

    def client_backend(self) -> type[BaseBleakClient]:
        return type("BumbleBleakClient", (_BumbleClient,), {"world": self})

    def scanner_backend(self) -> type[BaseBleakScanner]:
        return type("BumbleBleakScanner", (_BumbleScanner,), {"world": self})

    def client_class(self) -> type[BleakClient]:
        """A BleakClient bound to this world (what bleak-retry-connector instantiates)."""
        backend = self.client_backend()

        class VirtualBleakClient(BleakClient):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("backend", None)
                super().__init__(*args, backend=backend, **kwargs)

        return VirtualBleakClient

    async def close(self) -> None:
        for p in self.peripherals.values():
            await p.stop()
        for conn in list(self.central.connections.values()):
            with contextlib.suppress(Exception):
                await conn.disconnect()


class _BumbleScanner(BaseBleakScanner):
    world: VirtualWorld

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._listening = False

    def _on_advertisement(self, adv: Any) -> None:
        data = adv.data
        name_bytes = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME
        )
        name = name_bytes.decode() if isinstance(name_bytes, bytes) else name_bytes
        uuids = [
            _uuid(u)
            for key in (
                AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            )
            for u in (data.get(key) or [])
        ]
        if not self.is_allowed_uuid(uuids):
            return
        address = adv.address.to_string(False)
        ad = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=adv.rssi,
            platform_data=(adv,),
        )
        device = self.create_or_update_device(address, address, name, adv, ad)
        self.call_detection_callbacks(device, ad)

    async def start(self) -> None:
        self.seen_devices = {}
        self.world.central.on("advertisement", self._on_advertisement)
        self._listening = True
        await self.world.central.start_scanning(filter_duplicates=False)

    async def stop(self) -> None:
        if self._listening:
            self.world.central.remove_listener("advertisement", self._on_advertisement)
            self._listening = False
        await self.world.central.stop_scanning()


class _BumbleClient(BaseBleakClient):
    world: VirtualWorld

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=kwargs.get("timeout", 10.0),
        )
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        p = self.world.peripherals.get(self.address)
        return p.name if p else self.address

    @property
    def mtu_size(self) -> int:
        return int(self._conn.att_mtu) if self._conn else 23

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        timeout = float(kwargs.get("timeout", self._timeout))
        try:
            conn = await asyncio.wait_for(
                self.world.central.connect(Address(self.address)), timeout
            )
        except TimeoutError as exc:
            raise TimeoutError(f"virtual connect to {self.address} timed out") from exc
        self._conn = conn
        conn.on("disconnection", self._on_disconnection)
        peer = Peer(conn)
        self._peer = peer
        await peer.request_mtu(247)  # what BlueZ negotiates with these devices
        await peer.discover_services()
        services = BleakGATTServiceCollection()
        for svc in peer.services:
            await peer.discover_characteristics(service=svc)
            bs = BleakGATTService(svc, svc.handle, _uuid(svc.uuid))
            services.add_service(bs)
            for ch in svc.characteristics:
                await peer.discover_descriptors(characteristic=ch)
                props = [name for flag, name in _PROPS.items() if ch.properties & flag]
                bc = BleakGATTCharacteristic(
                    ch,
                    ch.handle,
                    _uuid(ch.uuid),
                    props,  # type: ignore[arg-type]
                    lambda: self.mtu_size - 3,
                    bs,
                )
                services.add_characteristic(bc)
                for d in ch.descriptors:
                    services.add_descriptor(BleakGATTDescriptor(d, d.handle, _uuid(d.type), bc))
        self.services = services

    def _on_disconnection(self, reason: int) -> None:
        self._conn = None
        self._peer = None
        self._subscribers.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        conn = self._conn
        if conn is None:
            return
        cb, self._disconnected_callback = (
            self._disconnected_callback,
            None,
        )  # asked for: no callback
        try:
            await conn.disconnect()
        finally:
            self._conn = None
            self._disconnected_callback = cb

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("virtual sensors need no pairing")

    async def unpair(self) -> None:
        raise NotImplementedError("virtual sensors need no pairing")

    def _need(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        self._need()
        return bytearray(await characteristic.obj.read_value())

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._need().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        self._need()
        await characteristic.obj.write_value(bytes(data), with_response=response)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        await self._need().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._need()
        if not characteristic.descriptors:
            # bumble only warns when there is no CCCD; real stacks fail, and so do we
            raise BleakError(f"characteristic {characteristic.uuid} cannot notify (no CCCD)")

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        await characteristic.obj.subscribe(deliver)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        deliver = self._subscribers.pop(characteristic.handle, None)
        if deliver is not None and self._peer is not None:
            await characteristic.obj.unsubscribe(deliver)


# --- virtual sensors ---

WIT_RATES = {0x06: 10, 0x07: 20, 0x08: 50, 0x09: 100, 0x0B: 200}
PMD_EPOCH_NS = 946_684_800 * 10**9


class VirtualSensor:
    """A sensor of any firmware profile that measures ``acc``/``gyr``/``mag`` (sensor frame,
    SI units, at ``source_rate_hz``) in real time from when it is powered on.

    It offers the profile's GATT service, answers its configuration writes as the device
    does (WitMotion's unlock/rate/save registers; a rate or start sequence for the others;
    Polar's control point answers with an indication), streams the profile's own packet
    layout at the configured rate, packed to the link's MTU, and loses what it measures while
    nobody listens. It counts exactly what it sent and what it withheld."""

    def __init__(
        self,
        world: VirtualWorld,
        profile_id: str,
        name: str,
        acc: np.ndarray,
        gyr: np.ndarray,
        mag: np.ndarray | None = None,
        source_rate_hz: float = 100.0,
        battery_pct: int = 87,
        address: str | None = None,
    ) -> None:
        from collector import profiles
        from collector.codecs import codec_for

        self.profile = profiles.get(profile_id)
        self.world = world
        self.name = name
        self.address = (address or world.new_address()).upper()
        self.device = _device(world.link, name, self.address)
        self.acc, self.gyr = acc, gyr
        self.mag = mag if mag is not None else np.tile([20.0, -5.0, -40.0], (len(acc), 1))
        self.source_rate_hz = source_rate_hz
        p = self.profile
        # the device's side of the profile's codec: the same bytes the gateway decodes
        self.codec = codec_for(p)
        self.rate_hz = p.device.factory_rate_hz or p.default_rate_hz
        self.settings = p.resolve({})
        self.started = p.device.streams == "always"
        self._start_seen: set[bytes] = set()
        self._answers_given: list[bytes] = []
        self._since_rate: list[bytes] = []  # writes since the last complete rate sequence
        self.writes: list[bytes] = []
        self.sent = 0  # samples notified
        self.withheld = 0  # samples measured but not sent once streaming had begun
        self.ever_subscribed = False
        self.stalled = False
        self._skip = 0
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._index = 0
        self._due_before = 0
        self._pending_indications: list[bytes] = []
        self.indications_sent = 0
        self._was_listening = False
        self._held: tuple[list[int], int] | None = None
        props = Characteristic.Properties
        self.notify_char = Characteristic(p.notify, props.NOTIFY, Characteristic.READABLE, b"")
        write_props = props.WRITE_WITHOUT_RESPONSE | props.WRITE
        if p.answers_char is not None and p.answers_char == (p.write or "").lower():
            write_props = props.READ | props.WRITE | props.INDICATE
        self.write_char: Characteristic[bytes] = Characteristic(
            p.write or "0000ffff-0000-1000-8000-00805f9b34fb",
            write_props,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue(read=lambda _c: b"", write=self._on_write),
        )
        self.device.add_service(Service(p.service, [self.notify_char, self.write_char]))
        if p.battery:
            battery = Characteristic(
                "00002a19-0000-1000-8000-00805f9b34fb",
                props.READ,
                Characteristic.READABLE,
                bytes([battery_pct]),
            )
            self.device.add_service(Service("0000180f-0000-1000-8000-00805f9b34fb", [battery]))
        world.peripherals[self.address] = self

    # --- configuration, as the device answers it (all of it profile data) ---
    def _on_write(self, connection: Any, value: bytes) -> None:
        from collector.codecs import codec_for

        value = bytes(value)
        self.writes.append(value)
        p = self.profile
        known = False
        answer = self.codec.device_answer(value)
        if answer is not None:
            known = True
            self.codec.answer(answer)  # the device knows what it said (its FACTOR)
            self._answers_given.append(answer)
            self._pending_indications.append(answer)
        if any(value == w.data for seq in p.rate_writes.values() for w in seq):
            known = True
            self._since_rate.append(value)
            # a rate is set when its whole sequence has been written (e.g. WitMotion's
            # unlock, rate register, save)
            done = [
                rate
                for rate, seq in p.rate_writes.items()
                if value == seq[-1].data and all(w.data in self._since_rate for w in seq)
            ]
            if done:
                # several sequences may share their last write: the one whose writes came last
                since = self._since_rate

                def last_seen(rate: int) -> int:
                    seq = p.rate_writes[rate]
                    return max(len(since) - 1 - since[::-1].index(w.data) for w in seq[:-1] or seq)

                self.rate_hz = max(done, key=last_seen)
                self._since_rate.clear()
                if p.device.streams == "after-rate":
                    self.started = True
        for name, st in p.settings.items():
            for option, data in st.writes.items():
                if value == data:  # e.g. MetaMotion's configure write carries the range
                    self.settings[name] = option
                    known = True
                    self.codec = codec_for(p, settings=self.settings)
                    for given in self._answers_given:
                        self.codec.answer(given)
        fixed_starts = {w.data for w in p.start if w.setting is None}
        if value in fixed_starts:
            known = True
            self._start_seen.add(value)
            if fixed_starts <= self._start_seen and p.device.streams == "after-start":
                self.started = True
        if known or (not p.rate_writes and not p.start):
            return  # (a device without commands, like a NUS sketch, ignores what it gets)
        raise ATT_Error(ErrorCode.VALUE_NOT_ALLOWED)

    # --- the device's own packet layout ---
    def _values(self, idx: list[int]) -> np.ndarray:
        cols = {"acc": self.acc[idx], "gyr": self.gyr[idx], "mag": self.mag[idx]}
        return np.column_stack([cols[c[:3]][:, "xyz".index(c[-1])] for c in self.profile.channels])

    def _encode(self, idx: list[int], first_index: int, mtu: int) -> list[tuple[bytes, int]]:
        """Notifications (bytes, samples in them) for the samples ``idx``."""
        return self.codec.encode(self._values(idx), first_index, self.rate_hz, mtu)

    # --- life ---
    async def start(self) -> None:
        await self.device.power_on()
        adv = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                ]
            )
        )
        await self.device.start_advertising(
            advertising_data=adv,
            auto_restart=True,
            advertising_interval_min=20,
            advertising_interval_max=20,
        )
        self._t0 = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drop(self) -> None:
        """The sensor ends the connection (out of range, a reset): it keeps advertising."""
        for conn in list(self.device.connections.values()):
            await conn.disconnect()

    def withhold(self, n: int) -> None:
        """Skip the next ``n`` samples (a FIFO overflow on the device)."""
        self._skip += n

    def _listeners(self) -> list[Any]:
        server = self.device.gatt_server
        out = []
        for conn in self.device.connections.values():
            cccd = server.subscribers.get(conn, {}).get(self.notify_char.handle)
            if cccd and cccd != b"\x00\x00":
                out.append(conn)
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stride = 0.0
        while True:
            await asyncio.sleep(CONNECTION_INTERVAL_S)
            while self._pending_indications:
                data = self._pending_indications.pop(0)
                for conn in list(self.device.connections.values()):
                    with contextlib.suppress(Exception):
                        await self.device.indicate_subscriber(conn, self.write_char, data)
                        self.indications_sent += 1
            now = loop.time() - self._t0
            due = int(now * self.rate_hz)
            new = due - self._due_before
            self._due_before = due
            if new <= 0:
                continue
            first_index = due - new
            idx = []
            for _ in range(new):
                idx.append(min(int(self._index + stride), len(self.acc) - 1))
                stride += self.source_rate_hz / self.rate_hz
            self._index += int(stride)
            stride -= int(stride)
            listeners = self._listeners()
            if listeners and self.started:
                self.ever_subscribed = True
            if self._held is not None:  # samples kept from the tick the subscription began
                held_idx, held_first = self._held
                self._held = None
                idx, first_index, new = held_idx + idx, held_first, new + len(held_idx)
            if not listeners or self.stalled or not self.started:
                if self.ever_subscribed:  # before anyone ever listened, nobody can miss it
                    self.withheld += new
                self._was_listening = False
                continue
            if not self._was_listening:
                # Like a real device, start on the connection event after the CCCD write: a
                # notification racing the client's own subscription bookkeeping is lost there.
                self._was_listening = True
                self._held = (idx, first_index)
                continue
            if self._skip:
                k = min(self._skip, new)
                self._skip -= k
                self.withheld += k
                idx, first_index = idx[k:], first_index + k
                if not idx:
                    continue
            conn = listeners[0]  # a sensor serves one central
            for data, n in self._encode(idx, first_index, conn.att_mtu):
                try:
                    await self.device.notify_subscriber(conn, self.notify_char, data)
                    self.sent += n
                except Exception:  # the link went down mid-event: these never left
                    log.debug("notify failed", exc_info=True)
                    self.withheld += n


class VirtualWitMotion(VirtualSensor):
    """A virtual WitMotion WT901BLE (the profile the demo's patients wear)."""

    def __init__(
        self,
        world: VirtualWorld,
        name: str,
        acc: np.ndarray,
        gyr: np.ndarray,
        source_rate_hz: float = 100.0,
    ) -> None:
        super().__init__(world, "witmotion-wt901ble", name, acc, gyr, source_rate_hz=source_rate_hz)
