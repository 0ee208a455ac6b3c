"""The clinical records: patients, prescriptions, sessions, trials, notes, staff, the audit
trail and the outbox of session events. SQLAlchemy 2 models; the schema is created and
upgraded by the Alembic migrations in ``poise/console/migrations`` (never ``create_all``),
so a site's database follows the code from version to version.

Times are integers, ns since the Unix epoch (UTC), as in the session events. Patients are
pseudonymous ids (``poise.core.ids``); no name or birth date has a column here.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

DB_FILE = "console.db"
ROLES = ("therapist", "admin")
# age bands: those of the CDC STEADI 30-second chair stand norms (60-94), with one band
# below and one above so every adult fits
AGE_BANDS = (
    "18-59",
    "60-64",
    "65-69",
    "70-74",
    "75-79",
    "80-84",
    "85-89",
    "90-94",
    "95+",
)
SEXES = ("female", "male")


def now_ns() -> int:
    return time.time_ns()


class Base(DeclarativeBase):
    pass


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    created_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class AuthSession(Base):
    """A login: the cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "auth_session"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)
    expires_ns: Mapped[int] = mapped_column(BigInteger)


class Patient(Base):
    __tablename__ = "patient"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    age_band: Mapped[str] = mapped_column(String(8))
    sex: Mapped[str] = mapped_column(String(8))
    # JSON list of {"sensor", "segment", "side"} (poise.core.events.Placement)
    placement_json: Mapped[str] = mapped_column(Text, default="[]")
    created_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)

    @property
    def placement(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = json.loads(self.placement_json)
        return out


class PrescriptionRow(Base):
    """One version of a patient's prescription, as TOML text (``poise.core.prescription``);
    the newest row of a patient is the one in force."""

    __tablename__ = "prescription"
    row_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    toml: Mapped[str] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)
    created_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))


class SessionRow(Base):
    __tablename__ = "session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    prescription_row: Mapped[int | None] = mapped_column(
        ForeignKey("prescription.row_id"), nullable=True
    )
    start_ns: Mapped[int] = mapped_column(BigInteger)
    stop_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    pain_0_10: Mapped[float | None] = mapped_column(Float, nullable=True)
    fatigue_borg: Mapped[float | None] = mapped_column(Float, nullable=True)


class TrialRow(Base):
    __tablename__ = "trial"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    exercise: Mapped[str] = mapped_column(String(64))
    condition_json: Mapped[str] = mapped_column(Text, default="{}")
    side: Mapped[str] = mapped_column(String(8), default="none")
    start_ns: Mapped[int] = mapped_column(BigInteger)
    stop_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    aborted: Mapped[bool] = mapped_column(Boolean, default=False)
    # the worker's trial_summary fields (JSON), once it published them
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def condition(self) -> dict[str, str]:
        out: dict[str, str] = json.loads(self.condition_json)
        return out

    @property
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.summary_json) if self.summary_json else {}
        return out


class Note(Base):
    """A therapist's free-text note: stays here, never in an event, topic or log."""

    __tablename__ = "note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("session.id"), nullable=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    t_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)
    text: Mapped[str] = mapped_column(Text)


class Audit(Base):
    """Who did what: staff by id, patients and sessions by their pseudonymous ids."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    t_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns, index=True)
    staff_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")


class Outbox(Base):
    """Session events waiting for the broker's acknowledgement (at-least-once: written in
    the same transaction as the record they describe, deleted once the broker took them)."""

    __tablename__ = "outbox"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_ns: Mapped[int] = mapped_column(BigInteger, default=now_ns)


def database_url(data_dir: Path, url: str | None = None) -> str:
    """PostgreSQL (or any SQLAlchemy URL) when given, else SQLite in the data folder."""
    if url:
        return url
    return f"sqlite:///{(data_dir / DB_FILE).resolve()}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the packaged Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per step is noise here
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_db(data_dir: Path, url: str | None = None) -> sessionmaker[Session]:
    """Engine for the site's records, migrated to the newest schema, as a session factory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(data_dir, url))
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
