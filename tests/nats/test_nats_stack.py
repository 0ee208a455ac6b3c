"""``poise stack up --broker nats``: the same command, endpoints and env as the Mosquitto
stack, plus the NATS url; nobody anonymous on either of its listeners."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.integration


def _poise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poise.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_stack_up_with_nats_prints_its_url_and_refuses_anonymous_clients(tmp_path):
    up = _poise("stack", "up", "--broker", "nats", "--dir", str(tmp_path / "s"))
    assert up.returncode == 0, up.stderr
    try:
        info = json.loads(up.stdout)
        assert info["nats"]["url"].startswith("nats://127.0.0.1:")
        assert info["mqtt"]["protocol"] == "3.1.1"
        assert info["env"]["POISE_MQTT_PROTOCOL"] == "3.1.1"
        assert info["env"]["POISE_INGEST_MQTT_USER"] == "poise.ingest"

        # in a process of its own: a client refused at connect leaves its transport to the
        # garbage collector, which would otherwise warn in whichever test runs next
        probe = (
            "import asyncio, nats\n"
            "async def main():\n"
            "    try:\n"
            f"        nc = await nats.connect({info['nats']['url']!r}, allow_reconnect=False, "
            "connect_timeout=3, max_reconnect_attempts=0)\n"
            "    except Exception as exc:\n"
            "        print('refused', type(exc).__name__); return\n"
            "    print('connected'); await nc.close()\n"
            "asyncio.run(main())\n"
        )
        anon = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert anon.stdout.startswith("refused"), anon.stdout + anon.stderr
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        rc = client.connect(info["mqtt"]["host"], info["mqtt"]["port"])
        assert rc == 0  # the TCP connection; the broker answers CONNACK "not authorized"
        client.loop_start()
        time.sleep(1.0)
        assert not client.is_connected()
        client.loop_stop()
        client.disconnect()
        again = _poise("stack", "up", "--broker", "nats", "--dir", str(tmp_path / "s"))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["reused"] is True
    finally:
        down = _poise("stack", "down", "--dir", str(tmp_path / "s"))
    assert down.returncode == 0, down.stderr
    assert sorted(json.loads(down.stdout)["stopped"]) == ["influxdb", "nats"]
