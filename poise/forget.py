"""Erasure of one patient: every raw and derived point in InfluxDB, then their clinical
records when the console's store is part of this installation.

InfluxDB 1.x drops whole series (``DROP SERIES ... WHERE patient = ...``): every point of
every measurement and retention policy that carries the patient's tag, so nothing is left
behind however many sensors or algorithm versions wrote it. What was there is counted first
and reported; running it again finds nothing and removes nothing (idempotent). InfluxDB 2.x
and 3.x delete through their own API and tools (docs/security.md says how).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from poise.core.ids import ID_PATTERN, ID_RE
from poise.core.influx import InfluxError, InfluxV1, major_version


class ForgetError(RuntimeError):
    """Erasure could not be done (or not completely); the message says what to do."""


def _where(patient: str, site: str | None) -> str:
    for kind, value in (("patient", patient), ("site", site)):
        # The character set only: a patient stored before a stricter id rule must still be
        # erasable, and these characters cannot break out of an InfluxQL string.
        if value is not None and not ID_RE.fullmatch(value):
            raise ForgetError(f"{kind} id {value!r} must match {ID_PATTERN}")
    clause = f"\"patient\" = '{patient}'"
    return clause + (f" AND \"site\" = '{site}'" if site else "")


def stored_points(influx: InfluxV1, patient: str, site: str | None = None) -> dict[str, int]:
    """Points per ``rp.measurement`` that carry the patient's tag (a point counts once,
    however many fields it has)."""
    where = _where(patient, site)
    rps = [
        row[0]
        for s in influx.query(f'SHOW RETENTION POLICIES ON "{influx.database}"')
        for row in s.get("values", [])
    ]
    out: dict[str, int] = {}
    for rp in rps:
        for s in influx.query(f'SELECT count(*) FROM "{rp}"./.*/ WHERE {where}'):
            counts = [v for v in s["values"][0][1:] if isinstance(v, int)]
            if counts and max(counts) > 0:
                out[f"{rp}.{s['name']}"] = max(counts)
    return out


def series_count(influx: InfluxV1, patient: str, site: str | None = None) -> int:
    return sum(
        len(s.get("values", [])) for s in influx.query(f"SHOW SERIES WHERE {_where(patient, site)}")
    )


def forget_influx(
    influx: InfluxV1, patient: str, site: str | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Remove (or with ``dry_run`` only count) the patient's points; returns the report."""
    major = major_version(influx.server_version())
    if major is not None and major >= 2:
        raise ForgetError(
            f"InfluxDB {major}.x: delete with its own tool, e.g. influx delete --bucket BUCKET "
            f"--start 1970-01-01T00:00:00Z --stop $(date -u +%Y-%m-%dT%H:%M:%SZ) "
            f"--predicate 'patient=\"{patient}\"' (docs/security.md)"
        )
    points = stored_points(influx, patient, site)
    series = series_count(influx, patient, site)
    report: dict[str, Any] = {
        "series": series,
        "points": points,
        "points_total": sum(points.values()),
        "removed": False,
    }
    if dry_run or series == 0:
        return report
    try:
        influx.query(f"DROP SERIES WHERE {_where(patient, site)}")
    except InfluxError as exc:
        raise ForgetError(
            f"InfluxDB refused the erasure: {exc} (it needs the admin login)"
        ) from None
    left = series_count(influx, patient, site)
    if left:
        raise ForgetError(f"{left} series of the patient are still stored; run it again")
    report["removed"] = True
    return report


def forget_clinical(
    patient: str,
    site: str | None,
    data_dir: Path | None,
    db_url: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """The console's clinical records of the patient, through
    ``poise.console.records.forget_patient(db, patient, ...)`` on the console's store (its
    records folder, or ``POISE_CONSOLE_DB_URL``). Without a store given nothing is touched
    and the report says so."""
    if data_dir is None and db_url is None:
        return {"store": None, "note": "no console store given (--console-data): not touched"}
    try:
        from poise.console import records
        from poise.console.db import open_db
    except ImportError:
        raise ForgetError(
            "the console is not installed here (pip install 'poise[console]')"
        ) from None
    fn = getattr(records, "forget_patient", None)
    if fn is None:
        raise ForgetError("this console version cannot erase records (no forget_patient)")
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    if "site" in params:
        kwargs["site"] = site
    if "dry_run" in params:
        kwargs["dry_run"] = dry_run
    elif dry_run:
        return {"store": "console", "note": "not counted: the store has no dry run"}
    maker = open_db(data_dir or Path("."), db_url)
    with maker() as db:
        result = fn(db, patient, **kwargs)
        if not dry_run:
            db.commit()
    return {"store": "console", "result": result}
