"""Session and trial events, version 1: JSON on ``poise/v1/session/{site}/{patient}``, QoS 1.

The console and ``poise session|trial`` publish them; the worker consumes them. Each event
has an ``id`` (unique; a replayed event with an id already seen is ignored) and a time
``t_ns`` (ns since the Unix epoch, UTC). Shapes::

    {"v": 1, "type": "session_start", "id": ..., "t_ns": ..., "session": "s-...",
     "placement": [{"sensor": "p001-back", "segment": "lower_back", "side": "none"}, ...],
     "prescription": {...}}                      # poise.core.prescription.to_dict, public
    {"v": 1, "type": "trial_start", "id": ..., "t_ns": ..., "session": ..., "trial": "t-...",
     "exercise": "steadi_4stage/tandem", "condition": {"eyes": "open"}, "side": "none"}
    {"v": 1, "type": "trial_stop", ..., "session": ..., "trial": ..., "aborted": false}
    {"v": 1, "type": "note", ..., "session": ..., "pain_0_10": 3, "fatigue_borg": 12}
    {"v": 1, "type": "session_stop", ..., "session": ..., "pain_0_10": 2, "fatigue_borg": 13}

Site and patient come from the topic, never from the body. Free text (a therapist's note)
never travels in an event: it stays in the clinical records, so an event with a ``text``
field is refused. ``parse_event`` raises ``EventError`` with a stable ``reason`` (for
counters) and a message naming the field; it never raises anything else.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from poise.core import prescription as rx
from poise.core.clinical import CONDITIONS, EXERCISES, SEGMENTS, SIDES
from poise.core.ids import IdError, check_id

EVENT_VERSION = 1
TYPES = ("session_start", "trial_start", "trial_stop", "note", "session_stop")
MAX_EVENT_BYTES = 64 * 1024
# plausible times: after 2020-01-01 and before 2100-01-01
MIN_T_NS = 1_577_836_800 * 10**9
MAX_T_NS = 4_102_444_800 * 10**9


class EventError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Placement:
    sensor: str
    segment: str
    side: str = "none"


@dataclass(frozen=True)
class Event:
    type: str
    id: str
    t_ns: int
    site: str
    patient: str
    session: str
    trial: str | None = None
    exercise: str | None = None
    condition: dict[str, str] = field(default_factory=dict)
    side: str = "none"
    aborted: bool = False
    placement: tuple[Placement, ...] = ()
    prescription: rx.Prescription | None = None
    pain_0_10: float | None = None
    fatigue_borg: float | None = None


def new_id(prefix: str = "e") -> str:
    """A fresh random id (events, sessions, trials): pseudonymous by construction."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def to_json(ev: Event) -> dict[str, Any]:
    d: dict[str, Any] = {"v": EVENT_VERSION, "type": ev.type, "id": ev.id, "t_ns": ev.t_ns}
    d["session"] = ev.session
    if ev.type in ("trial_start", "trial_stop"):
        d["trial"] = ev.trial
    if ev.type == "trial_start":
        d.update(exercise=ev.exercise, condition=dict(ev.condition), side=ev.side)
    if ev.type == "trial_stop":
        d["aborted"] = ev.aborted
    if ev.type == "session_start":
        d["placement"] = [
            {"sensor": p.sensor, "segment": p.segment, "side": p.side} for p in ev.placement
        ]
        if ev.prescription is not None:
            d["prescription"] = rx.to_dict(ev.prescription.public())
    if ev.type in ("note", "session_stop"):
        for key in ("pain_0_10", "fatigue_borg"):
            if getattr(ev, key) is not None:
                d[key] = getattr(ev, key)
    return d


def encode(ev: Event) -> bytes:
    return json.dumps(to_json(ev), separators=(",", ":")).encode()


def _need(d: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in d:
        raise EventError("missing_field", f"field {key!r}: expected {what}, found nothing")
    v = d[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
        raise EventError("bad_field", f"field {key!r}: expected {what}, found {v!r}")
    return v


def _ident(d: dict[str, Any], key: str, kind: str) -> str:
    v = _need(d, key, str, f"a {kind} id")
    try:
        return check_id(kind, v)
    except IdError as exc:
        raise EventError("bad_id", f"field {key!r}: {exc}") from None


def _score(d: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    if key not in d or d[key] is None:
        return None
    v = _need(d, key, (int, float), f"a number from {lo:g} to {hi:g}")
    if not (math.isfinite(v) and lo <= v <= hi):
        raise EventError("out_of_range", f"field {key!r}: expected {lo:g} to {hi:g}, found {v!r}")
    return float(v)


def from_json(doc: Any, site: str, patient: str) -> Event:
    """Validate one event; ``site`` and ``patient`` are those of its topic."""
    if not isinstance(doc, dict):
        raise EventError("not_an_object", f"expected a JSON object, found {type(doc).__name__}")
    if doc.get("v") != EVENT_VERSION:
        raise EventError(
            "bad_version", f"field 'v': expected {EVENT_VERSION}, found {doc.get('v')!r}"
        )
    kind = _need(doc, "type", str, f"one of {list(TYPES)}")
    if kind not in TYPES:
        raise EventError(
            "unknown_type", f"field 'type': expected one of {list(TYPES)}, found {kind!r}"
        )
    if "text" in doc:
        raise EventError("free_text", "field 'text': free text never travels in events")
    t_ns = _need(doc, "t_ns", int, "ns since the Unix epoch")
    if not MIN_T_NS <= t_ns <= MAX_T_NS:
        raise EventError("implausible_time", f"field 't_ns': {t_ns} is not between 2020 and 2100")
    try:
        check_id("site", site)
        check_id("patient", patient)
    except IdError as exc:
        raise EventError("bad_id", str(exc)) from None
    base: dict[str, Any] = {
        "type": kind,
        "id": _ident(doc, "id", "event"),
        "t_ns": t_ns,
        "site": site,
        "patient": patient,
        "session": _ident(doc, "session", "session"),
    }
    if kind in ("trial_start", "trial_stop"):
        base["trial"] = _ident(doc, "trial", "trial")
    if kind == "trial_start":
        ex = _need(doc, "exercise", str, "an exercise id")
        if ex not in EXERCISES:
            raise EventError(
                "unknown_exercise",
                f"field 'exercise': expected one of {sorted(EXERCISES)}, found {ex!r}",
            )
        cond = doc.get("condition", {})
        if not isinstance(cond, dict):
            raise EventError("bad_field", f"field 'condition': expected an object, found {cond!r}")
        for k, v in cond.items():
            if k not in CONDITIONS or v not in CONDITIONS[k]:
                raise EventError(
                    "bad_condition",
                    f"field 'condition.{k}': expected one of {CONDITIONS.get(k, sorted(CONDITIONS))}, found {v!r}",
                )
        side = doc.get("side", "none")
        if side not in SIDES:
            raise EventError(
                "bad_field", f"field 'side': expected one of {list(SIDES)}, found {side!r}"
            )
        base.update(exercise=ex, condition=dict(cond), side=side)
    if kind == "trial_stop":
        aborted = doc.get("aborted", False)
        if not isinstance(aborted, bool):
            raise EventError(
                "bad_field", f"field 'aborted': expected true or false, found {aborted!r}"
            )
        base["aborted"] = aborted
    if kind == "session_start":
        places = []
        for i, p in enumerate(_need(doc, "placement", list, "a list of sensor placements")):
            if not isinstance(p, dict):
                raise EventError(
                    "bad_field", f"field 'placement[{i}]': expected an object, found {p!r}"
                )
            seg = _need(p, "segment", str, f"one of {list(SEGMENTS)}")
            side = p.get("side", "none")
            if seg not in SEGMENTS or side not in SIDES:
                raise EventError(
                    "bad_placement", f"field 'placement[{i}]': segment {seg!r}, side {side!r}"
                )
            places.append(Placement(_ident(p, "sensor", "sensor"), seg, side))
        if len({p.sensor for p in places}) != len(places):
            raise EventError("bad_placement", "field 'placement': a sensor is placed twice")
        base["placement"] = tuple(places)
        if doc.get("prescription") is not None:
            try:
                base["prescription"] = rx.from_dict(doc["prescription"], "event prescription")
            except rx.PrescriptionError as exc:
                raise EventError("bad_prescription", str(exc)) from None
    if kind in ("note", "session_stop"):
        base["pain_0_10"] = _score(doc, "pain_0_10", 0, 10)
        base["fatigue_borg"] = _score(doc, "fatigue_borg", 6, 20)
    return Event(**base)


def parse_event(payload: bytes, site: str, patient: str) -> Event:
    """Decode and validate an MQTT payload; raises only EventError."""
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError(
            "too_large", f"{len(payload)} bytes; an event has at most {MAX_EVENT_BYTES}"
        )
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError("malformed_json", f"not JSON: {exc}") from None
    try:
        return from_json(doc, site, patient)
    except EventError:
        raise
    except (
        TypeError,
        ValueError,
        AttributeError,
        RecursionError,
    ) as exc:  # defensive: odd JSON shapes
        raise EventError("bad_field", str(exc)) from None
