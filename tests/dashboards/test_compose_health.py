"""The Compose file's health checks, run as written against real services: the project's
own Mosquitto and InfluxDB (poise stack) and a real `poise console`, with only the host
names, ports and secret paths of the Compose network replaced by this machine's. Grafana's
and the proxy's checks need those programs, which cannot run here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _health(service: str) -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    test = compose["services"][service]["healthcheck"]["test"]
    # Compose turns $$ into a literal $ before the container sees the command
    return [part.replace("$$", "$") for part in test]


def _run(test: list[str], replace: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    def sub(text: str) -> str:
        for old, new in replace.items():
            text = text.replace(old, new)
        return text

    kind, *argv = test
    argv = [sub(a) for a in argv]
    if kind == "CMD-SHELL":
        argv = ["sh", "-c", argv[0]]
    elif argv[0] == "python":
        argv[0] = sys.executable
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp)


def test_broker_database_and_service_checks(stack, tmp_path: Path) -> None:
    info = stack.info()
    influx_port = info.influx_url.rsplit(":", 1)[1]
    secret = tmp_path / "admin_password"
    secret.write_text(stack.mqtt_login("admin")[1], encoding="utf-8")
    replace = {
        "/run/secrets/admin_password": str(secret),
        "-p 1883": f"-p {info.mqtt_port}",
        "127.0.0.1:8086": f"127.0.0.1:{influx_port}",
        "('mosquitto', 1883)": f"('127.0.0.1', {info.mqtt_port})",
        "('influxdb', 8086)": f"('127.0.0.1', {influx_port})",
    }
    for service in ("mosquitto", "influxdb", "ingest", "worker"):
        run = _run(_health(service), replace, tmp_path)
        assert run.returncode == 0, (service, run.stdout, run.stderr)
    # and they fail when the service is not there
    stack.stop()
    for service in ("mosquitto", "influxdb", "ingest"):
        assert _run(_health(service), replace, tmp_path).returncode != 0, service


def test_console_check(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "poise.cli", "console", "--data", str(tmp_path / "data"),
         "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )  # fmt: skip
    replace = {"127.0.0.1:8080": f"127.0.0.1:{port}"}
    try:

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, 60, "the console to listen")
        run = _run(_health("console"), replace, tmp_path)
        assert run.returncode == 0, run.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    time.sleep(0.2)
    assert _run(_health("console"), replace, tmp_path).returncode != 0
