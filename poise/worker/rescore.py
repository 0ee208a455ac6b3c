"""``poise rescore``: a patient's trial and session summaries recomputed from the raw samples
in InfluxDB with the current algorithm versions, written beside the old ones.

Everything a summary needs is in the stored summary itself: the trial's tags (session,
trial, exercise, condition, side), its start (the point's time) and duration, the sensors it
was scored from (``sensors``) and the prescription values it was judged against; a session
summary names its intensity sensor and keeps pain, fatigue and adherence, which come from
the clinical records and not from the samples."""

from __future__ import annotations

from typing import Any

from poise.core import prescription as rx
from poise.core.clinical import ROM_JOINTS
from poise.core.ids import check_id
from poise.core.influx import DERIVED_RP, InfluxV1
from poise.worker import rawdata
from poise.worker.service import point_text
from poise.worker.trials import (
    KIND_VERSIONS,
    SESSION_VERSION,
    Placement,
    Point,
    SessionInfo,
    TrialInfo,
    summarize_session,
    summarize_trial,
)

SEGMENT_OF_ROLE = {"trunk": "lower_back"}


def _rows(influx: InfluxV1, q: str) -> list[dict[str, Any]]:
    out = []
    for s in influx.query(q):
        for v in s.get("values", []):
            out.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return out


def _condition(tag: str) -> dict[str, str]:
    if tag in ("", "none"):
        return {}
    return dict(kv.split("=", 1) for kv in tag.split(","))


def _placements(exercise: str, side: str, sensors: str) -> list[Placement]:
    roles = dict(kv.split("=", 1) for kv in sensors.split(",") if "=" in kv)
    out = []
    for role, sensor in roles.items():
        if role == "trunk":
            out.append(Placement(sensor, "lower_back"))
            continue
        _j, _m, prox, dist = ROM_JOINTS[exercise]
        seg = prox if role == "proximal" else dist
        if seg is not None:
            out.append(Placement(sensor, seg, side))
    return out


def rescore(
    influx: InfluxV1, site: str, patient: str, since_ns: int = 0, *, ap_axis: str = "-z"
) -> dict[str, Any]:
    where = (
        f"site='{check_id('site', site)}' AND patient='{check_id('patient', patient)}' "
        f"AND time >= {int(since_ns)}"
    )
    trials = _rows(influx, f'SELECT * FROM "{DERIVED_RP}"."trial_summary" WHERE {where} GROUP BY *')
    done: dict[str, Point] = {}
    written: list[Point] = []
    for r in sorted(trials, key=lambda r: r["time"]):
        if r["trial"] in done or not r.get("sensors"):
            continue
        info = TrialInfo(
            r["session"],
            r["trial"],
            r["exercise"],
            _condition(r.get("condition", "none")),
            r.get("side", "none"),
            int(r["time"]),
            int(r["time"]) + round(float(r["duration_s"]) * 1e9),
            "aborted" in str(r.get("flags") or ""),
        )
        places = _placements(info.exercise, info.side, r["sensors"])
        presc = None
        if any(r.get(k) is not None for k in ("target_rom_deg", "max_rom_deg", "target_reps")):
            presc = rx.Prescription(
                "rx-rescore",
                (
                    rx.ExerciseRx(
                        info.exercise,
                        side=info.side,
                        target_rom_deg=r.get("target_rom_deg"),
                        max_rom_deg=r.get("max_rom_deg"),
                        reps=None if r.get("target_reps") is None else int(r["target_reps"]),
                    ),
                ),
            )
        data = {}
        for p in places:
            role = next(k for k, v in dict(
                kv.split("=", 1) for kv in r["sensors"].split(",")).items() if v == p.sensor)  # fmt: skip
            data[role] = rawdata.read_samples(
                influx, site, patient, p.sensor, info.start_ns, info.stop_ns
            )
        summary, reps, alerts = summarize_trial(info, data, places, presc, ap_axis)
        done[info.trial] = summary
        written += [summary, *reps, *alerts]
    sessions = _rows(
        influx, f'SELECT * FROM "{DERIVED_RP}"."session_summary" WHERE {where} GROUP BY *'
    )
    seen: set[str] = set()
    for r in sorted(sessions, key=lambda r: r["time"]):
        if r["session"] in seen:
            continue
        seen.add(r["session"])
        start = int(r["time"])
        stop = start + round(float(r["duration_s"]) * 1e9)
        mine = [
            {"exercise": p.tags["exercise"], "side": p.tags["side"],
             "rep_count": p.fields.get("rep_count")}
            for p in done.values() if p.tags["session"] == r["session"]
        ]  # fmt: skip
        sensor = r.get("intensity_sensor")
        samples = None if not sensor else rawdata.read_samples(
            influx, site, patient, sensor, start, stop)  # fmt: skip
        info_s = SessionInfo(r["session"], start, stop)
        cut = "lumbar" if r.get("placement") in (None, "lumbar") else str(r["placement"])
        point = summarize_session(info_s, mine, samples, cut, sensor)
        for key in ("pain_0_10", "fatigue_borg", "adherence_pct"):
            if r.get(key) is not None:
                point.fields[key] = r[key]
        written.append(point)
    if written:
        influx.write([point_text(site, patient, p) for p in written], rp=DERIVED_RP)
    return {
        "patient": patient,
        "trials": len(done),
        "sessions": len(seen),
        "points_written": len(written),
        "algorithm_versions": sorted({*KIND_VERSIONS.values(), SESSION_VERSION}),
    }
