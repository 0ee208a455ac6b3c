"""Derived data: the contract between the worker, the dashboards, the reports and the
console. One table per measurement: its tags and its fields, each with its unit.

Stored in InfluxDB under the ``derived`` retention policy. Every point carries the tags
``site``, ``patient`` and ``algorithm_version``; a change of a field's meaning bumps the
algorithm version of the code that writes it. docs/derived-data.md is generated from these
tables (``python -m poise.core.derived`` prints it), so the docs cannot drift.

Times: a live point is stamped with the time of the last sample it covers; a trial or
session summary with the trial's or session's start (so a recomputation with a newer
algorithm version lands beside it, told apart by the ``algorithm_version`` tag).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

BASE_TAGS = ("site", "patient", "algorithm_version")


@dataclass(frozen=True)
class FieldDef:
    name: str
    kind: str  # "float", "int", "bool", "str"
    unit: str  # "" for none
    meaning: str


@dataclass(frozen=True)
class MeasurementDef:
    name: str
    tags: tuple[str, ...]  # besides BASE_TAGS
    fields: tuple[FieldDef, ...]
    cadence: str
    meaning: str

    def field(self, name: str) -> FieldDef:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def all_tags(self) -> tuple[str, ...]:
        return (*BASE_TAGS, *self.tags)


def _f(name: str, kind: str, unit: str, meaning: str) -> FieldDef:
    return FieldDef(name, kind, unit, meaning)


SWAY_FIELDS = (
    _f("rms_m_s2", "float", "m/s²", "RMS of the horizontal (AP, ML) trunk acceleration"),
    _f("rms_ap_m_s2", "float", "m/s²", "RMS, anterior-posterior"),
    _f("rms_ml_m_s2", "float", "m/s²", "RMS, medio-lateral"),
    _f("mean_distance_m_s2", "float", "m/s²", "mean distance from the centre"),
    _f("range_ap_m_s2", "float", "m/s²", "max - min, AP"),
    _f("range_ml_m_s2", "float", "m/s²", "max - min, ML"),
    _f("path_length_m_s2", "float", "m/s²", "sum of the sample-to-sample distances"),
    _f("path_rate_m_s3", "float", "m/s³", "path length / duration"),
    _f("jerk_m2_s6", "float", "m²/s⁶", "half the mean squared time derivative"),
    _f("ellipse_area_95_m2_s4", "float", "(m/s²)²", "95 % prediction ellipse area"),
    _f("centroidal_frequency_ap_hz", "float", "Hz", "centroidal frequency, AP"),
    _f("centroidal_frequency_ml_hz", "float", "Hz", "centroidal frequency, ML"),
    _f("frequency_dispersion_ap", "float", "", "frequency dispersion, AP (0 for a sine)"),
    _f("frequency_dispersion_ml", "float", "", "frequency dispersion, ML"),
    _f("f50_ap_hz", "float", "Hz", "median frequency, AP"),
    _f("f50_ml_hz", "float", "Hz", "median frequency, ML"),
    _f("f95_ap_hz", "float", "Hz", "95 % power frequency, AP"),
    _f("f95_ml_hz", "float", "Hz", "95 % power frequency, ML"),
)
# the sway metric names of analysis.sway (no units) -> stored field names
SWAY_METRIC_FIELDS = {
    "rms": "rms_m_s2",
    "rms_ap": "rms_ap_m_s2",
    "rms_ml": "rms_ml_m_s2",
    "mean_distance": "mean_distance_m_s2",
    "range_ap": "range_ap_m_s2",
    "range_ml": "range_ml_m_s2",
    "path_length": "path_length_m_s2",
    "path_rate": "path_rate_m_s3",
    "jerk": "jerk_m2_s6",
    "ellipse_area_95": "ellipse_area_95_m2_s4",
    "centroidal_frequency_ap": "centroidal_frequency_ap_hz",
    "centroidal_frequency_ml": "centroidal_frequency_ml_hz",
    "frequency_dispersion_ap": "frequency_dispersion_ap",
    "frequency_dispersion_ml": "frequency_dispersion_ml",
    "f50_ap": "f50_ap_hz",
    "f50_ml": "f50_ml_hz",
    "f95_ap": "f95_ap_hz",
    "f95_ml": "f95_ml_hz",
}

TRIAL_TAGS = ("session", "trial", "exercise", "condition", "side")

MEASUREMENTS: dict[str, MeasurementDef] = {
    m.name: m
    for m in (
        MeasurementDef(
            "sway_live",
            TRIAL_TAGS,
            (
                *SWAY_FIELDS,
                _f("window_s", "float", "s", "length of the window scored"),
                _f(
                    "baseline_rms_m_s2",
                    "float",
                    "m/s²",
                    "the patient's own baseline RMS in this condition, when known",
                ),
                _f(
                    "mdc_rms_m_s2",
                    "float",
                    "m/s²",
                    "minimal detectable change of the RMS used for the band",
                ),
            ),
            "1 Hz during balance trials (10 s sliding window)",
            "live sway of the lower-back sensor",
        ),
        MeasurementDef(
            "sway_trace",
            TRIAL_TAGS,
            (
                _f("ap_m_s2", "float", "m/s²", "filtered AP trunk acceleration"),
                _f("ml_m_s2", "float", "m/s²", "filtered ML trunk acceleration"),
            ),
            "10 Hz during balance trials",
            "the live sway trace (decimated) for the console and dashboards",
        ),
        MeasurementDef(
            "joint_live",
            (*TRIAL_TAGS, "joint"),
            (
                _f("angle_deg", "float", "deg", "joint angle, flexion positive, 0 at neutral"),
                _f("axis_confidence", "float", "", "0..1: how well the flexion axis is known"),
                _f("rep_count", "int", "", "repetitions so far in this trial"),
                _f("target_rom_deg", "float", "deg", "the prescription's target ROM, when any"),
                _f("max_rom_deg", "float", "deg", "the prescription's maximum ROM, when any"),
            ),
            "20 Hz during ROM trials",
            "live joint angle",
        ),
        MeasurementDef(
            "repetition",
            (*TRIAL_TAGS, "joint"),
            (
                _f("index", "int", "", "1-based repetition number in the trial"),
                _f("start_s", "float", "s", "start, seconds since the trial started"),
                _f("end_s", "float", "s", "end, seconds since the trial started"),
                _f("duration_s", "float", "s", "end - start"),
                _f("peak_deg", "float", "deg", "peak angle"),
                _f("rom_deg", "float", "deg", "peak minus the preceding trough"),
                _f("correct", "bool", "", "meets the prescription (absent without one)"),
                _f("reasons", "str", "", "comma-separated: too_small, past_limit, too_fast"),
            ),
            "one point per repetition, at its peak",
            "each repetition of a ROM exercise with its verdict",
        ),
        MeasurementDef(
            "intensity_live",
            ("session", "placement"),
            (
                _f("enmo_mg", "float", "mg", "ENMO, mean over the 5 s epoch"),
                _f("mad_mg", "float", "mg", "MAD of the resultant over the epoch"),
                _f("zone", "str", "", "sedentary, light, moderate or vigorous"),
                _f("zone_index", "int", "", "0 sedentary .. 3 vigorous"),
                _f("hr_bpm", "float", "1/min", "mean heart rate over the epoch, with a strap"),
            ),
            "one point per 5 s epoch during a session",
            "session intensity",
        ),
        MeasurementDef(
            "sensor_status",
            ("sensor", "gateway"),
            (
                _f("online", "bool", "", "the sensor streams"),
                _f("rate_hz", "float", "Hz", "effective sample rate"),
                _f("lost_pct", "float", "%", "samples lost since connect"),
                _f("jitter_ms", "float", "ms", "notification arrival jitter"),
                _f("battery_pct", "float", "%", "battery level, when the device reports it"),
                _f("rssi_dbm", "float", "dBm", "signal strength at the gateway"),
                _f("silent_s", "float", "s", "seconds since the last sample"),
            ),
            "every status message of a gateway (a few seconds)",
            "device health",
        ),
        MeasurementDef(
            "trial_summary",
            TRIAL_TAGS,
            (
                _f("kind", "str", "", "sway, four_stage, chair_stand, tug or rom"),
                _f("duration_s", "float", "s", "trial duration"),
                *SWAY_FIELDS,
                _f("sample_loss_pct", "float", "%", "samples lost in the trial"),
                _f("flags", "str", "", "comma-separated quality flags"),
                _f("hold_s", "float", "s", "STEADI 4-stage: time the stance was held"),
                _f("passed", "bool", "", "STEADI 4-stage: held 10 s"),
                _f("stands", "int", "", "30 s chair stand: full stands"),
                _f("below_norm", "bool", "", "30 s chair stand: below the CDC age/sex norm"),
                _f("tug_s", "float", "s", "Timed Up and Go duration"),
                _f("tug_flag", "bool", "", "TUG at or above 12 s"),
                _f("rom_deg", "float", "deg", "ROM trial: largest repetition ROM"),
                _f("peak_deg", "float", "deg", "ROM trial: largest angle"),
                _f("rep_count", "int", "", "ROM trial: repetitions"),
                _f("correct_count", "int", "", "ROM trial: repetitions meeting the prescription"),
                _f("target_reps", "int", "", "ROM trial: prescribed repetitions"),
                _f("target_rom_deg", "float", "deg", "ROM trial: prescribed target ROM"),
                _f("max_rom_deg", "float", "deg", "ROM trial: prescribed maximum angle"),
                _f(
                    "sensors",
                    "str",
                    "",
                    "role=sensor pairs scored (trunk, proximal, distal, segment), for rescoring",
                ),
            ),
            "one point per trial, at its start",
            "the result of one trial or clinical test",
        ),
        MeasurementDef(
            "session_summary",
            ("session",),
            (
                _f("duration_s", "float", "s", "session duration"),
                _f("active_s", "float", "s", "time in epochs of light intensity or above"),
                _f("sedentary_s", "float", "s", "time in the sedentary zone"),
                _f("light_s", "float", "s", "time in the light zone"),
                _f("moderate_s", "float", "s", "time in the moderate zone"),
                _f("vigorous_s", "float", "s", "time in the vigorous zone"),
                _f("enmo_mean_mg", "float", "mg", "mean ENMO"),
                _f("mad_mean_mg", "float", "mg", "mean MAD"),
                _f("enmo_peak_1min_mg", "float", "mg", "highest 1-minute mean ENMO"),
                _f("load", "float", "", "acceleration load: minutes x zone weight"),
                _f("trimp", "float", "", "Edwards TRIMP, with a heart-rate strap"),
                _f("trials", "int", "", "trials in the session"),
                _f("reps", "int", "", "repetitions in the session"),
                _f("adherence_pct", "float", "%", "prescribed exercises done / prescribed"),
                _f("pain_0_10", "float", "", "pain reported (0-10)"),
                _f("fatigue_borg", "float", "", "fatigue reported (Borg 6-20)"),
                _f("intensity_sensor", "str", "", "the sensor intensity was measured with"),
            ),
            "one point per session, at its start",
            "the summary of one session",
        ),
        MeasurementDef(
            "alert",
            ("session", "trial", "kind"),
            (
                _f("active", "bool", "", "the episode is still going on"),
                _f("end_ns", "int", "ns", "end of the episode (Unix epoch), once it ended"),
                _f("value", "float", "", "the value that raised it (unit in 'unit')"),
                _f("threshold", "float", "", "the limit it crossed"),
                _f("unit", "str", "", "unit of value and threshold"),
                _f("sensor", "str", "", "the sensor concerned, when any"),
                _f("evidence", "str", "", "JSON with the evidence (numbers only, no free text)"),
            ),
            "one point per alert episode, at its onset (rewritten when it ends)",
            "something that needs a human now",
        ),
    )
}

ALERT_KINDS = (
    "loss_of_balance",  # during a balance trial
    "sway_above_baseline",  # live sway above the patient's own baseline by more than the MDC
    "sensor_silent",
    "battery_low",
    "rom_past_limit",  # a repetition past the prescribed maximum ROM
    "pain_above_limit",  # pain reported above the prescription's limit
)


# --- the same points on MQTT: poise/v1/metrics/{site}/{patient} and poise/v1/alerts/... ---
# One message carries a batch of points of one patient:
#   {"v": 1, "points": [{"measurement": "sway_live", "t_ns": 1800000000000000000,
#                        "tags": {"trial": "t-1", ...}, "fields": {"rms_m_s2": 0.05, ...}}]}
# Tags and fields are those of the tables above (site and patient come from the topic).
MESSAGE_VERSION = 1


def message(points: list[dict[str, object]]) -> bytes:
    """Encode points (dicts with measurement, t_ns, tags, fields) as one MQTT payload."""
    import json

    return json.dumps({"v": MESSAGE_VERSION, "points": points}, separators=(",", ":")).encode()


def parse_message(payload: bytes) -> list[dict[str, object]]:
    """Decode a metrics/alerts payload; ValueError on anything not of this shape."""
    import json

    doc = json.loads(payload)
    if not isinstance(doc, dict) or doc.get("v") != MESSAGE_VERSION:
        raise ValueError("not a poise v1 metrics message")
    points = doc.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, dict)
        and p.get("measurement") in MEASUREMENTS
        and isinstance(p.get("t_ns"), int)
        for p in points
    ):
        raise ValueError("points must be a list of {measurement, t_ns, tags, fields}")
    return points


def markdown() -> str:
    """docs/derived-data.md, from the tables above."""
    out = [
        "# Derived data",
        "",
        "Generated by `python -m poise.core.derived` from `poise/core/derived.py`; do not edit.",
        "",
        "Retention policy `derived`. Every point carries the tags "
        + ", ".join(f"`{t}`" for t in BASE_TAGS)
        + ". A change of a field's meaning bumps the algorithm version.",
        "",
    ]
    for m in MEASUREMENTS.values():
        out += [f"## `{m.name}`", "", f"{m.meaning}. Written {m.cadence}.", ""]
        if m.tags:
            out += [
                "Tags besides the common ones: " + ", ".join(f"`{t}`" for t in m.tags) + ".",
                "",
            ]
        out += ["| field | type | unit | meaning |", "|---|---|---|---|"]
        out += [f"| `{f.name}` | {f.kind} | {f.unit or '–'} | {f.meaning} |" for f in m.fields]
        out.append("")
    out += ["## Alert kinds", ""] + [f"- `{k}`" for k in ALERT_KINDS] + [""]
    out += [
        "## On MQTT",
        "",
        "The worker publishes the same points on `poise/v1/metrics/{site}/{patient}` (alerts on "
        "`poise/v1/alerts/{site}/{patient}`), a batch per message:",
        "",
        "```json",
        '{"v": 1, "points": [{"measurement": "sway_live", "t_ns": 1800000000000000000,',
        '                     "tags": {"trial": "t-1"}, "fields": {"rms_m_s2": 0.05}}]}',
        "```",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown())
