"""The console's shell: open the records, connect the MQTT bridge, serve with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session

from poise.console.app import Console, ConsoleConfig
from poise.console.bridge import Bridge, Fanout
from poise.console.db import Patient, open_db
from poise.console.live import LiveBoard
from poise.core.ids import check_id

log = logging.getLogger("poise.console")
REPORT_CSS_HREF = "/report.css"


def report_renderer(influx_url: str, database: str, auth: Any) -> Any:
    """The patient page's progress report, made by ``poise.report`` from the derived data
    in InfluxDB (None when the report's dependencies are not installed)."""
    try:
        from poise.report import report_html
        from poise.report.data import PatientProfile, profile
    except ImportError:
        log.warning("poise.report is not installed: the patient page has no report link")
        return None
    from poise.core.influx import InfluxV1

    def render(db: Session, pid: str) -> str:
        patient = db.get(Patient, pid)
        try:
            prof = profile(patient.age_band, patient.sex) if patient else None
        except ValueError:  # an open-ended band such as 95+: no chair-stand norm
            prof = PatientProfile(None, patient.sex if patient else None)
        with InfluxV1(influx_url, database, auth) as influx:
            return str(report_html(influx, pid, profile=prof, css_href=REPORT_CSS_HREF))

    return render


def build(
    data_dir: Path,
    db_url: str | None,
    site: str,
    mqtt_host: str | None,
    mqtt_port: int | None,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    config: ConsoleConfig | None = None,
    mqtt_tls_ca: str | None = None,
    report: Any = None,
) -> Console:
    check_id("site", site)
    db = open_db(data_dir, db_url)
    cache: dict[str, str] = {}

    def sensor_patient(sensor: str) -> str | None:
        if sensor not in cache:
            with db() as s:
                for p in s.scalars(select(Patient)):
                    for place in p.placement:
                        cache[place["sensor"]] = p.id
        return cache.get(sensor)

    board = LiveBoard(sensor_patient)
    fanout = Fanout()
    bridge = None
    if mqtt_host is not None and mqtt_port is not None:
        bridge = Bridge(
            mqtt_host,
            mqtt_port,
            site,
            db,
            board,
            fanout,
            username=mqtt_user,
            password=mqtt_password,
        )
    cfg = config or ConsoleConfig(site=site)
    cfg.site = site
    if report is not None:
        from poise.report.render import stylesheet

        cfg.report = report
        cfg.report_css = stylesheet
    return Console(db, cfg, board, fanout, bridge)


def serve(
    data_dir: Path,
    db_url: str | None,
    host: str,
    port: int,
    site: str,
    mqtt_host: str | None,
    mqtt_port: int | None,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    mqtt_tls_ca: str | None = None,
    report: Any = None,
) -> int:
    console = build(
        data_dir,
        db_url,
        site,
        mqtt_host,
        mqtt_port,
        mqtt_user,
        mqtt_password,
        mqtt_tls_ca=mqtt_tls_ca,
        report=report,
    )
    if console.bridge is not None:
        console.bridge.start()
    else:
        log.warning("no --mqtt: sessions are recorded, their events wait in the outbox")
    log.info("poise console on http://%s:%d (site %s)", host, port, site)
    try:
        # open event streams never end by themselves: give them 2 s on shutdown
        uvicorn.run(
            console.app(),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    finally:
        if console.bridge is not None:
            console.bridge.stop()
    return 0
