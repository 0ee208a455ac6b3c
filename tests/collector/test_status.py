"""One status schema: a real gateway's sensor status, a simulated sensor's and the gateway's
own are built by poise.core.status and carry the same keys."""

from __future__ import annotations

import pytest

from collector.ble import SensorStats
from collector.config import SensorSpec
from poise.core import status
from poise.simulate import SimConfig, Simulation, sensor_status


def test_gateway_and_simulation_publish_the_same_status_keys():
    spec = SensorSpec("s-1", "p-1", "witmotion-wt901ble", name="WT901BLE1", placement="thigh")
    real = SensorStats(state="streaming", samples=990, lost_samples=10).as_status(spec, 100)
    sim = Simulation(SimConfig(patients=1, duration_s=2.0))
    simulated = sensor_status(next(iter(sim.sensors.values())), 100, sim.profile.id)
    assert set(real) == set(simulated)
    assert real["v"] == simulated["v"] == status.STATUS_VERSION
    assert real["online"] is True
    assert real["lost_pct"] == pytest.approx(1.0)
    assert set(status.gateway_status(False)) == {"v", "kind", "online"}
    assert "patient" not in real  # the topic names site and sensor only


def test_status_refuses_unknown_states_and_counters():
    with pytest.raises(ValueError, match="state must be one of"):
        status.sensor_status(state="on", profile="x", placement=None, rate_hz=1, counters={})
    with pytest.raises(ValueError, match="unknown counters"):
        status.sensor_status(
            state="idle", profile="x", placement=None, rate_hz=1, counters={"bogus": 1}
        )
