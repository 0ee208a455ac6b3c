"""``poise demo``: the whole data path on this machine, with a live terminal view.

Starts a local Mosquitto and InfluxDB, the ingest service and a gateway publishing simulated
patients (three sensors each, 100 Hz), shows per patient what arrives, then checks that every
sample published is stored in InfluxDB and says where the data is.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from collector.publisher import Publisher
from collector.spool import Spool
from poise.core.influx import InfluxV1
from poise.ingest import Ingest
from poise.simulate import SimConfig, Simulation, sensor_status
from poise.stack import LocalStack


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 60.0
    patients: int = 3
    keep: bool = False
    directory: Path | None = None
    seed: int = 0
    speed: float = 1.0


def _view(
    sim: Simulation,
    rates: dict[str, float],
    t_s: float,
    duration_s: float,
    pub: Publisher,
    ingest: Ingest,
) -> Table:
    table = Table(title=f"poise demo — {t_s:5.1f} / {duration_s:.0f} s simulated", expand=False)
    for col in (
        "patient",
        "sensors online",
        "samples/s",
        "frames",
        "samples",
        "lower back |a| m/s²",
        "shank gyr rad/s",
    ):
        table.add_column(col, justify="right")
    by_patient: dict[str, list[Any]] = defaultdict(list)
    for s in sim.sensors.values():
        by_patient[s.patient].append(s)
    for pid, sensors in by_patient.items():
        online = sum(1 for s in sensors if s.samples > 0)
        back = next(s for s in sensors if s.placement == "lower_back").last_values
        shank = next(s for s in sensors if s.placement == "shank").last_values
        table.add_row(
            pid,
            f"{online}/{len(sensors)}",
            f"{sum(rates.get(s.sensor_id, 0.0) for s in sensors):.0f}",
            str(sum(s.frames for s in sensors)),
            str(sum(s.samples for s in sensors)),
            f"{math.hypot(*back[:3]):.2f}" if back else "-",
            f"{math.hypot(*shank[3:6]):.2f}" if shank else "-",
        )
    ist = ingest.stats
    table.caption = (
        f"broker: {'connected' if pub.connected() else 'DISCONNECTED'} · spooled, not yet acknowledged: "
        f"{pub.pending()} · stored by ingest: {ist.samples_written} samples · rejected frames: "
        f"{sum(ist.rejected.values())}"
    )
    return table


def run_demo(opts: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    root = opts.directory or Path(tempfile.mkdtemp(prefix="poise-demo-"))
    stack = LocalStack(root, sites=["demo"])
    console.print(f"[bold]poise demo[/bold]: starting Mosquitto and InfluxDB under {root} ...")
    info = stack.start(detached=opts.keep)
    # Each part logs in with its own role, as in production (docs/security.md).
    influx = stack.influx_client("ingest")
    ingest_user, ingest_pw = stack.mqtt_login("ingest")
    ingest = Ingest(
        info.mqtt_host,
        info.mqtt_port,
        influx,
        client_id="poise-demo-ingest",
        username=ingest_user,
        password=ingest_pw,
    )
    counter = stack.influx_client("reader")
    gw_user, gw_pw = stack.mqtt_login("gateway", "demo")
    pub = Publisher(
        info.mqtt_host,
        info.mqtt_port,
        Spool(root / "gateway-spool.db"),
        site="demo",
        gateway_id="demo-gw",
        username=gw_user,
        password=gw_pw,
    )
    summary: dict[str, Any] = {}
    console_ui = _start_console(root, stack, info, opts, console)
    try:
        ingest.start()
        pub.start()
        cfg = SimConfig(
            site="demo",
            patients=opts.patients,
            duration_s=opts.duration_s,
            speed=opts.speed,
            seed=opts.seed,
        )
        console.print(
            f"MQTT {info.mqtt_host}:{info.mqtt_port} · InfluxDB {info.influx_url} · "
            f"{opts.patients} patients × 3 sensors at {cfg.rate_hz:.0f} Hz for {opts.duration_s:.0f} s"
        )
        sim = Simulation(cfg)
        # the analysis worker, with session and trial events for the activity cycle
        from poise.worker.demo import DemoWorker

        dw = DemoWorker(stack, cfg.patient_ids(), "demo", opts.duration_s)
        dw.start()
        for s in sim.sensors.values():
            pub.publish_status(s.sensor_id, sensor_status(s, cfg.rate_hz, sim.profile.id))
        progress = {"t": 0.0}
        result: dict[str, Any] = {}

        def on_progress(t: float) -> None:
            progress["t"] = t
            dw.tick(t)

        def work() -> None:
            result["res"] = sim.run(pub.publish, start_ns=dw.start_ns, on_progress=on_progress)

        worker = threading.Thread(target=work, name="poise-demo-sim", daemon=True)
        worker.start()
        prev = dict.fromkeys(sim.sensors, 0)
        rates: dict[str, float] = {}
        last = time.monotonic()
        last_line = 0.0
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while worker.is_alive():
                worker.join(0.5)
                now = time.monotonic()
                for sid, s in sim.sensors.items():
                    rates[sid] = (s.samples - prev[sid]) / max(now - last, 1e-6)
                    prev[sid] = s.samples
                last = now
                live.update(
                    Group(
                        _view(sim, rates, progress["t"], opts.duration_s, pub, ingest), dw.table()
                    )
                )
                if not console.is_terminal and now - last_line > 10:
                    console.print(
                        f"  {progress['t']:.0f} s simulated, {ingest.stats.samples_written} samples stored"
                    )
                    last_line = now
        res = result["res"]
        drained = pub.wait_drained(60)
        for s in sim.sensors.values():
            pub.publish_status(
                s.sensor_id, sensor_status(s, cfg.rate_hz, sim.profile.id, online=False)
            )
        stored = _wait_stored(counter, ingest, res.samples_published)
        trial_rows = dw.finish(console)
        summary = {
            "samples_published": res.samples_published,
            "samples_stored": stored,
            "frames_published": res.frames_published,
            "frames_rejected": sum(ingest.stats.rejected.values()),
            "all_acknowledged_by_broker": drained,
            "trial_summaries": len(trial_rows),
            "influx": {"url": info.influx_url, "database": info.database},
            "mqtt": {"host": info.mqtt_host, "port": info.mqtt_port},
            "dir": str(root),
        }
        try:  # the end of the demo: a progress report from seeded weeks of summaries
            from poise.report.demo import demo_report

            with stack.influx_client("worker") as db:  # writes summaries, reads them back
                summary["report"] = str(demo_report(db, root, opts.patients))
        except ImportError as exc:
            console.print(f"no report: {exc.name} is missing (pip install 'poise[report]')")
    finally:
        if console_ui is not None:
            console_ui.stop()
        pub.stop(drain_timeout_s=5)
        ingest.stop()
        influx.close()
        counter.close()
        if not opts.keep:
            stack.stop()
    ok = summary.get("samples_stored") == summary.get("samples_published")
    console.print()
    console.print(f"samples published : {summary['samples_published']}")
    console.print(
        f"samples stored    : {summary['samples_stored']} (counted in InfluxDB)"
        + ("  [green]all stored[/green]" if ok else "  [red]MISMATCH[/red]")
    )
    console.print(f"frames rejected   : {summary['frames_rejected']}")
    if "report" in summary:
        console.print(f"progress report   : {summary['report']}")
    if opts.keep:
        console.print(
            f"The stack is still running. Data: InfluxDB {info.influx_url}, database "
            f"'{info.database}', measurement raw.imu (tags site, patient, sensor)."
        )
        console.print(
            f'Try: eval "$(poise stack env --dir {root})"; curl -G {info.influx_url}/query '
            '-u "$POISE_INFLUX_READ_USER:$POISE_INFLUX_READ_PASSWORD" '
            f"--data-urlencode db={info.database} "
            "--data-urlencode 'q=SELECT count(acc_x) FROM raw.imu GROUP BY patient'"
        )
        console.print(f"Stop it with: poise stack down --dir {root}")
    else:
        console.print(
            f"The stack was stopped; its files are in {root} (rerun with --keep to explore the data)."
        )
    summary["ok"] = ok
    return summary


def _start_console(
    root: Path, stack: LocalStack, info: Any, opts: DemoOptions, console: Console
) -> Any:
    """The therapist's console on the simulated clinic, with a demo login (None when the
    console's dependencies are not installed)."""
    try:
        from poise.console.demo import start_demo_console
    except ImportError:
        return None
    from poise.stack import free_port

    sim_ids = SimConfig(patients=opts.patients).patient_ids()
    ui = start_demo_console(
        root,
        info.mqtt_host,
        info.mqtt_port,
        "demo",
        sim_ids,
        free_port(),
        mqtt_login=stack.mqtt_login("console"),
    )
    console.print(
        f"[bold]console[/bold]: {ui.url}  ·  sign in as [bold]{ui.user}[/bold] with password "
        f"[bold]{ui.password}[/bold] (made for this run)"
    )
    if opts.keep:
        console.print(
            f"After the demo, serve it again with the stack's POISE_* variables set "
            f"('poise stack env --dir {root}' or docs/security.md): poise console --data {ui.data} "
            f"--mqtt {info.mqtt_host}:{info.mqtt_port} --site demo"
        )
    return ui


def _wait_stored(influx: InfluxV1, ingest: Ingest, expected: int, timeout_s: float = 60.0) -> int:
    """Count samples in InfluxDB once ingest has caught up (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    stored = 0
    while time.monotonic() < deadline:
        stored = influx.count_samples()
        if stored >= expected and ingest.idle():
            break
        time.sleep(0.2)
    return stored
