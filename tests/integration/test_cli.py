"""The command line as a user runs it: separate processes, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
POISE = [sys.executable, "-m", "poise.cli"]


def run(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POISE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_command():
    out = run("--help").stdout
    for cmd in ("demo", "stack", "ingest", "simulate", "profiles", "decode"):
        assert f"\n    {cmd} " in out


def test_stack_up_simulate_ingest_down(tmp_path: Path):
    up = run("stack", "up", "--dir", str(tmp_path))
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert set(info) >= {"mqtt", "influx"}
    url, db = info["influx"]["url"], info["influx"]["database"]
    mqtt = f"{info['mqtt']['host']}:{info['mqtt']['port']}"
    env = info["env"]  # what a user exports: each command picks its own role's login
    ingest = subprocess.Popen(
        [*POISE, "ingest", "--mqtt", mqtt, "--influx", url, "--database", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        # The broker queues frames only for sessions it knows: the ingest subscribes first.
        for line in ingest.stderr:
            if "subscribed to" in line:
                break
        sim = run(
            "simulate",
            "--mqtt",
            mqtt,
            "--patients",
            "1",
            "--duration",
            "5",
            "--speed",
            "0",
            env=env,
        )
        assert sim.returncode == 0, sim.stderr
        published = json.loads(sim.stdout)["samples_published"]
        assert published == 3 * 500
        q = "SELECT count(acc_x) FROM raw.imu"
        for _ in range(100):
            r = httpx.post(
                f"{url}/query",
                params={"db": db},
                data={"q": q},
                auth=(env["POISE_INFLUX_READ_USER"], env["POISE_INFLUX_READ_PASSWORD"]),
            ).json()
            series = r["results"][0].get("series")
            if series and series[0]["values"][0][1] == published:
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert series[0]["values"][0][1] == published
    finally:
        ingest.terminate()
        out, _err = ingest.communicate(timeout=30)
        down = run("stack", "down", "--dir", str(tmp_path))
    assert json.loads(out)["samples_written"] == published
    assert down.returncode == 0, down.stderr
    assert sorted(json.loads(down.stdout)["stopped"]) == ["influxdb", "mosquitto"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/ping", timeout=1)


def test_stack_down_without_a_stack_says_so(tmp_path: Path):
    res = run("stack", "down", "--dir", str(tmp_path))
    assert res.returncode == 1
    assert "no running stack" in res.stderr


def test_bad_arguments_get_a_clear_message():
    res = run("ingest", "--mqtt", "nohostport", "--influx", "http://x")
    assert res.returncode == 2
    assert "expected HOST:PORT" in res.stderr


def test_demo_stores_every_sample(tmp_path: Path):
    res = run(
        "demo", "--duration", "5", "--speed", "0", "--dir", str(tmp_path / "demo"), timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "samples published : 4500" in res.stdout
    assert "samples stored    : 4500" in res.stdout
    assert "frames rejected   : 0" in res.stdout


def test_decode_cli_prints_samples_and_reports_bad_input():
    vec = "5561fcffefff110800000000000098ff0d00f831"
    res = run("decode", "--profile", "witmotion-wt901ble", vec[:16], vec[16:])
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["kind"] == "sample"
    assert obj["acc"] == pytest.approx(
        [-4 / 2048 * 9.80665, -17 / 2048 * 9.80665, 2065 / 2048 * 9.80665]
    )
    assert obj["gyr"] == [0.0, 0.0, 0.0]
    bad = run("decode", "--profile", "witmotion-wt901ble", "00" + vec)
    assert bad.returncode == 2
    assert "byte offset 0" in bad.stderr
    unknown = run("decode", "--profile", "nope", vec)
    assert unknown.returncode == 2
    assert "known: " in unknown.stderr


def test_collect_virtual_runs_the_example_gateway_config(tmp_path: Path):
    """The shipped, commented example config, every sensor simulated as a BLE peripheral."""
    up = run("stack", "up", "--dir", str(tmp_path / "stack"))
    assert up.returncode == 0, up.stderr
    port = json.loads(up.stdout)["mqtt"]["port"]
    example = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "gateway.example.toml"
    text = example.read_text()
    assert "port = 1883" in text
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace("port = 1883", f"port = {port}", 1))
    try:
        # a gateway's broker user is its site id (the ACL lets it publish to its own site
        # only): eval "$(poise stack env --dir DIR --site clinic-a)"
        exported = run("stack", "env", "--dir", str(tmp_path / "stack"), "--site", "clinic-a")
        assert exported.returncode == 0, exported.stderr
        env = dict(
            line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines()
        )
        assert env["POISE_GATEWAY_MQTT_USER"] == "clinic-a"
        res = run(
            "collect",
            "--config",
            str(config),
            "--virtual",
            "--duration",
            "5",
            "--spool",
            str(tmp_path / "spool.db"),
            timeout=120,
            env=env,
        )
    finally:
        run("stack", "down", "--dir", str(tmp_path / "stack"))
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["gateway"]["unsent_frames"] == 0
    status = out["sensors"]
    assert set(status) == {"s-0001", "s-0002", "s-0003"}
    for sensor in status.values():
        assert sensor["samples"] > 100
        assert sensor["connects"] == 1
        assert sensor["lost_samples"] == 0
    assert status["s-0002"]["battery_pct"] == 87


def test_scan_without_a_bluetooth_adapter_says_so():
    res = run("scan", "--timeout", "1")
    if res.returncode == 0:
        pytest.skip("this machine has a Bluetooth adapter")
    assert "cannot scan" in res.stderr
    assert "Traceback" not in res.stderr
