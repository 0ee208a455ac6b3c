"""The collector's real bleak code path against virtual BLE sensors (bumble peripherals on an
in-process link; no Bluetooth hardware exists here). Sample accounting must be exact: every
sample a sensor measured after it first streamed is either received or reported lost. The
peripheral counts what it withheld; a notification already handed to the link when the link
goes down is lost in flight, as on real radios, and is reported lost too."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from collector.ble import (
    ConfigError,
    Gateway,
    GatewayConfig,
    SensorSession,
    SensorSpec,
    SupervisorParams,
    load_gateway_config,
    scan,
)
from collector.publisher import Publisher
from collector.spool import Spool
from collector.virtual import simulate_patient
from collector.virtual_ble import VirtualWitMotion, VirtualWorld
from poise.ingest import Ingest
from tests.conftest import wait_until

FAST = SupervisorParams(
    stall_s=1.0, scan_timeout_s=3.0, reconnect_initial_s=0.2, status_every_s=0.5
)
RATE_WRITES = [bytes.fromhex(h) for h in ("ffaa6988b5", "ffaa030900", "ffaa000000")]


def _motion(seed: int, placement: str = "lower_back"):
    tr = simulate_patient(np.random.default_rng(seed), 120.0)[placement]
    return tr.acc, tr.gyr


async def _until(pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def test_scan_matches_profiles():
    async def main():
        world = VirtualWorld()
        await world.start()
        for i in range(2):
            await VirtualWitMotion(world, f"WT901BLE{i}", *_motion(i)).start()
        found = await scan(1.0, world.scanner_backend())
        await world.close()
        return found

    found = asyncio.run(main())
    assert sorted(d["name"] for d in found) == ["WT901BLE0", "WT901BLE1"]
    assert {d["profile"] for d in found} == {"witmotion-wt901ble"}
    assert all(d["rssi_dbm"] is not None for d in found)


def test_stream_drop_stall_withhold_and_exact_accounting():
    async def main():
        world = VirtualWorld()
        await world.start()
        dev = VirtualWitMotion(world, "WT901BLE67", *_motion(3))
        await dev.start()
        frames = []
        session = SensorSession(
            SensorSpec("s-1", "p-1", "witmotion-wt901ble", name="WT901BLE67", rate_hz=100),
            lambda spec, fr: frames.extend(fr),
            client_class=world.client_class(),
            scanner_backend=world.scanner_backend(),
            params=FAST,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop))
        await _until(lambda: session.stats.samples >= 150, 10, "streaming")
        assert dev.rate_hz == 100  # the configuration write reached the device
        await dev.drop()  # 1. the sensor drops the link
        await _until(
            lambda: session.stats.connects == 2 and session.stats.samples > 300, 10, "reconnect"
        )
        dev.stalled = True  # 2. it stops notifying but stays connected
        await _until(lambda: session.stats.stalls == 1, 10, "stall detected")
        dev.stalled = False
        await _until(lambda: session.stats.connects == 3, 10, "reconnect after the stall")
        await asyncio.sleep(0.5)
        dev.withhold(40)  # 3. a FIFO overflow: 40 samples never sent
        await asyncio.sleep(1.5)
        await dev.stop()  # the device stops first, so nothing it measures goes unheard
        await asyncio.sleep(0.2)
        stop.set()
        await task
        await world.close()
        return dev, session, frames

    dev, session, frames = asyncio.run(main())
    st = session.stats
    assert (st.drops, st.stalls) == (1, 1)
    assert st.connects == 3
    # configured and subscribed again on every connection
    assert dev.writes == RATE_WRITES * 3
    received = sum(f.n_samples for f in frames)
    assert received == st.samples
    assert received + st.lost_samples == dev.sent + dev.withheld  # nothing unaccounted
    in_flight = dev.sent - received  # sent as the link went down (one drop, one stall)
    assert 0 <= in_flight <= 8
    assert st.lost_samples == dev.withheld + in_flight
    assert dev.withheld > 40
    times = np.concatenate([f.times_ns() for f in frames])
    assert np.all(np.diff(times) > 0)
    # frame indices account for the lost samples: the last index is everything measured
    last = frames[-1]
    assert last.first_sample_seq + last.n_samples == dev.sent + dev.withheld
    assert st.effective_rate_hz == pytest.approx(100, rel=0.2)


def test_one_sensor_dropping_does_not_disturb_another():
    async def main():
        world = VirtualWorld()
        await world.start()
        a = VirtualWitMotion(world, "WT901BLEA", *_motion(4))
        b = VirtualWitMotion(world, "WT901BLEB", *_motion(5))
        await a.start()
        await b.start()
        lock = asyncio.Lock()
        got: dict[str, int] = {"a": 0, "b": 0}
        sessions = {
            key: SensorSession(
                SensorSpec(f"s-{key}", "p-1", "witmotion-wt901ble", name=dev.name),
                lambda spec, fr, key=key: got.__setitem__(
                    key, got[key] + sum(f.n_samples for f in fr)
                ),
                client_class=world.client_class(),
                scanner_backend=world.scanner_backend(),
                params=FAST,
                connect_lock=lock,
            )
            for key, dev in (("a", a), ("b", b))
        }
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in sessions.values()]
        await _until(lambda: min(got.values()) > 100, 15, "both streaming")
        await a.drop()
        await _until(lambda: sessions["a"].stats.connects == 2, 10, "a back")
        await asyncio.sleep(1.5)
        await a.stop()
        await b.stop()
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        await world.close()
        return a, b, sessions

    a, b, sessions = asyncio.run(main())
    assert sessions["a"].stats.drops == 1
    assert sessions["b"].stats.drops == 0
    assert sessions["b"].stats.connects == 1
    assert sessions["b"].stats.lost_samples == b.withheld == 0
    a_in_flight = a.sent - sessions["a"].stats.samples
    assert 0 <= a_in_flight <= 4
    assert sessions["a"].stats.lost_samples == a.withheld + a_in_flight
    assert a.withheld > 0
    assert sessions["b"].stats.samples == b.sent


@pytest.mark.integration
def test_gateway_to_influxdb_stores_every_sample_received(stack, influx, tmp_path: Path):
    info = stack.info()
    ing = Ingest(
        info.mqtt_host,
        info.mqtt_port,
        influx,
        client_id="ble-ingest",
        **stack.mqtt_kwargs("ingest"),
    )
    ing.start()
    assert ing.subscribed.wait(10)
    pub = Publisher(
        info.mqtt_host,
        info.mqtt_port,
        Spool(tmp_path / "spool.db"),
        site="clinic",
        gateway_id="gw-1",
        **stack.mqtt_kwargs("gateway", "clinic"),
    )
    pub.start()
    config = GatewayConfig(
        site="clinic",
        gateway_id="gw-1",
        mqtt_host=info.mqtt_host,
        mqtt_port=info.mqtt_port,
        spool_path=tmp_path / "spool.db",
        supervision=FAST,
        sensors=(
            SensorSpec(
                "s-back", "p-7", "witmotion-wt901ble", name="WT901BLE1", placement="lower_back"
            ),
            SensorSpec("s-shank", "p-7", "witmotion-wt901ble", name="WT901BLE2", placement="shank"),
        ),
    )

    async def main():
        world = VirtualWorld()
        await world.start()
        devs = [VirtualWitMotion(world, f"WT901BLE{i}", *_motion(10 + i)) for i in (1, 2)]
        for d in devs:
            await d.start()
        gw = Gateway(
            config, pub, client_class=world.client_class(), scanner_backend=world.scanner_backend()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        await _until(lambda: all(s.stats.samples > 300 for s in gw.sessions), 20, "streaming")
        await devs[0].drop()
        await asyncio.sleep(2.0)
        for d in devs:
            await d.stop()
        await asyncio.sleep(0.2)
        stop.set()
        await task
        await world.close()
        return gw, devs

    try:
        gw, devs = asyncio.run(main())
        received = sum(s.stats.samples for s in gw.sessions)
        lost = sum(s.stats.lost_samples for s in gw.sessions)
        assert received + lost == sum(d.sent + d.withheld for d in devs)
        assert pub.wait_drained(30)
        wait_until(
            lambda: influx.count_samples() >= received and ing.idle(), 30, "samples in InfluxDB"
        )
        assert influx.count_samples() == received
        assert influx.count_samples("sensor = 's-back'") == gw.sessions[0].stats.samples
    finally:
        pub.stop()
        ing.stop()


def test_gateway_config_errors_name_the_field(tmp_path: Path):
    good = """
site = "clinic-a"
gateway_id = "gw-1"
[mqtt]
host = "127.0.0.1"
port = 1883
[[sensor]]
id = "s-1"
patient = "p-1"
profile = "witmotion-wt901ble"
name = "WT901BLE67"
rate_hz = 100
"""
    path = tmp_path / "gw.toml"
    path.write_text(good)
    cfg = load_gateway_config(path)
    assert cfg.sensors[0].rate_hz == 100
    for bad, message in [
        (
            good.replace('patient = "p-1"', 'patient = "Jane Doe"'),
            "field 'sensor[0].patient': expected a pseudonymous id",
        ),
        (
            good.replace("rate_hz = 100", "rate_hz = 99"),
            "field 'sensor[0].rate_hz': expected one of [10, 20, 50, 100, 200], found 99",
        ),
        (
            good.replace('profile = "witmotion-wt901ble"', 'profile = "acme"'),
            "field 'sensor[0].profile'",
        ),
        (good.replace('name = "WT901BLE67"', ""), "expected an address or a name"),
        (
            good.replace("port = 1883", 'port = "x"'),
            "field 'mqtt.port': expected a port from 1 to 65535, found 'x'",
        ),
    ]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_gateway_config(path)


PROFILE_CASES = [
    # profile, name, rate, settings, channels
    ("witmotion-wt901ble", "WT901BLE9", 100, {}, None),
    ("thingy52", "Thingy", 50, {}, None),
    ("microbit", "BBC micro:bit [zogav]", 50, {}, None),
    ("metamotion-bmi160", "MetaWear", 100, {"range_g": "8"}, None),
    ("polar-h10", "Polar H10 1234", 100, {}, None),
    ("polar-verity-sense", "Polar Sense 42", 52, {}, ("acc_x", "acc_y", "acc_z")),
    ("nus-json", "ESP32-IMU", 100, {}, None),
    ("movella-dot", "Movella DOT", 60, {}, None),
]


@pytest.mark.parametrize(("profile_id", "name", "rate", "settings", "channels"), PROFILE_CASES)
def test_every_profile_connects_configures_and_streams(profile_id, name, rate, settings, channels):
    """Each profile's virtual device answers its configuration as the device does and streams
    its own packet layout; the collector decodes it back to the values measured."""
    from collector.virtual_ble import VirtualSensor

    acc = np.tile([0.5, -1.0, 9.7], (20_000, 1))
    gyr = np.tile([0.1, 0.0, -0.2], (20_000, 1))

    async def main():
        world = VirtualWorld()
        await world.start()
        dev = VirtualSensor(world, profile_id, name, acc, gyr)
        await dev.start()
        frames = []
        session = SensorSession(
            SensorSpec(
                "s-1",
                "p-1",
                profile_id,
                name=name,
                rate_hz=rate if rate != 52 else None,
                settings=settings,
                channels=channels,
            ),
            lambda spec, fr: frames.extend(fr),
            client_class=world.client_class(),
            scanner_backend=world.scanner_backend(),
            params=FAST,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop))
        await _until(lambda: session.stats.state == "streaming", 10, "streaming")
        await asyncio.sleep(1.5)
        await dev.stop()
        await asyncio.sleep(0.3)
        stop.set()
        await task
        await world.close()
        return dev, session, frames

    dev, session, frames = asyncio.run(main())
    assert dev.started, "the configuration did not start the device"
    assert dev.rate_hz == rate
    received = sum(f.n_samples for f in frames)
    assert received >= 0.8 * rate * 1.5
    assert received + session.stats.lost_samples == dev.sent + dev.withheld
    data = np.concatenate([f.data for f in frames]).astype(np.float64)
    cols = list(frames[0].channels)
    got_acc = data[:, [cols.index(c) for c in ("acc_x", "acc_y", "acc_z")]]
    # within each device's resolution (WitMotion: 16 g / 32768 = 0.0048 m/s²; Polar: 1 mG)
    np.testing.assert_allclose(got_acc, np.tile([0.5, -1.0, 9.7], (len(data), 1)), atol=0.006)
    if "gyr_x" in cols:
        got_gyr = data[:, [cols.index(c) for c in ("gyr_x", "gyr_y", "gyr_z")]]
        np.testing.assert_allclose(got_gyr, np.tile([0.1, 0.0, -0.2], (len(data), 1)), atol=0.002)
    if dev.profile.battery:
        assert session.stats.battery_pct == 87
