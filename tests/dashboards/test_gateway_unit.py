"""The gateway's systemd unit and installer (deploy/gateway/): systemd's own checker accepts
the unit, it runs the collector unprivileged with the password as a systemd credential, and
the installer installs a wheel, not the source tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "deploy" / "gateway"
UNIT = GATEWAY / "poise-gateway.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # the collector's path exists only on a gateway: point ExecStart at a binary that exists
    # here so the checker looks at everything else
    text = UNIT.read_text(encoding="utf-8").replace("/opt/poise/venv/bin/poise", "/bin/true")
    unit = tmp_path / UNIT.name
    unit.write_text(text, encoding="utf-8")
    run = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in run.stderr.splitlines() if UNIT.name in line]
    assert run.returncode == 0
    assert complaints == []


def test_unit_runs_the_collector_unprivileged_with_a_credential() -> None:
    s = _settings()
    assert s["ExecStart"] == ["/opt/poise/venv/bin/poise collect --config /etc/poise/gateway.toml"]
    assert s["User"] == ["poise-gateway"]
    assert s["SupplementaryGroups"] == ["bluetooth"]
    assert s["LoadCredential"] == ["mqtt-password:/etc/poise/gateway-mqtt-password"]
    assert s["Environment"] == ["POISE_GATEWAY_MQTT_PASSWORD_FILE=%d/mqtt-password"]
    assert s["Restart"] == ["always"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["StateDirectory"] == ["poise"]  # the example config spools in /var/lib/poise
    env = (GATEWAY / "gateway.env.example").read_text(encoding="utf-8")
    assert "PASSWORD" not in env.replace("gateway-mqtt-password", "")


def test_installer_builds_and_installs_the_wheel() -> None:
    text = (GATEWAY / "install.sh").read_text(encoding="utf-8")
    assert "python -m build --wheel" in text
    assert "[collector]" in text
    assert "pip install -e" not in text
    assert "install -m 0600 /dev/null /etc/poise/gateway-mqtt-password" in text
    run = subprocess.run(
        ["sh", "-n", str(GATEWAY / "install.sh")], check=False, capture_output=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
