"""``poise collect`` on a bad day: a bad config, no Bluetooth, a dead broker, and what an
earlier run left in the spool. Every case ends with a clear message and an exit code, never a
traceback; the gateway config is checked without importing bleak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import GatewayConfigError, load_gateway_config
from collector.spool import Spool
from poise.stack import free_port

POISE = [sys.executable, "-m", "poise.cli"]
GOOD = """
site = "clinic-a"
gateway_id = "gw-1"
[mqtt]
host = "127.0.0.1"
port = {port}
[spool]
path = "{spool}"
[[sensor]]
id = "s-1"
patient = "p-1"
profile = "witmotion-wt901ble"
address = "F0:00:00:00:00:0A"
rate_hz = 100
placement = "lower_back"
"""


def _config(tmp_path: Path, text: str | None = None, port: int = 1883) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text or GOOD.format(port=port, spool=tmp_path / "spool.db"))
    return path


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [*POISE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'address = "F0:00:00:00:00:0A"',
            'address = "F0:00:00:0A"',
            "field 'sensor[0].address': expected a BLE address",
        ),
        (
            "rate_hz = 100",
            'rate_hz = 100\nchannels = ["acc_x", "acc_q"]',
            "field 'sensor[0].channels'",
        ),
        ("rate_hz = 100", "rate_hz = 100\nchannels = []", "field 'sensor[0].channels'"),
        (
            "rate_hz = 100",
            "rate_hz = 100\nrate = 50",
            "field 'sensor[0].rate': expected one of the fields",
        ),
        ('placement = "lower_back"', 'placement = "elbow-ish"', "field 'sensor[0].placement'"),
        (
            "[spool]",
            "[supervision]\nstall_s = -1\n[spool]",
            "field 'supervision.stall_s': expected seconds from 0.2 to 600, found -1",
        ),
        (
            "[spool]",
            "[supervision]\nreconnect_initial_s = 5.0\nreconnect_max_s = 1.0\n[spool]",
            "field 'supervision.reconnect_max_s': expected at least reconnect_initial_s",
        ),
        (
            "[spool]",
            "[supervision]\nconnect_attempts = 0\n[spool]",
            "field 'supervision.connect_attempts'",
        ),
        (
            "port = 1883",
            "port = 70000",
            "field 'mqtt.port': expected a port from 1 to 65535, found 70000",
        ),
    ],
)
def test_bad_config_is_refused_at_load(tmp_path: Path, old, new, message):
    text = GOOD.format(port=1883, spool=tmp_path / "spool.db")
    assert old in text
    path = _config(tmp_path, text.replace(old, new, 1))
    with pytest.raises(GatewayConfigError) as exc:
        load_gateway_config(path)
    assert message in str(exc.value)


def test_duplicate_ids_and_addresses_are_refused(tmp_path: Path):
    base = GOOD.format(port=1883, spool=tmp_path / "spool.db")
    second = base[base.index("[[sensor]]") :]
    dup_id = base + second.replace('address = "F0:00:00:00:00:0A"', 'address = "F0:00:00:00:00:0B"')
    with pytest.raises(
        GatewayConfigError, match=r"sensor\[1\]\.id': expected an id no other sensor has"
    ):
        load_gateway_config(_config(tmp_path, dup_id))
    dup_addr = base + second.replace('id = "s-1"', 'id = "s-2"').replace(
        "F0:00:00:00:00:0A", "f0:00:00:00:00:0a"
    )
    with pytest.raises(
        GatewayConfigError, match=r"sensor\[1\]\.address': expected an address no other"
    ):
        load_gateway_config(_config(tmp_path, dup_addr))


def test_unwritable_spool_is_refused(tmp_path: Path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    text = GOOD.format(port=1883, spool=folder)
    with pytest.raises(
        GatewayConfigError, match=r"field 'spool.path': expected a file path \(this is a folder\)"
    ):
        load_gateway_config(_config(tmp_path, text))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        GatewayConfigError, match=r"--spool .*: expected a path whose folder can be created"
    ):
        load_gateway_config(_config(tmp_path), spool_override=blocker / "sub" / "spool.db")


def test_checking_a_config_does_not_import_bleak(tmp_path: Path):
    path = _config(tmp_path)
    code = (
        "import sys; from collector.config import load_gateway_config;"
        f"load_gateway_config({str(path)!r}); print('bleak' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_config_exits_2_without_traceback(tmp_path: Path):
    text = GOOD.format(port=1883, spool=tmp_path / "spool.db").replace("channels", "x")
    path = _config(tmp_path, text.replace("rate_hz = 100", 'rate_hz = 100\nchannels = ["gyr_w"]'))
    res = _run("collect", "--config", str(path), "--duration", "1")
    assert res.returncode == 2
    assert "field 'sensor[0].channels'" in res.stderr
    assert "Traceback" not in res.stderr


def test_no_bluetooth_gives_a_clear_message(tmp_path: Path):
    """No system D-Bus to reach BlueZ (as on a machine without Bluetooth): a clear message
    and exit 1, not an endless '[Errno 2] ...; reconnecting'."""
    path = _config(tmp_path, port=free_port())
    res = _run(
        "collect",
        "--config",
        str(path),
        "--duration",
        "20",
        env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"},
    )
    assert res.returncode == 1, res.stderr
    assert "no Bluetooth to use" in res.stderr
    assert "bluetoothd" in res.stderr
    assert "Traceback" not in res.stderr


def test_dead_broker_is_not_a_silent_success(tmp_path: Path):
    """Nothing listens on the broker port: the run warns while it lasts, ends non-zero and
    says how many frames stay in the spool; the next run announces them before sending, or
    drops them when told to."""
    port = free_port()
    path = _config(tmp_path, port=port)
    spool = tmp_path / "elsewhere" / "spool.db"
    res = _run(
        "collect", "--config", str(path), "--virtual", "--duration", "8", "--spool", str(spool)
    )
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    assert f"127.0.0.1:{port} unreachable" in res.stderr
    unsent = json.loads(res.stdout.splitlines()[-1])["gateway"]["unsent_frames"]
    assert unsent > 0
    assert f"did not acknowledge {unsent} frames" in res.stderr
    assert str(spool) in res.stderr
    assert not (tmp_path / "spool.db").exists()  # --spool is honoured
    assert Spool(spool).counts()[0] == unsent

    res = _run(
        "collect",
        "--config",
        str(path),
        "--duration",
        "0.5",
        "--spool",
        str(spool),
        "--discard-leftover",
        env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/x"},
    )
    assert f"discarded {unsent} frames an earlier run left unsent" in res.stderr
    assert Spool(spool).counts()[0] == 0
