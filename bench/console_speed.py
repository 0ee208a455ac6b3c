"""The console's speed, measured with the browser (Debian's chromium through Playwright).

Page loads: a clinic of 30 patients, every one in session with a trial running, each with
20 past sessions of 3 trials. For the room, the patients list, a patient page and a live
session page, the browser's own Navigation Timing gives the time from the request to the
end of the load event; the baseline in the same run is the page for an unknown address
(the same layout and style sheet, no records read).

Live lag: 30 patients stream live points in the worker's MQTT message format (joint angle at
20 Hz, sway trace at 10 Hz: what ``poise worker`` publishes for a trial) while the browser
watches one patient's live page. For each point of that patient, the lag is the time the
page received it minus the time it was published to the broker, both on this machine's
clock. The publisher here stands in for the worker so the score times are known exactly;
the console, the broker and the browser are the real ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from poise.console import accounts, records
from poise.console.demo import DemoConsole
from poise.core import derived, topics
from poise.stack import LocalStack, free_port

SITE = "bench"
PASSWORD = "bench password 1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NAV_JS = (
    "(() => { const n = performance.getEntriesByType('navigation')[0];"
    " return [n.responseEnd - n.startTime, n.loadEventEnd - n.startTime]; })()"
)


def seed_clinic(db: Any, patients: int, past_sessions: int) -> list[str]:
    """Patients p000.., each with past sessions and one open session with a running trial;
    returns the open session ids."""
    open_ids = []
    with db.begin() as s:
        staff = accounts.add_user(s, "bench", "therapist", PASSWORD)
    for i in range(patients):
        pid = f"p{i:03d}"
        with db.begin() as s:
            records.add_patient(
                s,
                SITE,
                {
                    "id": pid,
                    "age_band": "70-74",
                    "sex": "female",
                    **{
                        f"sensor_{k}": f"{pid}-{seg}"
                        for k, seg in enumerate(("lowerback", "thigh", "shank"))
                    },
                    **{
                        f"segment_{k}": seg
                        for k, seg in enumerate(("lower_back", "thigh", "shank"))
                    },
                    **{f"side_{k}": side for k, side in enumerate(("none", "right", "right"))},
                },
                staff.id,
            )
            records.save_prescription(s, pid, records.EXAMPLE_RX.replace("PID", pid), staff.id)
            for _ in range(past_sessions):
                sess = records.start_session(s, SITE, pid, staff.id)
                for ex in ("quiet_stance", "rom/knee_flexion", "quiet_stance"):
                    t = records.start_trial(s, SITE, sess.id, {"exercise": ex}, staff.id)
                    records.stop_trial(s, SITE, sess.id, t.id, False, staff.id)
                records.stop_session(
                    s, SITE, sess.id, {"pain_0_10": "2", "fatigue_borg": "11"}, staff.id
                )
            sess = records.start_session(s, SITE, pid, staff.id)
            records.start_trial(s, SITE, sess.id, {"exercise": "rom/knee_flexion"}, staff.id)
            open_ids.append(sess.id)
    return open_ids


def start_console(root: Path, stack: LocalStack) -> tuple[DemoConsole, Any]:
    """The console with its MQTT bridge, served by uvicorn from a thread (as in the demo)."""
    import uvicorn

    from poise.console.server import build

    info = stack.info()
    console = build(
        root / "console", None, SITE, info.mqtt_host, info.mqtt_port, *stack.mqtt_login("console")
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            console.app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    assert console.bridge is not None
    console.bridge.start()
    ui = DemoConsole(
        f"http://127.0.0.1:{port}", "bench", PASSWORD, root, server, thread, console.bridge.stop
    )
    return ui, console


def sign_in(page: Any, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#name", "bench")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def page_loads(page: Any, url: str, paths: dict[str, str], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, path in paths.items():  # interleaved: every page sees the same load
            page.goto(f"{url}{path}", wait_until="load")
            times[name].append(tuple(page.evaluate(NAV_JS)))
    base = statistics.median(t[1] for t in times["baseline_no_records"])
    for name, ts in times.items():
        load_ms = statistics.median(t[1] for t in ts)
        out[name] = {
            "response_ms": round(statistics.median(t[0] for t in ts), 1),
            "load_ms": round(load_ms, 1),
            "ratio_to_baseline": round(load_ms / base, 2),
        }
    return out


class Streamer:
    """Publishes live points for every patient's running trial, recording the publish time
    of each point of the watched patient."""

    def __init__(self, stack: LocalStack, sessions: dict[str, str]) -> None:
        info = stack.info()
        self.client = stack.mqtt_client("worker", client_id="bench-worker")
        self.client.connect(info.mqtt_host, info.mqtt_port)
        self.client.loop_start()
        self.sessions = sessions
        self.sent: dict[float, float] = {}  # point time (s) -> publish wall time (ms)
        self.watched = next(iter(sessions))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self._stop.is_set():
            t_ns = time.time_ns()
            for pid, sid in self.sessions.items():
                tags = {
                    "session": sid,
                    "trial": f"t-live-{pid}",
                    "exercise": "rom/knee_flexion",
                    "condition": "none",
                    "side": "right",
                    "joint": "knee",
                }
                pts: list[dict[str, Any]] = [
                    {
                        "measurement": "joint_live",
                        "t_ns": t_ns,
                        "tags": tags,
                        "fields": {
                            "angle_deg": 40.0 + 30.0 * ((i % 40) / 40),
                            "rep_count": i // 40,
                        },
                    }
                ]
                if i % 2 == 0:
                    pts.append(
                        {
                            "measurement": "sway_trace",
                            "t_ns": t_ns,
                            "tags": tags,
                            "fields": {"ap_m_s2": 0.01 * (i % 7), "ml_m_s2": 0.0},
                        }
                    )
                self.client.publish(topics.metrics(SITE, pid), derived.message(pts), qos=1)
                if pid == self.watched:
                    self.sent[t_ns / 1e9] = time.time() * 1000.0
            i += 1
            time.sleep(max(0.0, 0.05 - (time.time_ns() - t_ns) / 1e9))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.client.disconnect()
        self.client.loop_stop()


def live_lag(
    page: Any, url: str, stack: LocalStack, sessions: dict[str, str], seconds: float
) -> dict[str, Any]:
    streamer = Streamer(stack, sessions)
    sid = sessions[streamer.watched]
    page.goto(f"{url}/sessions/{sid}")
    deadline = time.monotonic() + 10
    while page.evaluate("document.getElementById('conn').textContent") != "live":
        assert time.monotonic() < deadline, "the live page did not connect"
        time.sleep(0.1)
    streamer.thread.start()
    time.sleep(seconds)
    streamer.stop()
    time.sleep(0.5)
    received = page.evaluate("window.poiseLive.received")
    lags = sorted(ms - streamer.sent[t] for t, ms in received if t in streamer.sent)
    # each point arrives twice in ``received`` when it has both a joint and a sway value
    return {
        "patients_streaming": len(sessions),
        "points_published_per_s": round(len(sessions) * 30, 0),
        "points_watched": len(streamer.sent),
        "points_seen_by_page": len({t for t, _ in received if t in streamer.sent}),
        "lag_median_ms": round(statistics.median(lags), 1),
        "lag_p95_ms": round(lags[int(0.95 * (len(lags) - 1))], 1),
        "lag_max_ms": round(lags[-1], 1),
    }


def live_lag_worker(
    page: Any, url: str, stack: LocalStack, console: Any, root: Path, seconds: float
) -> dict[str, Any]:
    """The same lag with the real ``poise worker`` scoring ``poise simulate``'s patient p001
    in a knee-flexion trial: the worker's publish time is when a reader on the broker
    receives its point (an upper bound on the worker's own time)."""
    import os
    import subprocess
    import sys

    info = stack.info()
    mqtt = f"{info.mqtt_host}:{info.mqtt_port}"
    env = {**os.environ, **stack.env}
    gw_user, gw_pw = stack.mqtt_login("gateway", SITE)
    ready = root / "worker.ready"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poise.cli",
            "worker",
            "--mqtt",
            mqtt,
            "--influx",
            info.influx_url,
            "--database",
            info.database,
            "--state",
            str(root / "worker.json"),
            "--ready-file",
            str(ready),
            "--ap-axis=+x",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    arrivals: dict[float, float] = {}
    reader = stack.mqtt_client("reader", client_id="bench-reader")

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        now = time.time() * 1000.0
        for p in derived.parse_message(m.payload):
            if p["measurement"] in ("joint_live", "sway_live", "sway_trace"):
                arrivals[int(p["t_ns"]) / 1e9] = now

    reader.on_message = on_message
    reader.connect(info.mqtt_host, info.mqtt_port)
    reader.loop_start()
    reader.subscribe(topics.metrics(SITE, "p001"), qos=1)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not start")
            time.sleep(0.1)
        with console.db.begin() as s:  # stop the seeded open session, start a fresh one
            open_sess = records.open_session_of(s, "p001")
            tr = records.trials(s, open_sess.id)[-1]
            records.stop_trial(s, SITE, open_sess.id, tr.id, True, 1)
            records.stop_session(s, SITE, open_sess.id, {}, 1)
            sess = records.start_session(s, SITE, "p001", 1)
            records.start_trial(s, SITE, sess.id, {"exercise": "rom/knee_flexion"}, 1)
        console.bridge.wake()
        page.goto(f"{url}/sessions/{sess.id}")
        sim_env = {
            **env,
            "POISE_GATEWAY_MQTT_USER": gw_user,
            "POISE_GATEWAY_MQTT_PASSWORD": gw_pw,
            "POISE_GATEWAY_MQTT_PASSWORD_FILE": "",
        }
        # the simulated patient flexes the knee from 15 s to 30 s of its cycle; the trial is
        # open for all of it, so every joint point of the worker counts
        subprocess.run(
            [
                sys.executable,
                "-m",
                "poise.cli",
                "simulate",
                "--mqtt",
                mqtt,
                "--site",
                SITE,
                "--patients",
                "1",
                "--duration",
                str(seconds),
                "--speed",
                "1",
            ],
            env=sim_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=seconds + 60,
        )
        time.sleep(1.0)
        received = page.evaluate("window.poiseLive.received")
    finally:
        worker.terminate()
        worker.wait(20)
        reader.disconnect()
        reader.loop_stop()
    # the worker publishes its points in batches (one message per flush): one lag per message
    per_message: dict[float, float] = {}
    for t, ms in received:
        if t in arrivals:
            sent = arrivals[t]
            per_message[sent] = max(per_message.get(sent, 0.0), ms - sent)
    lags = sorted(per_message.values())
    return {
        "points_from_worker": len(arrivals),
        "messages_from_worker": len(per_message),
        "points_seen_by_page": len({t for t, _ in received if t in arrivals}),
        "lag_median_ms": round(statistics.median(lags), 1) if lags else None,
        "lag_p95_ms": round(lags[int(0.95 * (len(lags) - 1))], 1) if lags else None,
        "lag_max_ms": round(lags[-1], 1) if lags else None,
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--past-sessions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="poise-bench-console-"))
    stack = LocalStack(root / "stack", sites=[SITE])
    stack.start()
    ui = None
    try:
        ui, console = start_console(root, stack)
        open_ids = seed_clinic(console.db, args.patients, args.past_sessions)
        sessions = {f"p{i:03d}": sid for i, sid in enumerate(open_ids)}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            loads = {}
            page.goto(f"{ui.url}/login")
            sign_in(page, ui.url)
            loads = page_loads(
                page,
                ui.url,
                {
                    "baseline_no_records": "/no-such-page",
                    "room": "/",
                    "patients": "/patients",
                    "patient": "/patients/p000",
                    "live_session": f"/sessions/{open_ids[0]}",
                },
                args.repeats,
            )
            lag = live_lag(page, ui.url, stack, sessions, args.seconds)
            lag_worker = live_lag_worker(page, ui.url, stack, console, root, 32.0)
            browser.close()
        result = {
            "patients": args.patients,
            "past_sessions_each": args.past_sessions,
            "repeats": args.repeats,
            "page_loads": loads,
            "live": lag,
            "live_real_worker": lag_worker,
        }
    finally:
        if ui is not None:
            ui.stop()
        stack.stop()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
