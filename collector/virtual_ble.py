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

from collector.virtual import encode_witmotion

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
        self.peripherals: dict[str, VirtualWitMotion] = {}
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

WIT_SERVICE = "0000ffe5-0000-1000-8000-00805f9a34fb"
WIT_NOTIFY = "0000ffe4-0000-1000-8000-00805f9a34fb"
WIT_WRITE = "0000ffe9-0000-1000-8000-00805f9a34fb"
WIT_RATES = {0x06: 10, 0x07: 20, 0x08: 50, 0x09: 100, 0x0B: 200}


class VirtualWitMotion:
    """A WitMotion WT901BLE that measures ``acc``/``gyr`` (sensor frame, SI units, at
    ``source_rate_hz``) in real time from when it is powered on.

    Like the real device it streams once notifications are on, changes its rate on an
    unlocked register write, and loses what it measures while nobody listens. Counters say
    exactly which samples it sent and which it withheld (not sent while measuring)."""

    def __init__(
        self,
        world: VirtualWorld,
        name: str,
        acc: np.ndarray,
        gyr: np.ndarray,
        source_rate_hz: float = 100.0,
    ) -> None:
        self.world = world
        self.name = name
        self.address = world.new_address()
        self.device = _device(world.link, name, self.address)
        self.acc, self.gyr = acc, gyr
        self.source_rate_hz = source_rate_hz
        self.rate_hz = 10  # the factory default until configured
        self.unlocked = False
        self.writes: list[bytes] = []
        self.sent = 0  # samples notified
        self.withheld = 0  # samples measured but not sent once streaming had begun
        self.ever_subscribed = False
        self.stalled = False
        self._skip = 0  # samples to withhold on purpose
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._index = 0  # next source sample to emit
        self._due_before = 0  # samples due at the last tick
        self.notify_char = Characteristic(
            WIT_NOTIFY, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""
        )
        write_char: Characteristic[bytes] = Characteristic(
            WIT_WRITE,
            Characteristic.Properties.WRITE_WITHOUT_RESPONSE | Characteristic.Properties.WRITE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_write),
        )
        self.device.add_service(Service(WIT_SERVICE, [self.notify_char, write_char]))
        world.peripherals[self.address] = self

    def _on_write(self, connection: Any, value: bytes) -> None:
        value = bytes(value)
        self.writes.append(value)
        if len(value) != 5 or value[:2] != b"\xff\xaa":
            raise ATT_Error(ErrorCode.VALUE_NOT_ALLOWED)
        reg = value[2]
        if reg == 0x69 and value[3:] == b"\x88\xb5":
            self.unlocked = True
        elif reg == 0x03 and self.unlocked and value[3] in WIT_RATES:
            self.rate_hz = WIT_RATES[value[3]]
        elif reg == 0x00:
            self.unlocked = False

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

    # faults
    async def drop(self) -> None:
        """The sensor ends the connection (out of range, a reset): it keeps advertising."""
        for conn in list(self.device.connections.values()):
            await conn.disconnect()

    def withhold(self, n: int) -> None:
        """Skip the next ``n`` samples (a FIFO overflow on the device)."""
        self._skip += n

    def subscribed(self) -> bool:
        return bool(self._listeners())

    def _listeners(self) -> list[Any]:
        server = self.device.gatt_server
        out = []
        for conn in self.device.connections.values():
            subs = server.subscribers.get(conn, {})
            cccd = subs.get(self.notify_char.handle)
            if cccd and cccd != b"\x00\x00":
                out.append(conn)
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stride_src = 0.0
        while True:
            await asyncio.sleep(CONNECTION_INTERVAL_S)
            now = loop.time() - self._t0
            # how many samples at the device's current rate are due by now
            due = int(now * self.rate_hz)
            new = due - self._due_before
            self._due_before = due
            if new <= 0:
                continue
            # map device samples onto the simulated motion (source rate may differ)
            idx = []
            for _ in range(new):
                idx.append(min(int(self._index + stride_src), len(self.acc) - 1))
                stride_src += self.source_rate_hz / self.rate_hz
            self._index += int(stride_src)
            stride_src -= int(stride_src)
            listeners = self._listeners()
            if listeners:
                self.ever_subscribed = True
            if not listeners or self.stalled:
                if self.ever_subscribed:  # before anyone ever listened, nobody can miss it
                    self.withheld += new
                continue
            if self._skip:
                k = min(self._skip, new)
                self._skip -= k
                self.withheld += k
                idx = idx[k:]
                if not idx:
                    continue
            records = encode_witmotion(self.acc[idx], self.gyr[idx])
            conn = listeners[0]  # a sensor serves one central
            size = max(20, (conn.att_mtu - 3) // 20 * 20)
            for pos in range(0, len(records), size):
                chunk = records[pos : pos + size]
                try:
                    await self.device.notify_subscriber(conn, self.notify_char, chunk)
                    self.sent += len(chunk) // 20
                except Exception:  # the link went down mid-event: these never left
                    log.debug("notify failed", exc_info=True)
                    self.withheld += len(chunk) // 20
