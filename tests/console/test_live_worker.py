"""The live page fed by the real pipeline: ``poise simulate`` (virtual sensors through the
collector's path) -> Mosquitto -> ``poise ingest`` and ``poise worker`` -> the console ->
Chromium. The therapist starts the session and the trials in the browser; the worker
consumes those events and scores the simulated patient; the sway trace and the knee angle
fill, and the repetition counter moves, from the worker's own scores.

The simulated patient cycles through 15 s activities (quiet stance, then seated knee
extension-flexion of 90° every 3 s, ...), so the trials are started at those times.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.console.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SITE,
    add_user,
    console_process,
    shot,
)
from tests.console.test_browser import add_patient, open_editor, sign_in, wait_js

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is missing: make browser"
    ),
]
HAS_WORKER_CLI = importlib.util.find_spec("poise.cli.worker") is not None


@contextmanager
def service(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "poise.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def worker(stack, tmp: Path) -> Iterator[None]:
    """``poise worker`` as its own process; before that command exists, the same
    ``WorkerService`` in this process."""
    info = stack.info()
    if HAS_WORKER_CLI:
        ready = tmp / "worker.ready"
        argv = [
            "worker",
            *("--mqtt", f"{info.mqtt_host}:{info.mqtt_port}"),
            *("--influx", info.influx_url, "--database", info.database),
            *("--state", str(tmp / "worker.state.json"), "--ready-file", str(ready)),
            # ``poise simulate`` mounts the lower-back sensor with x forward (the worker's
            # default, -z, is the mount of the clinic scenario traces)
            "--ap-axis=+x",
        ]
        with service(argv, tmp / "worker.log"):
            wait_until(ready.exists, 60, "the worker to subscribe")
            yield
        return
    from poise.worker.service import WorkerService

    user, password = stack.mqtt_login("worker")
    influx = stack.influx_client("worker")
    svc = WorkerService(
        info.mqtt_host,
        info.mqtt_port,
        influx,
        tmp / "worker.state.json",
        username=user,
        password=password,
    )
    svc.start()
    try:
        assert svc.subscribed.wait(30)
        yield
    finally:
        svc.stop()
        influx.close()


def test_live_page_with_the_real_worker(stack, tmp_path: Path) -> None:
    info = stack.info()
    data = tmp_path / "console"
    data.mkdir()
    add_user(data, "anna", "therapist")
    gw_user, gw_password = stack.mqtt_login("gateway", SITE)
    mqtt = f"{info.mqtt_host}:{info.mqtt_port}"
    ingest = ["ingest", "--mqtt", mqtt, "--influx", info.influx_url, "--database", info.database]
    with (
        service(ingest, tmp_path / "ingest.log"),
        worker(stack, tmp_path),
        console_process(data, info.mqtt_host, info.mqtt_port, influx_url=info.influx_url) as url,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, url, "anna")
        page.wait_for_url(f"{url}/")
        add_patient(page, url, "p001")  # the simulator's sensor ids and placements
        open_editor(page)
        page.get_by_role("button", name="Save the prescription").click()
        page.goto(f"{url}/patients/p001")
        page.get_by_role("button", name="Start a session").click()
        page.wait_for_url(re.compile(r".*/sessions/s-[0-9a-f]+$"))
        sid = page.url.rsplit("/", 1)[1]
        page.get_by_label(re.compile("^Exercise")).select_option("quiet_stance")
        page.get_by_role("button", name="Start the trial").click()
        page.wait_for_selector("#stop-trial")

        sim = [
            "simulate",
            *("--mqtt", mqtt, "--site", SITE, "--patients", "1"),
            *("--duration", "32", "--speed", "1", "--seed", "3"),
        ]
        gw_env = {"POISE_GATEWAY_MQTT_USER": gw_user, "POISE_GATEWAY_MQTT_PASSWORD": gw_password}
        gw_env["POISE_GATEWAY_MQTT_PASSWORD_FILE"] = ""
        with service(sim, tmp_path / "simulate.log", env=gw_env) as simulation:
            # the gateway's status marks the start of the simulated clock
            wait_js(
                page,
                "document.getElementById('sensors').textContent.split('online').length > 3",
                30,
            )
            t0 = time.monotonic()
            # quiet stance: the worker's sway scores (10 s windows), intensity, device status
            wait_js(page, "document.getElementById('zone').textContent !== '–'", 15)
            wait_js(page, "document.getElementById('sway-rms').textContent.includes('m/s')", 15)
            time.sleep(max(0.0, 13.5 - (time.monotonic() - t0)))
            shot(page, "worker-live-sway")
            page.get_by_role("button", name="Stop the trial").click()
            page.wait_for_selector("#start-trial")
            # seated knee extension-flexion from 15 s of the simulation on
            time.sleep(max(0.0, 15.5 - (time.monotonic() - t0)))
            page.get_by_label(re.compile("^Exercise")).select_option("rom/knee_flexion")
            page.get_by_role("button", name="Start the trial").click()
            page.wait_for_selector("#stop-trial")
            wait_js(page, "window.poiseLive.points() > 40", 15)
            wait_js(page, "Number(document.getElementById('reps').textContent) >= 3", 20)
            # the simulated knee goes 0-90° every 3 s: the trace swings with it
            angles = page.evaluate("window.poiseLive.joint()[1]")
            assert max(angles) - min(angles) > 30
            shot(page, "worker-live-knee")
            page.get_by_role("button", name="Stop the trial").click()
            page.wait_for_selector("#start-trial")
            simulation.wait(60)
        page.get_by_label(re.compile("^Pain now")).fill("2")
        page.get_by_label(re.compile("^Fatigue")).fill("11")
        page.get_by_role("button", name="End the session").click()
        page.wait_for_url("**/patients/p001#history")
        hist = page.locator(f"li.session[data-session='{sid}']").inner_text()
        assert "pain 2/10" in hist
        shot(page, "worker-patient-history")
        browser.close()
