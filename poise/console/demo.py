"""The console inside ``poise demo``: served from a thread on a free loopback port, with
the simulated patients (the simulator's sensor ids and placements) and a demo therapist
account whose one-off password is printed with the address."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from poise.console import accounts, records
from poise.console.db import Patient
from poise.console.server import build

DEMO_USER = "demo"


@dataclass
class DemoConsole:
    url: str
    user: str
    password: str
    data: Path
    _server: uvicorn.Server
    _thread: threading.Thread
    _stop_bridge: object

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        stop = self._stop_bridge
        if callable(stop):
            stop()


def start_demo_console(
    root: Path,
    mqtt_host: str,
    mqtt_port: int,
    site: str,
    patients: list[str],
    port: int,
    mqtt_login: tuple[str, str] | None = None,
) -> DemoConsole:
    data = root / "console"
    user, pw = mqtt_login or (None, None)
    console = build(data, None, site, mqtt_host, mqtt_port, user, pw)
    password = secrets.token_urlsafe(12)
    with console.db.begin() as db:
        try:
            staff = accounts.add_user(db, DEMO_USER, "therapist", password)
        except accounts.AccountError:  # a demo folder used again
            staff = accounts.set_password(db, DEMO_USER, password)
        owners = records.sensor_owners(db)
        for pid in patients:
            if db.get(Patient, pid) is not None:
                continue
            form = {"id": pid, "age_band": "70-74", "sex": "female"}
            for i, (segment, side) in enumerate(
                (("lower_back", "none"), ("thigh", "right"), ("shank", "right"))
            ):
                sensor = f"{pid}-{segment.replace('_', '')}"
                if sensor in owners:
                    continue
                form.update({f"sensor_{i}": sensor, f"segment_{i}": segment, f"side_{i}": side})
            records.add_patient(db, site, form, staff.id)
            records.save_prescription(db, pid, records.EXAMPLE_RX.replace("PID", pid), staff.id)
    if console.bridge is not None:
        console.bridge.start()
    server = uvicorn.Server(
        uvicorn.Config(
            console.app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="poise-demo-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return DemoConsole(
        url=f"http://127.0.0.1:{port}",
        user=DEMO_USER,
        password=password,
        data=data,
        _server=server,
        _thread=thread,
        _stop_bridge=console.bridge.stop if console.bridge is not None else None,
    )
