"""The clinical records on PostgreSQL (what a larger site gives as POISE_CONSOLE_DB_URL):
the same Alembic migrations and the same records code on a real server, a throwaway cluster
that this test starts on a free loopback port (Debian's postgresql; trust auth on
127.0.0.1 only, removed afterwards)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from poise.console import accounts, records
from poise.console.db import Outbox, current_revision, make_engine, open_db
from poise.core import events
from poise.stack import free_port

pytestmark = pytest.mark.integration
INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not INITDB:
        pytest.skip("Debian's postgresql is missing (make services installs it)")
    pytest.importorskip("psycopg")
    bindir = Path(INITDB[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="poise-pg-"))
    # initdb refuses to run as root: the cluster belongs to the postgres user
    run_as: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        root.chmod(0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def pg_ctl(*args: str) -> None:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "poise",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pg_ctl(
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        f"-p {port} -k {root} -h 127.0.0.1 -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield f"postgresql+psycopg://poise@127.0.0.1:{port}/postgres"
    finally:
        pg_ctl("-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_records_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    db = open_db(tmp_path, postgres_url)
    engine = make_engine(postgres_url)
    assert current_revision(engine) == "0001"
    assert {"staff", "patient", "session", "trial", "outbox"} <= set(
        inspect(engine).get_table_names()
    )
    with db.begin() as s:
        staff = accounts.add_user(s, "anna", "therapist", "correct horse battery")
        form = {
            "id": "p001",
            "age_band": "70-74",
            "sex": "female",
            "sensor_0": "p001-shank",
            "segment_0": "shank",
            "side_0": "right",
        }
        records.add_patient(s, "clinic", form, staff.id)
        records.save_prescription(s, "p001", records.EXAMPLE_RX.replace("PID", "p001"), staff.id)
        sess = records.start_session(s, "clinic", "p001", staff.id)
        trial = records.start_trial(
            s, "clinic", sess.id, {"exercise": "rom/knee_flexion"}, staff.id
        )
        records.stop_trial(s, "clinic", sess.id, trial.id, False, staff.id)
        records.stop_session(
            s, "clinic", sess.id, {"pain_0_10": "4", "fatigue_borg": "13"}, staff.id
        )
    with db() as s:
        payloads = [r.payload for r in s.scalars(select(Outbox).order_by(Outbox.seq))]
        assert [events.parse_event(bytes(p), "clinic", "p001").type for p in payloads] == [
            "session_start",
            "trial_start",
            "trial_stop",
            "session_stop",
        ]
        doc = records.export(s, "p001")
        assert doc["sessions"][0]["pain_0_10"] == 4.0
        assert doc["sessions"][0]["trials"][0]["side"] == "right"
        assert (
            accounts.authenticate(s, "anna", "correct horse battery", accounts.Policy()).reason
            == "ok"
        )
    with db.begin() as s:
        assert records.forget_patient(s, "p001")["sessions"] == 1
    # close every connection before the server goes away
    db.kw["bind"].dispose()
    engine.dispose()
