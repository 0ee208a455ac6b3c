"""Prescriptions: what a patient is asked to do, as a small TOML file (and its JSON twin,
carried in the session-start event).

A commented example: docs/deploy/prescription.example.toml. Shape::

    version = 1
    id = "rx-knee-2"            # pseudonymous id of this prescription
    sessions_per_week = 3
    pain_limit = 5              # pain (0-10) above this raises an alert
    progression = "..."         # free text for the therapist: never published or logged

    [[exercise]]
    id = "rom/knee_flexion"     # poise.core.clinical.EXERCISES
    side = "right"
    target_rom_deg = 90         # a repetition must reach this ROM ...
    max_rom_deg = 110           # ... and stay at or below this angle
    reps = 10                   # per set
    sets = 3
    tempo_s = 2.0               # a repetition faster than this is too fast
    hold_s = 0                  # hold at the peak (s)
    rest_s = 60                 # between sets

Errors name the file, the field, what was expected and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from poise.core.clinical import CONDITIONS, EXERCISES, SIDES
from poise.core.tomlconf import ConfigError, TomlReader, load_toml, parse_toml

FORMAT_VERSION = 1


class PrescriptionError(ConfigError):
    """A prescription that cannot be used."""


@dataclass(frozen=True)
class ExerciseRx:
    exercise: str
    side: str = "none"
    condition: dict[str, str] = field(default_factory=dict)
    target_rom_deg: float | None = None
    max_rom_deg: float | None = None
    reps: int | None = None
    sets: int | None = None
    hold_s: float | None = None
    tempo_s: float | None = None  # the shortest acceptable repetition
    rest_s: float | None = None


@dataclass(frozen=True)
class Prescription:
    id: str
    exercises: tuple[ExerciseRx, ...]
    sessions_per_week: int | None = None
    pain_limit: float | None = None
    progression: str = ""  # free text: stays in the clinical records
    version: int = FORMAT_VERSION

    def find(self, exercise: str, side: str | None = None) -> ExerciseRx | None:
        """The prescribed exercise (with this side, when given and prescribed per side)."""
        matches = [e for e in self.exercises if e.exercise == exercise]
        if side is not None:
            matches = [e for e in matches if e.side in (side, "none")] or matches
        return matches[0] if matches else None

    def public(self) -> Prescription:
        """Without free text: what may travel in an event."""
        return replace(self, progression="")


_EXERCISE_KEYS = frozenset(
    {
        "id",
        "side",
        "condition",
        "target_rom_deg",
        "max_rom_deg",
        "reps",
        "sets",
        "hold_s",
        "tempo_s",
        "rest_s",
    }
)
_TOP_KEYS = frozenset(
    {"version", "id", "sessions_per_week", "pain_limit", "progression", "exercise"}
)


def _read(top: TomlReader) -> Prescription:
    top.unknown(_TOP_KEYS)
    version = top.integer("version", f"format version {FORMAT_VERSION}", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise top.fail("version", f"format version {FORMAT_VERSION}", version)
    exercises = []
    for ex in top.subs("exercise", required=True):
        ex.unknown(_EXERCISE_KEYS)
        cond_r = ex.sub("condition", {})
        cond: dict[str, str] = {}
        for key in list(cond_r.table):
            if key not in CONDITIONS:
                raise cond_r.fail(key, f"one of the conditions {sorted(CONDITIONS)}", key)
            cond[key] = cond_r.choice(key, CONDITIONS[key])
        e = ExerciseRx(
            exercise=ex.choice("id", sorted(EXERCISES)),
            side=ex.choice("side", SIDES, "none"),
            condition=cond,
            target_rom_deg=ex.number("target_rom_deg", "degrees from 0 to 180", None, 0, 180),
            max_rom_deg=ex.number("max_rom_deg", "degrees from 0 to 180", None, 0, 180),
            reps=ex.integer("reps", "a whole number from 1 to 100", None, 1, 100),
            sets=ex.integer("sets", "a whole number from 1 to 20", None, 1, 20),
            hold_s=ex.number("hold_s", "seconds from 0 to 600", None, 0, 600),
            tempo_s=ex.number("tempo_s", "seconds from 0 to 60", None, 0, 60),
            rest_s=ex.number("rest_s", "seconds from 0 to 3600", None, 0, 3600),
        )
        if (
            e.target_rom_deg is not None
            and e.max_rom_deg is not None
            and e.max_rom_deg < e.target_rom_deg
        ):
            raise ex.fail(
                "max_rom_deg", f"at least target_rom_deg ({e.target_rom_deg:g})", e.max_rom_deg
            )
        exercises.append(e)
    if not exercises:
        raise top.fail("exercise", "at least one [[exercise]]", [])
    seen: set[tuple[str, str, str]] = set()
    for i, e in enumerate(exercises):
        ident = (e.exercise, e.side, repr(sorted(e.condition.items())))
        if ident in seen:
            raise top.fail(
                f"exercise[{i}].id", "each exercise, side and condition once", e.exercise
            )
        seen.add(ident)
    return Prescription(
        id=top.ident("id"),
        exercises=tuple(exercises),
        sessions_per_week=top.integer(
            "sessions_per_week", "a whole number from 1 to 14", None, 1, 14
        ),
        pain_limit=top.number("pain_limit", "a pain level from 0 to 10", None, 0, 10),
        progression=top.text("progression", "a text", ""),
        version=version,
    )


def load_prescription(path: Path | str) -> Prescription:
    return _read(load_toml(path, PrescriptionError))


def parse_prescription(text: str, name: str = "prescription") -> Prescription:
    return _read(parse_toml(text, name, PrescriptionError))


def to_dict(rx: Prescription) -> dict[str, Any]:
    """The JSON/TOML shape (free text included: call ``rx.public()`` first for an event)."""
    out: dict[str, Any] = {"version": rx.version, "id": rx.id}
    for key in ("sessions_per_week", "pain_limit"):
        if getattr(rx, key) is not None:
            out[key] = getattr(rx, key)
    if rx.progression:
        out["progression"] = rx.progression
    exs = []
    for e in rx.exercises:
        d: dict[str, Any] = {"id": e.exercise, "side": e.side}
        if e.condition:
            d["condition"] = dict(e.condition)
        for key in ("target_rom_deg", "max_rom_deg", "reps", "sets", "hold_s", "tempo_s", "rest_s"):
            if getattr(e, key) is not None:
                d[key] = getattr(e, key)
        exs.append(d)
    out["exercise"] = exs
    return out


def from_dict(doc: dict[str, Any], name: str = "prescription") -> Prescription:
    """Validate the JSON twin (as carried in a session-start event)."""
    if not isinstance(doc, dict):
        raise PrescriptionError(f"{name}: expected a table, found {doc!r}")
    return _read(TomlReader(name, doc, "", PrescriptionError))


def to_toml(rx: Prescription) -> str:
    """The TOML text of a prescription (what the console's form edits)."""

    def val(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return repr(v)

    d = to_dict(rx)
    lines = [f"{k} = {val(v)}" for k, v in d.items() if k != "exercise"]
    for e in d["exercise"]:
        lines += ["", "[[exercise]]"] + [f"{k} = {val(v)}" for k, v in e.items()]
    return "\n".join(lines) + "\n"
