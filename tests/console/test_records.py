"""Clinical records, migrations and staff accounts, on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from poise.console import accounts, records
from poise.console.db import Audit, Outbox, Staff, current_revision, make_engine, migrate, open_db
from poise.core import events


@pytest.fixture
def db(tmp_path: Path):
    return open_db(tmp_path)


@pytest.fixture
def staffed(db):
    """Records with one therapist (staff id 1), as every clinical action needs one."""
    with db.begin() as s:
        accounts.add_user(s, "anna", "therapist", "correct horse battery")
    return db


def test_migrations_create_every_table_and_stop_at_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    assert current_revision(engine) == "0001"
    tables = set(inspect(engine).get_table_names())
    assert {
        "staff",
        "patient",
        "prescription",
        "session",
        "trial",
        "note",
        "audit",
        "outbox",
    } <= tables
    migrate(engine)  # a second run changes nothing
    assert current_revision(engine) == "0001"


def test_password_is_hashed_with_argon2id_and_lockout_after_five_failures(db) -> None:
    policy = accounts.Policy(max_failures=5, lockout_s=900)
    with db.begin() as s:
        accounts.add_user(s, "anna", "therapist", "correct horse battery")
    with db.begin() as s:
        staff = s.scalar(select(Staff))
        assert staff.password_hash.startswith("$argon2id$")
        assert "correct horse" not in staff.password_hash
    t0 = 1_800_000_000 * 10**9
    with db.begin() as s:
        for _ in range(4):
            assert accounts.authenticate(s, "anna", "wrong", policy, t0).reason == "wrong"
        assert accounts.authenticate(s, "anna", "wrong", policy, t0).reason == "locked"
        # the right password is refused while locked ...
        assert (
            accounts.authenticate(s, "anna", "correct horse battery", policy, t0 + 1).reason
            == "locked"
        )
        # ... and accepted after the lock expired
        later = t0 + 901 * 10**9
        assert (
            accounts.authenticate(s, "anna", "correct horse battery", policy, later).reason == "ok"
        )
    with db.begin() as s:
        actions = [a.action for a in s.scalars(select(Audit).order_by(Audit.id))]
    assert actions.count("login_failed") == 4
    assert "account_locked" in actions
    assert "login_refused" in actions
    assert actions[-1] == "login"


def test_unlock_and_unknown_user(db) -> None:
    policy = accounts.Policy(max_failures=2)
    with db.begin() as s:
        accounts.add_user(s, "ben", "admin", "another long one")
        accounts.authenticate(s, "ben", "x", policy)
        assert accounts.authenticate(s, "ben", "x", policy).reason == "locked"
        accounts.unlock(s, "ben")
        assert accounts.authenticate(s, "ben", "another long one", policy).reason == "ok"
        assert accounts.authenticate(s, "nobody", "x", policy).reason == "wrong"


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("Anna Smith", "therapist", "long enough pw", "user name 'Anna Smith'"),
        ("anna", "doctor", "long enough pw", "role 'doctor'"),
        ("anna", "therapist", "short", "at least 10 characters"),
    ],
)
def test_refused_accounts(db, name: str, role: str, password: str, message: str) -> None:
    with db.begin() as s, pytest.raises(accounts.AccountError, match=message):
        accounts.add_user(s, name, role, password)


def _patient(s, pid: str = "p001") -> None:
    records.add_patient(
        s,
        "clinic",
        {
            "id": pid,
            "age_band": "70-74",
            "sex": "female",
            "sensor_0": f"{pid}-lowerback",
            "segment_0": "lower_back",
            "side_0": "none",
            "sensor_1": f"{pid}-shank",
            "segment_1": "shank",
            "side_1": "right",
        },
        1,
    )


def test_a_session_queues_events_that_follow_the_contract(db) -> None:
    with db.begin() as s:
        accounts.add_user(s, "anna", "therapist", "correct horse battery")
        _patient(s)
        records.save_prescription(s, "p001", records.EXAMPLE_RX.replace("PID", "p001"), 1)
        sess = records.start_session(s, "clinic", "p001", 1)
        trial = records.start_trial(s, "clinic", sess.id, {"exercise": "rom/knee_flexion"}, 1)
        records.stop_trial(s, "clinic", sess.id, trial.id, False, 1)
        records.stop_session(s, "clinic", sess.id, {"pain_0_10": "3", "fatigue_borg": "12"}, 1)
    with db() as s:
        rows = s.scalars(select(Outbox).order_by(Outbox.seq)).all()
    evs = [events.parse_event(r.payload, "clinic", "p001") for r in rows]
    assert [e.type for e in evs] == ["session_start", "trial_start", "trial_stop", "session_stop"]
    assert {r.topic for r in rows} == {"poise/v1/session/clinic/p001"}
    start = evs[0]
    assert [p.sensor for p in start.placement] == ["p001-lowerback", "p001-shank"]
    assert start.prescription is not None
    assert start.prescription.id == "rx-p001-1"
    assert evs[1].exercise == "rom/knee_flexion"
    assert evs[1].side == "right"
    assert (evs[3].pain_0_10, evs[3].fatigue_borg) == (3.0, 12.0)
    assert all(b"progression" not in r.payload for r in rows)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"pain_0_10": "11"}, "pain: expected a whole number from 0 to 10"),
        ({"pain_0_10": "2.5"}, "pain: expected a whole number"),
        ({"fatigue_borg": "5"}, "fatigue: expected a whole number from 6 to 20"),
        ({"fatigue_borg": "abc"}, "fatigue"),
    ],
)
def test_refused_end_of_session_values(staffed, form: dict[str, str], message: str) -> None:
    with staffed.begin() as s:
        _patient(s)
        sess = records.start_session(s, "clinic", "p001", 1)
        with pytest.raises(records.FormError, match=message):
            records.stop_session(s, "clinic", sess.id, form, 1)


def test_refused_trials(staffed) -> None:
    with staffed.begin() as s:
        _patient(s)
        records.save_prescription(s, "p001", records.EXAMPLE_RX.replace("PID", "p001"), 1)
        sess = records.start_session(s, "clinic", "p001", 1)
        with pytest.raises(records.FormError, match="'tug' is not in this patient's prescription"):
            records.start_trial(s, "clinic", sess.id, {"exercise": "tug"}, 1)
        with pytest.raises(records.FormError, match="trial stop without a start") as exc:
            records.stop_trial(s, "clinic", sess.id, "t-never", False, 1)
        assert exc.value.status == 409
        with pytest.raises(records.FormError, match="eyes: expected one of open, closed"):
            records.start_trial(
                s, "clinic", sess.id, {"exercise": "quiet_stance", "eyes": "shut"}, 1
            )
        records.start_trial(s, "clinic", sess.id, {"exercise": "quiet_stance"}, 1)
        with pytest.raises(records.FormError, match="still running"):
            records.stop_session(s, "clinic", sess.id, {}, 1)


@pytest.mark.parametrize(
    ("pid", "message"),
    [
        ("Jane Doe", "pseudonymous ids only"),
        ("jd-1950-03-02", "looks like a (date or a name|name or a date)"),
        ("Jane_Doe", "looks like a (date or a name|name or a date)"),
    ],
)
def test_refused_patient_ids(staffed, pid: str, message: str) -> None:
    with staffed.begin() as s, pytest.raises(records.FormError, match=message):
        _patient(s, pid)


def test_prescription_errors_name_the_field(staffed) -> None:
    with staffed.begin() as s:
        _patient(s)
        bad = records.EXAMPLE_RX.replace("PID", "p001").replace(
            "max_rom_deg = 110", "max_rom_deg = 40"
        )
        with pytest.raises(records.FormError, match="max_rom_deg"):
            records.save_prescription(s, "p001", bad, 1)


def test_export_holds_the_history(staffed) -> None:
    with staffed.begin() as s:
        _patient(s)
        sess = records.start_session(s, "clinic", "p001", 1)
        records.add_note(s, "p001", "tolerated well", 1, sess.id)
        records.stop_session(s, "clinic", sess.id, {"pain_0_10": "1"}, 1)
    with staffed() as s:
        doc = records.export(s, "p001")
        json.dumps(doc)
        assert doc["sessions"][0]["pain_0_10"] == 1.0
        assert doc["notes"][0]["text"] == "tolerated well"
        # the note's text never reaches the audit trail
        assert all("tolerated" not in a.detail for a in s.scalars(select(Audit)))


def test_vendored_files_match_their_recorded_integrity() -> None:
    import base64
    import hashlib
    import re

    vendor = Path(__file__).resolve().parents[2] / "poise" / "console" / "static" / "vendor"
    table = (vendor / "VENDORED.md").read_text()
    found = dict(re.findall(r"\| `([^`]+)` \| `(sha384-[^`]+)` \|", table))
    assert len(found) == 3
    for name, integrity in found.items():
        digest = base64.b64encode(hashlib.sha384((vendor / name).read_bytes()).digest()).decode()
        assert integrity == f"sha384-{digest}", name


def test_forget_patient_erases_the_clinical_records(staffed) -> None:
    with staffed.begin() as s:
        _patient(s)
        _patient(s, "p002")
        records.save_prescription(s, "p001", records.EXAMPLE_RX.replace("PID", "p001"), 1)
        sess = records.start_session(s, "clinic", "p001", 1)
        t = records.start_trial(s, "clinic", sess.id, {"exercise": "quiet_stance"}, 1)
        records.stop_trial(s, "clinic", sess.id, t.id, False, 1)
        records.add_note(s, "p001", "free text", 1, sess.id)
    with staffed.begin() as s:
        dry = records.forget_patient(s, "p001", site="clinic", dry_run=True)
        assert dry == {
            "patient": 1,
            "prescriptions": 1,
            "sessions": 1,
            "trials": 1,
            "notes": 1,
            "outbox": 3,
        }
        assert records.forget_patient(s, "p001", site="elsewhere")["patient"] == 0
        assert records.forget_patient(s, "p001", site="clinic") == dry
    with staffed() as s:
        assert s.get(records.Patient, "p001") is None
        assert s.get(records.Patient, "p002") is not None
        assert records.export(s, "p002")["sessions"] == []
        assert s.scalars(select(Outbox)).all() == []
        assert s.scalar(select(Audit).where(Audit.action == "patient_forget")).target == "p001"
