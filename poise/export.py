"""``poise export``: a patient's data as CSV, Parquet or FHIR R4 Observations.

- csv / parquet: one table of trial summaries (``trials``), one of session summaries
  (``sessions``), and with ``raw`` one table of raw samples per sensor in the offline CSV
  format (``time_s, acc_x, ...``), so ``poise analyze`` can read it back.
- fhir: a Bundle (type collection) of Observations, one per trial or test and one per
  session; components per metric with UCUM units; ``method`` carries the algorithm
  version, ``device`` the sensor placement, ``bodySite`` where it was worn. LOINC codes only
  where one exists for exactly that measurement (TUG 89423-8, 30 s chair stand 66247-8,
  pain 0-10 72514-3); everything else uses the project's CodeSystem (docs/fhir/).

The subject is ``Patient/{pseudonymous id}`` and nothing else identifies a person: no name,
birth date, address or identifier is ever written.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from poise.core.clinical import EXERCISES, ROM_JOINTS
from poise.core.derived import MEASUREMENTS
from poise.core.ids import check_id
from poise.core.influx import RAW_MEASUREMENT, RAW_RP, InfluxV1
from poise.report.data import PatientData

FORMATS = ("csv", "parquet", "fhir")
CODE_SYSTEM = "urn:poise:fhir:CodeSystem:poise-observation"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# LOINC codes that exist for exactly what we measure (checked against loinc.org)
LOINC_CODES = {
    "tug": (
        "89423-8",
        "Time to rise from chair, walk 10 feet and back, and return to sitting [TUG]",
    ),
    "chair_stand_30s": ("66247-8", "Sit to stand frequency in 30 seconds"),
    "pain_0_10": ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
}
# our units -> UCUM (milli-g is m[g]: "mg" would be milligrams)
UCUM_UNITS = {
    "m/s²": "m/s2",
    "m/s³": "m/s3",
    "m²/s⁶": "m2/s6",
    "(m/s²)²": "m2/s4",
    "Hz": "Hz",
    "s": "s",
    "deg": "deg",
    "%": "%",
    "mg": "m[g]",
    "1/min": "/min",
    "": "1",
}
# internal bookkeeping, not a measurement: which sensor ids were scored (for rescoring)
FHIR_SKIP = frozenset({"kind", "sensors", "intensity_sensor"})
TAG_COLUMNS = ("session", "trial", "exercise", "condition", "side", "algorithm_version")
IMU_COLUMNS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z", "mag_x", "mag_y", "mag_z")


def private(path: Path) -> Path:
    """Health data: readable by its owner only (like the credentials files)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    return path


def iso(t_s: float) -> str:
    return (
        dt.datetime.fromtimestamp(t_s, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def table_rows(data: PatientData) -> dict[str, list[dict[str, Any]]]:
    """Flat rows with fixed columns (every field of the table, empty where absent)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, rows, measurement in (
        ("trials", data.trials, "trial_summary"),
        ("sessions", data.sessions, "session_summary"),
    ):
        m = MEASUREMENTS[measurement]
        tags = [t for t in TAG_COLUMNS if t in m.all_tags]
        cols = ["time", "time_s", "patient", *tags, *(f.name for f in m.fields)]
        out[name] = [
            {
                c: (
                    iso(float(r["time_s"]))
                    if c == "time"
                    else (data.patient if c == "patient" else r.get(c))
                )
                for c in cols
            }
            for r in rows
        ]
    return out


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with private(path).open("w", newline="", encoding="utf-8") as fh:
        if not rows:
            return
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def write_parquet(rows: list[dict[str, Any]], path: Path, measurement: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if measurement is not None:
        kinds = {f.name: f.kind for f in MEASUREMENTS[measurement].fields}
        arrow = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
        names = list(rows[0]) if rows else ["time", "time_s", "patient"]
        schema = pa.schema(
            [
                (
                    c,
                    arrow[kinds[c]]
                    if c in kinds
                    else (pa.float64() if c == "time_s" else pa.string()),
                )
                for c in names
            ]
        )
        table = pa.Table.from_pylist(rows, schema=schema)
    else:
        table = pa.Table.from_pylist(rows)
    pq.write_table(table, private(path))


# --- raw samples ---


def session_windows(data: PatientData, margin_s: float = 60.0) -> list[tuple[float, float]]:
    """The time spans of the patient's sessions (with a margin), merged: where raw samples
    can be, so an export need not scan weeks of empty hours."""
    spans = sorted(
        (
            float(s["time_s"]) - margin_s,
            float(s["time_s"]) + float(s.get("duration_s") or 0) + margin_s,
        )
        for s in data.sessions
    )
    out: list[tuple[float, float]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def raw_rows(
    influx: InfluxV1,
    patient: str,
    windows: Iterable[tuple[float, float]],
    chunk_s: float = 3600.0,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(sensor, rows) of raw samples within ``windows`` (since_s, until_s), oldest first, an
    hour at most per query, in the offline CSV shape."""
    check_id("patient", patient)
    for since_s, until_s in windows:
        t = since_s
        while t < until_s:
            end = min(until_s, t + chunk_s)
            series = influx.query(
                f'SELECT * FROM "{RAW_RP}"."{RAW_MEASUREMENT}" WHERE patient = \'{patient}\' '
                f"AND time >= {int(t * 1e9)} AND time < {int(end * 1e9)} GROUP BY sensor"
            )
            for s in series:
                sensor = str(s.get("tags", {}).get("sensor", "unknown"))
                cols = s["columns"]
                rows = []
                for values in s.get("values", []):
                    row = dict(zip(cols, values, strict=True))
                    rows.append(
                        {
                            "time_s": row["time"] / 1e9,
                            **{c: row.get(c) for c in IMU_COLUMNS if c in row},
                        }
                    )
                yield sensor, rows
            t = end


# --- FHIR ---


def _quantity(value: float, unit: str) -> dict[str, Any]:
    code = UCUM_UNITS.get(unit, unit)
    return {"value": value, "unit": unit or "1", "system": UCUM, "code": code}


def _project_code(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}], "text": display}


def _body_site(exercise: str, side: str) -> dict[str, Any]:
    if exercise in ROM_JOINTS:
        joint = ROM_JOINTS[exercise][0]
        return {"text": f"{side} {joint}" if side not in ("", "none") else joint}
    return {"text": "lower back (L5)"}


def _device(exercise: str) -> dict[str, Any]:
    if exercise in ROM_JOINTS:
        _joint, _motion, prox, dist = ROM_JOINTS[exercise]
        where = f"{prox} and {dist}" if prox else dist
        return {"display": f"body-worn inertial sensors on the {where.replace('_', ' ')}"}
    return {"display": "body-worn inertial sensor on the lower back"}


def _fid(text: str) -> str:
    """A FHIR id: [A-Za-z0-9-.]{1,64}."""
    out = "".join(c if c.isalnum() or c in "-." else "-" for c in text)
    return out[:64]


def trial_observation(patient: str, r: dict[str, Any]) -> dict[str, Any]:
    m = MEASUREMENTS["trial_summary"]
    exercise = str(r.get("exercise", ""))
    kind, words = EXERCISES.get(exercise, ("trial", exercise))
    components = []
    for f in m.fields:
        v = r.get(f.name)
        if v is None or f.name in FHIR_SKIP or (isinstance(v, float) and not math.isfinite(v)):
            continue
        ccode = _project_code(f.name, f.meaning)
        if f.kind == "bool":
            components.append({"code": ccode, "valueBoolean": bool(v)})
        elif f.kind == "str":
            if v:
                components.append({"code": ccode, "valueString": str(v)})
        else:
            components.append({"code": ccode, "valueQuantity": _quantity(float(v), f.unit)})
    if exercise in LOINC_CODES:
        loinc, display = LOINC_CODES[exercise]
        code: dict[str, Any] = {
            "coding": [{"system": LOINC, "code": loinc, "display": display}],
            "text": words,
        }
    else:
        code = _project_code(f"trial.{exercise}", words)
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _fid(f"trial-{r.get('trial', '')}"),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "exam"}]}],
        "code": code,
        "subject": {"reference": f"Patient/{patient}"},
        "effectivePeriod": {
            "start": iso(float(r["time_s"])),
            "end": iso(float(r["time_s"]) + float(r.get("duration_s") or 0.0)),
        },
        "method": {
            "coding": [{"system": CODE_SYSTEM, "code": f"algorithm.{r.get('algorithm_version')}"}],
            "text": f"poise {r.get('algorithm_version')}",
        },
        "device": _device(exercise),
        "bodySite": _body_site(exercise, str(r.get("side", "none"))),
        "component": components,
    }
    if r.get("condition") not in (None, "", "none"):
        obs["note"] = [{"text": f"condition: {r['condition']}"}]
    if exercise == "tug" and isinstance(r.get("tug_s"), int | float):
        obs["valueQuantity"] = _quantity(float(r["tug_s"]), "s")
    elif exercise == "chair_stand_30s" and isinstance(r.get("stands"), int):
        obs["valueQuantity"] = {
            "value": r["stands"],
            "unit": "/30 s",
            "system": UCUM,
            "code": "{#}/(30.s)",
        }
    del kind
    return obs


def session_observations(patient: str, s: dict[str, Any]) -> list[dict[str, Any]]:
    m = MEASUREMENTS["session_summary"]
    start = iso(float(s["time_s"]))
    sid = str(s.get("session", ""))
    base = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": start,
        "method": {"text": f"poise {s.get('algorithm_version')}"},
    }
    out: list[dict[str, Any]] = []
    if isinstance(s.get("pain_0_10"), int | float):
        loinc, display = LOINC_CODES["pain_0_10"]
        out.append(
            {
                **base,
                "id": _fid(f"pain-{sid}"),
                "category": [{"coding": [{"system": CATEGORY, "code": "survey"}]}],
                "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
                "valueQuantity": {
                    "value": float(s["pain_0_10"]),
                    "unit": "{score}",
                    "system": UCUM,
                    "code": "{score}",
                },
            }
        )
    components = []
    for f in m.fields:
        v = s.get(f.name)
        if v is None or f.name == "pain_0_10" or f.name in FHIR_SKIP or isinstance(v, bool | str):
            continue
        unit = "{score}" if f.name == "fatigue_borg" else f.unit
        q = _quantity(float(v), unit)
        if f.name == "fatigue_borg":
            q["code"] = "{score}"
        components.append({"code": _project_code(f.name, f.meaning), "valueQuantity": q})
    out.append(
        {
            **base,
            "id": _fid(f"session-{sid}"),
            "category": [{"coding": [{"system": CATEGORY, "code": "activity"}]}],
            "code": _project_code("session", "exercise session summary"),
            "device": {"display": "body-worn inertial sensors"},
            "component": components,
        }
    )
    return out


def fhir_bundle(data: PatientData) -> dict[str, Any]:
    check_id("patient", data.patient)
    entries = [trial_observation(data.patient, r) for r in data.trials]
    for s in data.sessions:
        entries += session_observations(data.patient, s)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:poise:Observation:{e['id']}", "resource": e} for e in entries],
    }


def validate_bundle(bundle: dict[str, Any]) -> int:
    """Validate with the FHIR R4B models of fhir.resources; returns the number of
    Observations. Raises pydantic's ValidationError naming the path on failure."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation

    Bundle.model_validate(bundle)
    for e in bundle["entry"]:
        Observation.model_validate(e["resource"])
    return len(bundle["entry"])


def export(
    data: PatientData,
    fmt: str,
    out: Path,
    raw: Iterable[tuple[str, list[dict[str, Any]]]] = (),
) -> list[Path]:
    """Write the export; returns the files written. csv and parquet write into the folder
    ``out``; fhir writes the Bundle to the file ``out`` (JSON)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {list(FORMATS)}, found {fmt!r}")
    if fmt == "fhir":
        bundle = fhir_bundle(data)
        validate_bundle(bundle)
        out.parent.mkdir(parents=True, exist_ok=True)
        private(out).write_text(json.dumps(bundle, indent=1), encoding="utf-8")
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tables = table_rows(data)
    for name, measurement in (("trials", "trial_summary"), ("sessions", "session_summary")):
        path = out / f"{data.patient}-{name}.{fmt}"
        if fmt == "csv":
            write_csv(tables[name], path)
        else:
            write_parquet(tables[name], path, measurement)
        written.append(path)
    by_sensor: dict[str, list[dict[str, Any]]] = {}
    for sensor, rows in raw:
        by_sensor.setdefault(sensor, []).extend(rows)
    for sensor, rows in sorted(by_sensor.items()):
        path = out / f"{data.patient}-raw-{sensor}.{fmt}"
        if fmt == "csv":
            write_csv(rows, path)
        else:
            write_parquet(rows, path, None)
        written.append(path)
    return written


def code_system() -> dict[str, Any]:
    """The project's CodeSystem (docs/fhir/CodeSystem-poise-observation.json is this,
    regenerated by ``python -m poise.export``): every code the FHIR export uses besides
    LOINC."""
    from poise.worker.trials import KIND_VERSIONS, SESSION_VERSION

    concepts: dict[str, str] = {}
    for measurement in ("trial_summary", "session_summary"):
        for f in MEASUREMENTS[measurement].fields:
            if f.name in FHIR_SKIP:
                continue
            unit = f" ({f.unit})" if f.unit else ""
            concepts.setdefault(f.name, f"{f.meaning}{unit}")
    for exercise, (_kind, words) in sorted(EXERCISES.items()):
        if exercise not in LOINC_CODES:
            concepts[f"trial.{exercise}"] = words
    concepts["session"] = "exercise session summary"
    for version in sorted({*KIND_VERSIONS.values(), SESSION_VERSION}):
        concepts[f"algorithm.{version}"] = f"computed by poise algorithm {version}"
    return {
        "resourceType": "CodeSystem",
        "id": "poise-observation",
        "url": CODE_SYSTEM,
        "name": "PoiseObservation",
        "title": "poise observation codes",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "description": "Codes of the poise FHIR export for measurements that have no LOINC "
        "code: trial types, metrics (components) and algorithm versions (method).",
        "concept": [{"code": c, "display": d} for c, d in concepts.items()],
    }


if __name__ == "__main__":
    import sys

    sys.stdout.write(json.dumps(code_system(), indent=1, ensure_ascii=False) + "\n")
