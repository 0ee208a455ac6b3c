"""What the console's forms do to the clinical records, and the session events they send.

Every function here takes the submitted values as a mapping of strings, checks them, and
either changes the records (and queues the matching session event in the outbox, in the
same transaction) or raises ``FormError`` with a message that names the field, what was
expected and what was found. No HTTP and no MQTT here: the web layer renders, the bridge
publishes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, desc, select
from sqlalchemy.orm import Session

from poise.console.accounts import audit
from poise.console.db import (
    AGE_BANDS,
    SEXES,
    Note,
    Outbox,
    Patient,
    PrescriptionRow,
    SessionRow,
    Staff,
    TrialRow,
    now_ns,
)
from poise.core import events, topics
from poise.core import prescription as rxmod
from poise.core.clinical import CONDITIONS, EXERCISES, SEGMENTS, SIDES
from poise.core.ids import id_problem, is_id

MAX_SENSORS = 6
MAX_NOTE_CHARS = 4000

EXAMPLE_RX = """version = 1
id = "rx-PID-1"
sessions_per_week = 3
pain_limit = 5
progression = ""

[[exercise]]
id = "quiet_stance"
condition = { eyes = "open", surface = "firm" }

[[exercise]]
id = "rom/knee_flexion"
side = "right"
target_rom_deg = 60
max_rom_deg = 110
reps = 10
sets = 2
tempo_s = 1.0
"""


class FormError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(LookupError):
    pass


def _text(form: Mapping[str, Any], key: str) -> str:
    v = form.get(key, "")
    return v.strip() if isinstance(v, str) else ""


def _choice(
    form: Mapping[str, Any], key: str, label: str, allowed: tuple[str, ...] | list[str]
) -> str:
    v = _text(form, key)
    if v not in allowed:
        raise FormError(f"{label}: expected one of {', '.join(allowed)}, found {v!r}")
    return v


def _number(
    form: Mapping[str, Any], key: str, label: str, lo: int, hi: int, scale: str
) -> float | None:
    v = _text(form, key)
    if v == "":
        return None
    try:
        x = float(v)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x == int(x) and lo <= x <= hi):
        raise FormError(
            f"{label}: expected a whole number from {lo} to {hi} ({scale}), found {v!r}"
        )
    return x


def _id(value: str, label: str) -> str:
    problem = id_problem(label, value)
    if problem is not None:
        raise FormError(problem)
    return value


def _queue(db: Session, site: str, patient: str, ev: events.Event) -> None:
    """Queue an event for the broker; it is checked against the contract first."""
    payload = events.encode(ev)
    events.parse_event(payload, site, patient)
    db.add(Outbox(id=ev.id, topic=topics.session(site, patient), payload=payload))


# --- patients
def add_patient(db: Session, site: str, form: Mapping[str, Any], staff_id: int) -> Patient:
    pid = _id(_text(form, "id"), "patient")
    if db.get(Patient, pid) is not None:
        raise FormError(f"patient id {pid!r} exists already", 409)
    age_band = _choice(form, "age_band", "age band", AGE_BANDS)
    sex = _choice(form, "sex", "sex (for the norms)", SEXES)
    placement = []
    for i in range(MAX_SENSORS):
        sensor = _text(form, f"sensor_{i}")
        if not sensor:
            continue
        _id(sensor, f"sensor {i + 1}")
        segment = _choice(form, f"segment_{i}", f"sensor {i + 1} segment", SEGMENTS)
        side = _choice(form, f"side_{i}", f"sensor {i + 1} side", SIDES)
        placement.append({"sensor": sensor, "segment": segment, "side": side})
    if not placement:
        raise FormError("sensors: expected at least one sensor with its segment, found none")
    sensors = [p["sensor"] for p in placement]
    if len(set(sensors)) != len(sensors):
        raise FormError("sensors: each sensor once, found one placed twice")
    taken = sensor_owners(db)
    for s in sensors:
        if s in taken:
            raise FormError(f"sensor {s!r} is placed on patient {taken[s]!r} already", 409)
    p = Patient(id=pid, site=site, age_band=age_band, sex=sex, placement_json=json.dumps(placement))
    db.add(p)
    audit(db, staff_id, "patient_add", pid)
    return p


def sensor_owners(db: Session) -> dict[str, str]:
    out = {}
    for p in db.scalars(select(Patient)):
        for s in p.placement:
            out[s["sensor"]] = p.id
    return out


def get_patient(db: Session, pid: str) -> Patient:
    p = db.get(Patient, pid) if is_id(pid) else None
    if p is None:
        raise NotFoundError(f"There is no patient {pid!r}.")
    return p


@dataclass
class PatientRow:
    patient: Patient
    last_session_ns: int | None
    sessions: int
    open_session: str | None


def patients_overview(db: Session) -> list[PatientRow]:
    rows: dict[str, PatientRow] = {
        p.id: PatientRow(p, None, 0, None) for p in db.scalars(select(Patient).order_by(Patient.id))
    }
    for s in db.scalars(select(SessionRow)):
        r = rows.get(s.patient_id)
        if r is None:
            continue
        r.sessions += 1
        r.last_session_ns = max(r.last_session_ns or 0, s.start_ns)
        if s.stop_ns is None:
            r.open_session = s.id
    return list(rows.values())


# --- prescriptions
def current_prescription(
    db: Session, pid: str
) -> tuple[PrescriptionRow | None, rxmod.Prescription | None]:
    row = db.scalar(
        select(PrescriptionRow)
        .where(PrescriptionRow.patient_id == pid)
        .order_by(desc(PrescriptionRow.row_id))
        .limit(1)
    )
    if row is None:
        return None, None
    return row, rxmod.parse_prescription(row.toml, f"prescription of {pid}")


def save_prescription(db: Session, pid: str, text: str, staff_id: int) -> PrescriptionRow:
    get_patient(db, pid)
    try:
        rx = rxmod.parse_prescription(text, "prescription")
    except rxmod.PrescriptionError as exc:
        raise FormError(str(exc)) from None
    row = PrescriptionRow(id=rx.id, patient_id=pid, toml=text, created_by=staff_id)
    db.add(row)
    audit(db, staff_id, "prescription_save", pid, rx.id)
    return row


# --- notes
def add_note(db: Session, pid: str, text: str, staff_id: int, session: str | None = None) -> Note:
    get_patient(db, pid)
    text = text.strip()
    if not text:
        raise FormError("note: expected some text, found nothing")
    if len(text) > MAX_NOTE_CHARS:
        raise FormError(f"note: expected at most {MAX_NOTE_CHARS} characters, found {len(text)}")
    n = Note(patient_id=pid, session_id=session, staff_id=staff_id, text=text)
    db.add(n)
    audit(db, staff_id, "note_add", pid)  # the text itself never goes to the audit trail
    return n


def notes(db: Session, pid: str) -> list[tuple[Note, str]]:
    names = {s.id: s.name for s in db.scalars(select(Staff))}
    rows = db.scalars(select(Note).where(Note.patient_id == pid).order_by(desc(Note.t_ns))).all()
    return [(n, names.get(n.staff_id, "?")) for n in rows]


# --- sessions and trials
def open_sessions(db: Session) -> list[tuple[SessionRow, TrialRow | None]]:
    out = []
    for s in db.scalars(
        select(SessionRow).where(SessionRow.stop_ns.is_(None)).order_by(SessionRow.start_ns)
    ):
        trial = db.scalar(
            select(TrialRow).where(TrialRow.session_id == s.id, TrialRow.stop_ns.is_(None)).limit(1)
        )
        out.append((s, trial))
    return out


def open_session_of(db: Session, pid: str) -> SessionRow | None:
    return db.scalar(
        select(SessionRow)
        .where(SessionRow.patient_id == pid, SessionRow.stop_ns.is_(None))
        .limit(1)
    )


def get_session(db: Session, sid: str) -> SessionRow:
    s = db.get(SessionRow, sid) if is_id(sid) else None
    if s is None:
        raise NotFoundError(f"There is no session {sid!r}.")
    return s


def session_prescription(
    db: Session, sess: SessionRow
) -> tuple[PrescriptionRow | None, rxmod.Prescription | None]:
    if sess.prescription_row is None:
        return None, None
    row = db.get(PrescriptionRow, sess.prescription_row)
    if row is None:
        return None, None
    return row, rxmod.parse_prescription(row.toml, f"prescription {row.id}")


def trials(db: Session, sid: str) -> list[TrialRow]:
    return list(
        db.scalars(select(TrialRow).where(TrialRow.session_id == sid).order_by(TrialRow.start_ns))
    )


def start_session(db: Session, site: str, pid: str, staff_id: int) -> SessionRow:
    patient = get_patient(db, pid)
    already = open_session_of(db, pid)
    if already is not None:
        raise FormError(f"patient {pid!r} is in session {already.id} already: stop it first", 409)
    rx_row, rx = current_prescription(db, pid)
    t = now_ns()
    sess = SessionRow(
        id=events.new_id("s"),
        patient_id=pid,
        prescription_row=rx_row.row_id if rx_row else None,
        start_ns=t,
        started_by=staff_id,
    )
    db.add(sess)
    placement = tuple(
        events.Placement(p["sensor"], p["segment"], p["side"]) for p in patient.placement
    )
    ev = events.Event(
        type="session_start",
        id=events.new_id(),
        t_ns=t,
        site=site,
        patient=pid,
        session=sess.id,
        placement=placement,
        prescription=rx,
    )
    _queue(db, site, pid, ev)
    audit(db, staff_id, "session_start", pid, sess.id)
    return sess


@dataclass
class TrialChoice:
    exercise: str
    side: str = "none"
    condition: dict[str, str] = field(default_factory=dict)
    detail: str = ""


def trial_choices(rx: rxmod.Prescription | None) -> list[TrialChoice]:
    """What a trial can be: the prescribed exercises, or any exercise without a prescription."""
    if rx is None:
        return [TrialChoice(ex) for ex in EXERCISES]
    out = []
    for e in rx.exercises:
        bits = []
        if e.reps:
            bits.append(f"{e.reps} reps" + (f" × {e.sets}" if e.sets else ""))
        if e.target_rom_deg is not None:
            bits.append(f"target {e.target_rom_deg:g}°")
        if e.max_rom_deg is not None:
            bits.append(f"max {e.max_rom_deg:g}°")
        out.append(TrialChoice(e.exercise, e.side, dict(e.condition), ", ".join(bits)))
    return out


def start_trial(
    db: Session, site: str, sid: str, form: Mapping[str, Any], staff_id: int
) -> TrialRow:
    sess = get_session(db, sid)
    if sess.stop_ns is not None:
        raise FormError(f"session {sid} has ended: start a new session first", 409)
    open_trial = db.scalar(
        select(TrialRow).where(TrialRow.session_id == sid, TrialRow.stop_ns.is_(None)).limit(1)
    )
    if open_trial is not None:
        raise FormError(
            f"trial {open_trial.id} ({open_trial.exercise}) is still running: stop it before starting another",
            409,
        )
    _row, rx = session_prescription(db, sess)
    choices = trial_choices(rx)
    allowed = sorted({c.exercise for c in choices})
    exercise = _text(form, "exercise")
    if exercise not in allowed:
        where = "this patient's prescription" if rx is not None else "the known exercises"
        raise FormError(
            f"exercise: {exercise!r} is not in {where}; choose one of {', '.join(allowed)}"
        )
    prescribed = next((c for c in choices if c.exercise == exercise), None)
    side = _text(form, "side") or (prescribed.side if prescribed else "none")
    if side not in SIDES:
        raise FormError(f"side: expected one of {', '.join(SIDES)}, found {side!r}")
    condition = dict(prescribed.condition) if prescribed else {}
    for key, values in CONDITIONS.items():
        v = _text(form, key)
        if v == "":
            continue
        if v not in values:
            raise FormError(f"{key}: expected one of {', '.join(values)}, found {v!r}")
        condition[key] = v
    t = now_ns()
    trial = TrialRow(
        id=events.new_id("t"),
        session_id=sid,
        exercise=exercise,
        condition_json=json.dumps(condition, sort_keys=True),
        side=side,
        start_ns=t,
    )
    db.add(trial)
    ev = events.Event(
        type="trial_start",
        id=events.new_id(),
        t_ns=t,
        site=site,
        patient=sess.patient_id,
        session=sid,
        trial=trial.id,
        exercise=exercise,
        condition=condition,
        side=side,
    )
    _queue(db, site, sess.patient_id, ev)
    audit(db, staff_id, "trial_start", sess.patient_id, trial.id)
    return trial


def stop_trial(
    db: Session, site: str, sid: str, tid: str, aborted: bool, staff_id: int
) -> TrialRow:
    sess = get_session(db, sid)
    trial = db.get(TrialRow, tid) if is_id(tid) else None
    if trial is None or trial.session_id != sid:
        raise FormError(
            f"trial stop without a start: no trial {tid!r} was started in session {sid}", 409
        )
    if trial.stop_ns is not None:
        raise FormError(
            f"trial {tid} was stopped already at {trial.stop_ns // 10**9} s (Unix time)", 409
        )
    t = now_ns()
    trial.stop_ns = t
    trial.aborted = aborted
    ev = events.Event(
        type="trial_stop",
        id=events.new_id(),
        t_ns=t,
        site=site,
        patient=sess.patient_id,
        session=sid,
        trial=tid,
        aborted=aborted,
    )
    _queue(db, site, sess.patient_id, ev)
    audit(db, staff_id, "trial_stop", sess.patient_id, tid)
    return trial


def stop_session(
    db: Session, site: str, sid: str, form: Mapping[str, Any], staff_id: int
) -> SessionRow:
    sess = get_session(db, sid)
    if sess.stop_ns is not None:
        raise FormError(f"session {sid} has ended already", 409)
    pain = _number(form, "pain_0_10", "pain", 0, 10, "0 none .. 10 worst imaginable")
    fatigue = _number(
        form, "fatigue_borg", "fatigue", 6, 20, "Borg scale, 6 no exertion .. 20 maximal"
    )
    open_trial = db.scalar(
        select(TrialRow).where(TrialRow.session_id == sid, TrialRow.stop_ns.is_(None)).limit(1)
    )
    if open_trial is not None:
        raise FormError(
            f"trial {open_trial.id} is still running: stop it before ending the session", 409
        )
    t = now_ns()
    sess.stop_ns = t
    sess.pain_0_10, sess.fatigue_borg = pain, fatigue
    ev = events.Event(
        type="session_stop",
        id=events.new_id(),
        t_ns=t,
        site=site,
        patient=sess.patient_id,
        session=sid,
        pain_0_10=pain,
        fatigue_borg=fatigue,
    )
    _queue(db, site, sess.patient_id, ev)
    audit(db, staff_id, "session_stop", sess.patient_id, sid)
    return sess


def history(db: Session, pid: str) -> list[tuple[SessionRow, list[TrialRow]]]:
    sessions = db.scalars(
        select(SessionRow).where(SessionRow.patient_id == pid).order_by(desc(SessionRow.start_ns))
    ).all()
    return [(s, trials(db, s.id)) for s in sessions]


def export(db: Session, pid: str) -> dict[str, Any]:
    """The patient's records as JSON (pseudonymous; notes included: this is for the clinic)."""
    p = get_patient(db, pid)
    rx_row, _rx = current_prescription(db, pid)
    return {
        "patient": {
            "id": p.id,
            "site": p.site,
            "age_band": p.age_band,
            "sex": p.sex,
            "placement": p.placement,
        },
        "prescription_toml": rx_row.toml if rx_row else None,
        "sessions": [
            {
                "id": s.id,
                "start_ns": s.start_ns,
                "stop_ns": s.stop_ns,
                "pain_0_10": s.pain_0_10,
                "fatigue_borg": s.fatigue_borg,
                "trials": [
                    {
                        "id": t.id,
                        "exercise": t.exercise,
                        "condition": t.condition,
                        "side": t.side,
                        "start_ns": t.start_ns,
                        "stop_ns": t.stop_ns,
                        "aborted": t.aborted,
                        "summary": t.summary,
                    }
                    for t in ts
                ],
            }
            for s, ts in history(db, pid)
        ],
        "notes": [{"t_ns": n.t_ns, "by": name, "text": n.text} for n, name in notes(db, pid)],
    }


def staff_list(db: Session) -> list[Staff]:
    return list(db.scalars(select(Staff).order_by(Staff.name)))


def forget_patient(
    db: Session, patient: str, site: str | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Erase a patient's clinical records (``poise patient forget``): notes, trials,
    sessions, prescriptions, events not yet sent, and the patient. Counts what it removes
    (or would, with ``dry_run``). The audit trail keeps its lines, which name the patient by
    the pseudonymous id only, and gains one saying the records were erased."""
    p = db.get(Patient, patient) if is_id(patient) else None
    if p is None or (site is not None and p.site != site):
        return {
            "patient": 0,
            "prescriptions": 0,
            "sessions": 0,
            "trials": 0,
            "notes": 0,
            "outbox": 0,
        }
    session_ids = list(db.scalars(select(SessionRow.id).where(SessionRow.patient_id == patient)))
    counts = {
        "patient": 1,
        "prescriptions": len(
            db.scalars(
                select(PrescriptionRow.row_id).where(PrescriptionRow.patient_id == patient)
            ).all()
        ),
        "sessions": len(session_ids),
        "trials": len(
            db.scalars(select(TrialRow.id).where(TrialRow.session_id.in_(session_ids))).all()
        ),
        "notes": len(db.scalars(select(Note.id).where(Note.patient_id == patient)).all()),
        "outbox": len(
            db.scalars(
                select(Outbox.seq).where(Outbox.topic == topics.session(p.site, patient))
            ).all()
        ),
    }
    if dry_run:
        return counts
    db.execute(delete(Note).where(Note.patient_id == patient))
    db.execute(delete(TrialRow).where(TrialRow.session_id.in_(session_ids)))
    db.execute(delete(SessionRow).where(SessionRow.patient_id == patient))
    db.execute(delete(PrescriptionRow).where(PrescriptionRow.patient_id == patient))
    db.execute(delete(Outbox).where(Outbox.topic == topics.session(p.site, patient)))
    db.delete(p)
    audit(db, None, "patient_forget", patient)
    return counts
