"""What the console's browser tests share: the console as a real process (``poise
console``), accounts made with ``poise user add``, Debian's Chromium through Playwright,
and screenshots kept as test artifacts under build/test-artifacts/console/."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from poise.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = (
    Path(os.environ.get("POISE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts")) / "console"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
SITE = "clinic"


def poise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poise.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def add_user(data: Path, name: str, role: str) -> None:
    res = poise(
        "user",
        "add",
        name,
        "--role",
        role,
        "--data",
        str(data),
        env={"POISE_USER_PASSWORD": PASSWORD},
    )
    assert res.returncode == 0, res.stderr


@contextlib.contextmanager
def console_process(
    data: Path, mqtt_host: str, mqtt_port: int, site: str = SITE, influx_url: str | None = None
) -> Iterator[str]:
    """``poise console`` on a free loopback port; yields its base URL."""
    port = free_port()
    log = (data / "console.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poise.cli",
            "console",
            "--data",
            str(data),
            "--bind",
            f"127.0.0.1:{port}",
            "--mqtt",
            f"{mqtt_host}:{mqtt_port}",
            "--site",
            site,
            *(("--influx", influx_url) if influx_url else ()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (data / "console.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.1)
        assert httpx.get(f"{url}/login", timeout=5).status_code == 200
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
