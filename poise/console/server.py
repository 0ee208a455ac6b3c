"""The console's shell: open the records, connect the MQTT bridge, serve with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn
from sqlalchemy import select

from poise.console.app import Console, ConsoleConfig
from poise.console.bridge import Bridge, Fanout
from poise.console.db import Patient, open_db
from poise.console.live import LiveBoard
from poise.core.ids import check_id

log = logging.getLogger("poise.console")


def build(
    data_dir: Path,
    db_url: str | None,
    site: str,
    mqtt_host: str | None,
    mqtt_port: int | None,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    config: ConsoleConfig | None = None,
    mqtt_ca: str | None = None,
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
            tls_ca=mqtt_ca,
        )
    cfg = config or ConsoleConfig(site=site)
    cfg.site = site
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
    mqtt_ca: str | None = None,
) -> int:
    console = build(
        data_dir, db_url, site, mqtt_host, mqtt_port, mqtt_user, mqtt_password, mqtt_ca=mqtt_ca
    )
    if console.bridge is not None:
        console.bridge.start()
    else:
        log.warning("no --mqtt: sessions are recorded, their events wait in the outbox")
    log.info("poise console on http://%s:%d (site %s)", host, port, site)
    try:
        uvicorn.run(console.app(), host=host, port=port, log_level="warning", access_log=False)
    finally:
        if console.bridge is not None:
            console.bridge.stop()
    return 0
