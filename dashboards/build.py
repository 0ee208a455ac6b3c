"""The four poise dashboards, generated with grafana-foundation-sdk (Grafana 11.6 flavour).

    python -m dashboards.build            # write dashboards/generated/*.json
    python -m dashboards.build --check    # exit 1 when a committed file is out of date

Every query is a ``dashboards.influxql.Select`` on the derived measurements of
``poise.core.derived``, so a field the worker does not write fails here. Angles are shown in
degrees, accelerations in m/s² (the stored units).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import DATASOURCE, Select, tag_values
from poise.core.clinical import EXERCISES, ROM_JOINTS

GENERATED = Path(__file__).resolve().parent / "generated"
TAGS = ["poise"]

# Normal active range of motion of healthy adults (American Academy of Orthopaedic Surgeons,
# "The Clinical Measurement of Joint Motion", Greene & Heckman 1994), degrees from neutral.
NORMAL_ROM_DEG: dict[str, float] = {
    "rom/knee_flexion": 135.0,
    "rom/elbow_flexion": 150.0,
    "rom/ankle_dorsiflexion": 20.0,
    "rom/hip_flexion": 120.0,
    "rom/shoulder_flexion": 180.0,
    "rom/shoulder_abduction": 180.0,
}
TUG_FLAG_S = 12.0  # STEADI: TUG at or above 12 s suggests a fall risk
FOUR_STAGE_HOLD_S = 10.0  # STEADI: a stance held under 10 s
ZONES = ("sedentary", "light", "moderate", "vigorous")


# --- small helpers ---------------------------------------------------------------------


def _variable(name: str, label: str, query: str, *, multi: bool = False) -> db.QueryVariable:
    v = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        v = v.multi(True).include_all(True)
    return v


def _site() -> db.QueryVariable:
    return _variable("site", "Site", tag_values("sensor_status", "site"))


def _patient(measurement: str = "sensor_status") -> db.QueryVariable:
    return _variable(
        "patient", "Patient", tag_values(measurement, "patient", where_var=("site", "site"))
    )


def _scoped(measurement: str, *, patient: bool = True) -> Select:
    q = Select(measurement).where_var("site", "site")
    return q.where_var("patient", "patient") if patient else q


def _steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _dashed(*names: str) -> list[tuple[str, list[dm.DynamicConfigValue]]]:
    return [
        (n, [dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})])
        for n in names
    ]


def _ts(title: str, unit: str, description: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(2)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(True)
    )


def _override(panel: Any, pairs: list[tuple[str, list[dm.DynamicConfigValue]]]) -> Any:
    for name, props in pairs:
        panel = panel.override_by_name(name, props)
    return panel


def _zone_mappings() -> list[dm.ValueMapping]:
    colors = ("blue", "green", "orange", "red")
    return [
        dm.ValueMap(
            options={
                str(i): dm.ValueMappingResult(text=z, color=colors[i], index=i)
                for i, z in enumerate(ZONES)
            }
        )
    ]


def _annotation(
    name: str, color: str, query: Select, text_column: str, tags_column: str = ""
) -> InfluxAnnotation:
    return InfluxAnnotation(name, color, query.render(), text_column, tags_column)


class InfluxAnnotation(db.AnnotationQuery):
    """An InfluxQL annotation: the SDK's target type knows only the built-in data source."""

    def __init__(
        self, name: str, color: str, query: str, text_column: str, tags_column: str
    ) -> None:
        super().__init__()
        self.name(name).datasource(DATASOURCE).enable(True).icon_color(color)
        self._extra = {
            "target": {
                "query": query,
                "rawQuery": True,
                "refId": "Anno",
                "resultFormat": "table",
                "textColumn": text_column,
                "tagsColumn": tags_column,
                "limit": 100,
                "matchAny": False,
                "tags": [],
                "type": "dashboard",
            }
        }

    def extra(self) -> dict[str, Any]:
        return self._extra


def _finish(builder: db.Dashboard, annotations: list[InfluxAnnotation]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # The SDK writes the interval-variable settings (auto, auto_count, auto_min) on every
    # variable; Grafana 11.6's dashboard type has them on none, and they mean nothing on a
    # query variable.
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    built_in = doc.get("annotations", {}).get("list", [])
    for a in annotations:
        entry = json.loads(json.dumps(a.build(), cls=JSONEncoder))
        entry.update(a.extra())
        built_in.append(entry)
    doc["annotations"] = {"list": built_in}
    return doc


def _base(uid: str, title: str, description: str, time_from: str, refresh: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .timezone("browser")
        .time(time_from, "now")
        .refresh(refresh)
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .timepicker(db.TimePicker().refresh_intervals(["1s", "5s", "10s", "30s", "1m", "5m"]))
        .link(
            db.DashboardLink("poise")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(False)
        )
    )


# --- Live session ----------------------------------------------------------------------


def live_session() -> dict[str, Any]:
    d = _base(
        "poise-live-session",
        "poise · Live session",
        "One patient during a session: sway trace and sway RMS against the patient's own "
        "baseline band, joint angle with target and limit, repetitions, intensity, sensors.",
        "now-5m",
        "1s",
    ).variables([_site(), _patient()])

    trace = Select("sway_trace").where_var("site", "site").where_var("patient", "patient")
    trace = trace.field("ap_m_s2", "mean", "AP").field("ml_m_s2", "mean", "ML").group_by_time()
    d = d.with_panel(
        _ts(
            "Sway trace (AP, ML)",
            "m/s²",
            "Filtered trunk acceleration of the lower-back sensor, anterior-posterior and "
            "medio-lateral, 10 Hz.",
        )
        .time_from("30s")
        .with_target(trace.target("A"))
        .span(12)
        .height(8)
    )

    rms = (
        _scoped("sway_live")
        .field("rms_m_s2", "mean", "sway RMS")
        .field("baseline_rms_m_s2", "mean", "baseline")
        .field_sum("baseline_rms_m_s2", "mdc_rms_m_s2", 1, "mean", "baseline + MDC")
        .field_sum("baseline_rms_m_s2", "mdc_rms_m_s2", -1, "mean", "baseline - MDC")
        .group_by_time()
    )
    band = [
        ("baseline + MDC", [dm.DynamicConfigValue("custom.fillBelowTo", "baseline - MDC")]),
        ("baseline + MDC", [dm.DynamicConfigValue("custom.lineWidth", 0)]),
        ("baseline - MDC", [dm.DynamicConfigValue("custom.lineWidth", 0)]),
        *_dashed("baseline"),
    ]
    d = d.with_panel(
        _override(
            _ts(
                "Sway RMS against the baseline band",
                "m/s²",
                "RMS of the horizontal trunk acceleration over a 10 s window, 1 Hz. The band "
                "is the patient's baseline in this condition ± its minimal detectable change: "
                "above the band is a real worsening, inside it is noise.",
            )
            .fill_opacity(0)
            .with_target(rms.target("A")),
            band,
        )
        .span(12)
        .height(8)
    )

    joint = (
        _scoped("joint_live")
        .field("angle_deg", "mean", "angle")
        .field("target_rom_deg", "last", "target")
        .field("max_rom_deg", "last", "limit")
        .group_by_time()
        .group_by("joint")
    )
    d = d.with_panel(
        _override(
            _ts(
                "Joint angle, target and limit",
                "degree",
                "Joint angle (flexion positive, 0 at neutral) with the prescription's target "
                "ROM and maximum ROM, per joint.",
            ).with_target(joint.target("A", alias="$tag_joint $col")),
            [],
        )
        .override_by_regexp(
            ".* target$",
            [
                dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                dm.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": "green"}),
            ],
        )
        .override_by_regexp(
            ".* limit$",
            [
                dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                dm.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": "red"}),
            ],
        )
        .span(12)
        .height(8)
    )

    reps = _scoped("joint_live").field("rep_count", "last", "reps").group_by("joint")
    correct = (
        _scoped("repetition")
        .where_field("correct", "=", True)
        .field("index", "count", "correct")
        .group_by("joint")
    )
    d = d.with_panel(
        stat.Panel()
        .title("Repetitions")
        .description("Repetitions so far in the trial, and how many met the prescription.")
        .datasource(DATASOURCE)
        .with_target(reps.target("A", alias="$tag_joint reps"))
        .with_target(correct.target("B", alias="$tag_joint correct"))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .decimals(0)
        .span(6)
        .height(8)
    )

    zone = (
        _scoped("intensity_live")
        .field("zone_index", "last", "zone")
        .group_by_time()
        .group_by("placement")
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Intensity zone")
        .description("Intensity zone of each 5 s epoch, from ENMO (sedentary .. vigorous).")
        .datasource(DATASOURCE)
        .with_target(zone.target("A", alias="$tag_placement"))
        .mappings(_zone_mappings())
        .span(6)
        .height(8)
    )

    sensors = (
        _scoped("sensor_status")
        .field("online", "last", "online")
        .field("rate_hz", "last", "rate_hz")
        .field("lost_pct", "last", "lost_pct")
        .field("battery_pct", "last", "battery_pct")
        .field("rssi_dbm", "last", "rssi_dbm")
        .field("silent_s", "last", "silent_s")
        .group_by("sensor")
    )
    d = d.with_panel(
        table.Panel()
        .title("Sensors")
        .description("The patient's sensors: streaming, rate, loss, battery, signal.")
        .datasource(DATASOURCE)
        .with_target(sensors.target("A", fmt="table"))
        .with_transformation(dm.DataTransformerConfig("merge", options={}))
        .with_transformation(_exclude("Time"))
        .span(12)
        .height(7)
    )

    alerts = (
        _scoped("alert")
        .where_field("active", "=", True)
        .field("value", "last", "value")
        .field("threshold", "last", "threshold")
        .field("unit", "last", "unit")
        .group_by("kind")
    )
    d = d.with_panel(
        table.Panel()
        .title("Open alerts")
        .description("Alert episodes of this patient still going on.")
        .datasource(DATASOURCE)
        .with_target(alerts.target("A", fmt="table"))
        .with_transformation(dm.DataTransformerConfig("merge", options={}))
        .span(12)
        .height(7)
    )

    trials = (
        _scoped("trial_summary").field("kind", alias="kind").field("duration_s", alias="duration_s")
    )
    alert_marks = _scoped("alert").field("value", alias="value").group_by("kind")
    return _finish(
        d,
        [
            _annotation("Trials", "blue", trials, "kind"),
            _annotation("Alerts", "red", alert_marks, "value", "kind"),
        ],
    )


def _exclude(*names: str) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(
        "organize", options={"excludeByName": dict.fromkeys(names, True)}
    )


# --- Clinic overview -------------------------------------------------------------------


def clinic_overview() -> dict[str, Any]:
    d = _base(
        "poise-clinic-overview",
        "poise · Clinic overview",
        "Every active patient of a site on one screen, those with open alerts first.",
        "now-15m",
        "5s",
    ).variables([_site()])

    def site(measurement: str) -> Select:
        return Select(measurement).where_var("site", "site")

    online = (
        Select.over(
            site("sensor_status").field("online", "last", "online").group_by("patient", "sensor")
        )
        .where_field("online", "=", True)
        .field("online", "count", "sensors online")
        .group_by("patient")
    )
    sway = site("sway_live").field("rms_m_s2", "last", "sway RMS").group_by("patient", "exercise")
    reps = site("joint_live").field("rep_count", "last", "reps").group_by("patient", "exercise")
    alerts = (
        site("alert")
        .where_field("active", "=", True)
        .field("value", "count", "open alerts")
        .group_by("patient")
    )
    battery = (
        Select.over(
            site("sensor_status")
            .field("battery_pct", "last", "battery_pct")
            .group_by("patient", "sensor")
        )
        .field("battery_pct", "min", "lowest battery")
        .group_by("patient")
    )
    panel = (
        table.Panel()
        .title("Active patients")
        .description(
            "One row per patient seen in the time range: sensors streaming (their last status "
            "says online; a sensor gone silent also raises an alert), the exercise, live sway RMS (m/s²), repetitions, open alerts and the lowest "
            "battery. Sorted by open alerts, most first."
        )
        .datasource(DATASOURCE)
        .targets(
            [
                online.target("A", fmt="table"),
                sway.target("B", fmt="table"),
                reps.target("C", fmt="table"),
                alerts.target("D", fmt="table"),
                battery.target("E", fmt="table"),
            ]
        )
        .with_transformation(dm.DataTransformerConfig("merge", options={}))
        .with_transformation(_exclude("Time"))
        .with_transformation(
            dm.DataTransformerConfig(
                "sortBy", options={"sort": [{"field": "open alerts", "desc": True}]}
            )
        )
        .override_by_name(
            "patient",
            [
                dm.DynamicConfigValue(
                    "links",
                    [
                        {
                            "title": "Live session of ${__value.text}",
                            "url": "/d/poise-live-session?var-site=${site}"
                            "&var-patient=${__value.raw}",
                        }
                    ],
                )
            ],
        )
        .override_by_name("lowest battery", [dm.DynamicConfigValue("unit", "percent")])
        .override_by_name("sway RMS", [dm.DynamicConfigValue("unit", "m/s²")])
        .span(24)
        .height(16)
    )
    return _finish(d.with_panel(panel), [])


# --- Patient progress ------------------------------------------------------------------


def patient_progress() -> dict[str, Any]:
    d = _base(
        "poise-patient-progress",
        "poise · Patient progress",
        "One patient over weeks: sway per condition with the MDC band, ROM per joint against "
        "target and normal range, STEADI tests with their thresholds, intensity, adherence, "
        "pain and fatigue.",
        "now-90d",
        "",
    ).variables(
        [
            _site(),
            _patient("trial_summary"),
            _variable(
                "condition",
                "Condition",
                tag_values("trial_summary", "condition", where_var=("patient", "patient")),
                multi=True,
            ),
        ]
    )

    def trials(kind: str) -> Select:
        return _scoped("trial_summary").where_field("kind", "=", kind)

    sway = (
        trials("sway")
        .where_var("condition", "condition")
        .field("rms_m_s2", "mean", "sway RMS")
        .group_by_time("1d")
        .group_by("condition")
    )
    band = (
        _scoped("sway_live")
        .where_var("condition", "condition")
        .field_sum("baseline_rms_m_s2", "mdc_rms_m_s2", 1, "last", "baseline + MDC")
        .field_sum("baseline_rms_m_s2", "mdc_rms_m_s2", -1, "last", "baseline - MDC")
        .group_by_time("1d")
        .group_by("condition")
    )
    d = d.with_panel(
        _ts(
            "Sway per condition, with the MDC band",
            "m/s²",
            "Daily mean of the trial sway RMS, per condition (eyes, surface). The band is the "
            "patient's baseline ± the minimal detectable change: only a move out of it is a "
            "real change.",
        )
        .show_points(cm.VisibilityMode.ALWAYS)
        .with_target(sway.target("A", alias="$tag_condition $col"))
        .with_target(band.target("B", alias="$tag_condition $col"))
        .override_by_regexp(
            ".* baseline \\+ MDC$",
            [
                dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                dm.DynamicConfigValue("custom.lineWidth", 1),
            ],
        )
        .override_by_regexp(
            ".* baseline - MDC$",
            [
                dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                dm.DynamicConfigValue("custom.lineWidth", 1),
            ],
        )
        .span(24)
        .height(8)
    )

    for exercise, (joint, motion, _, _) in ROM_JOINTS.items():
        rom = (
            trials("rom")
            .where_tag("exercise", exercise)
            .field("rom_deg", "max", "ROM")
            .field("target_rom_deg", "last", "target")
            .group_by_time("1d")
            .group_by("side")
        )
        normal = NORMAL_ROM_DEG[exercise]
        d = d.with_panel(
            _ts(
                f"ROM: {joint} {motion}",
                "degree",
                f"Largest repetition ROM per day ({EXERCISES[exercise][1]}), per side, with the "
                f"prescribed target (dashed) and the normal adult range up to {normal:g}° "
                "(AAOS) as the green threshold line.",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(rom.target("A", alias="$tag_side $col"))
            .thresholds(_steps((None, "transparent"), (normal, "green")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
            )
            .override_by_regexp(
                ".* target$",
                [dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})],
            )
            .min(0)
            .span(8)
            .height(7)
        )

    stands = trials("chair_stand").field("stands", "max", "stands").group_by_time("1d")
    tug = trials("tug").field("tug_s", "min", "TUG").group_by_time("1d")
    hold = (
        trials("four_stage").field("hold_s", "max", "hold").group_by_time("1d").group_by("exercise")
    )
    d = (
        d.with_panel(
            _ts(
                "30 s chair stand",
                "none",
                "Full stands in 30 s. The CDC's age/sex norm differs per patient: a result "
                "below it is flagged in the trial (below_norm) and in the report.",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(stands.target("A"))
            .decimals(0)
            .min(0)
            .span(8)
            .height(7)
        )
        .with_panel(
            _ts(
                "Timed Up and Go",
                "s",
                f"TUG duration; at or above {TUG_FLAG_S:g} s (red line) suggests a fall risk "
                "(STEADI).",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(tug.target("A"))
            .thresholds(_steps((None, "green"), (TUG_FLAG_S, "red")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
            )
            .min(0)
            .span(8)
            .height(7)
        )
        .with_panel(
            _ts(
                "STEADI 4-stage balance: time held",
                "s",
                f"Seconds each stance was held; under {FOUR_STAGE_HOLD_S:g} s (red) the stage "
                "is failed (STEADI).",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(hold.target("A", alias="$tag_exercise"))
            .thresholds(_steps((None, "red"), (FOUR_STAGE_HOLD_S, "green")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
            )
            .min(0)
            .max(FOUR_STAGE_HOLD_S * 1.5)
            .span(8)
            .height(7)
        )
    )

    sessions = _scoped("session_summary")
    intensity = (
        Select("session_summary")
        .where_var("site", "site")
        .where_var("patient", "patient")
        .field("active_s", "sum", "active")
        .field("moderate_s", "sum", "moderate")
        .field("vigorous_s", "sum", "vigorous")
        .group_by_time("1d")
    )
    adherence = sessions.field("adherence_pct", "mean", "adherence").group_by_time("1d")
    feel = (
        _scoped("session_summary")
        .field("pain_0_10", "max", "pain (0-10)")
        .field("fatigue_borg", "max", "fatigue (Borg 6-20)")
        .group_by_time("1d")
    )
    return _finish(
        d.with_panel(
            _ts(
                "Intensity per day",
                "s",
                "Seconds per day at light intensity or above (active), moderate and vigorous, "
                "from the sessions' ENMO epochs.",
            )
            .draw_style(cm.GraphDrawStyle.BARS)
            .fill_opacity(60)
            .with_target(intensity.target("A"))
            .span(8)
            .height(7)
        )
        .with_panel(
            _ts(
                "Adherence",
                "percent",
                "Prescribed exercises done, per cent of those prescribed, daily mean.",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(adherence.target("A"))
            .min(0)
            .max(100)
            .span(8)
            .height(7)
        )
        .with_panel(
            _ts(
                "Pain and fatigue",
                "none",
                "Highest pain (0-10) and fatigue (Borg 6-20) reported per day.",
            )
            .show_points(cm.VisibilityMode.ALWAYS)
            .with_target(feel.target("A"))
            .min(0)
            .span(8)
            .height(7)
        ),
        [
            _annotation(
                "Sessions",
                "purple",
                _scoped("session_summary").field("duration_s", alias="duration_s"),
                "duration_s",
            )
        ],
    )


# --- Device health ---------------------------------------------------------------------


def device_health() -> dict[str, Any]:
    d = _base(
        "poise-device-health",
        "poise · Device health",
        "Every sensor and gateway: sample rate, loss, notification jitter, battery, signal.",
        "now-1h",
        "10s",
    ).variables(
        [
            _site(),
            _variable(
                "gateway",
                "Gateway",
                tag_values("sensor_status", "gateway", where_var=("site", "site")),
                multi=True,
            ),
            _variable(
                "sensor",
                "Sensor",
                tag_values("sensor_status", "sensor", where_var=("gateway", "gateway")),
                multi=True,
            ),
        ]
    )

    def status(fieldname: str, fn: Any = "mean") -> Select:
        return (
            Select("sensor_status")
            .where_var("site", "site")
            .where_var("gateway", "gateway")
            .where_var("sensor", "sensor")
            .field(fieldname, fn, fieldname)
            .group_by_time()
            .group_by("gateway", "sensor")
        )

    panels: list[tuple[str, str, str, str, Callable[[timeseries.Panel], timeseries.Panel]]] = [
        ("rate_hz", "Sample rate", "Hz", "Effective sample rate per sensor.", lambda p: p),
        (
            "lost_pct",
            "Samples lost",
            "percent",
            "Samples lost since the sensor connected (sequence gaps).",
            lambda p: p.thresholds(_steps((None, "green"), (1.0, "orange"), (5.0, "red"))),
        ),
        (
            "jitter_ms",
            "Notification jitter",
            "ms",
            "Spread of the BLE notification arrival times.",
            lambda p: p,
        ),
        (
            "battery_pct",
            "Battery",
            "percent",
            "Battery level, for devices that report it.",
            lambda p: p.min(0).max(100).thresholds(_steps((None, "red"), (20.0, "green"))),
        ),
        ("rssi_dbm", "Signal (RSSI)", "dBm", "Signal strength at the gateway.", lambda p: p),
        (
            "silent_s",
            "Silence",
            "s",
            "Seconds since the last sample; a streaming sensor stays near 0.",
            lambda p: p,
        ),
    ]
    for fieldname, title, unit, text, extra in panels:
        d = d.with_panel(
            extra(
                _ts(title, unit, text).with_target(
                    status(fieldname).target("A", alias="$tag_sensor @ $tag_gateway")
                )
            )
            .span(12)
            .height(7)
        )
    return _finish(d, [])


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "live-session": live_session,
    "clinic-overview": clinic_overview,
    "patient-progress": patient_progress,
    "device-health": device_health,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_alerts() -> str:
    from dashboards import alerts

    header = (
        "# Grafana alert rules mirroring the poise worker's alerts. Generated by\n"
        "# python -m dashboards.build from dashboards/alerts.py; do not edit. (JSON is YAML.)\n"
    )
    body = json.dumps(alerts.provisioning(), indent=2, sort_keys=True, ensure_ascii=False)
    return header + body + "\n"


def outputs(out: Path) -> dict[Path, Callable[[], str]]:
    """Every generated file and what makes it."""
    files: dict[Path, Callable[[], str]] = {
        out / f"{name}.json": functools.partial(render, name) for name in DASHBOARDS
    }
    files[out.parent / "provisioning" / "alerting" / "poise-alerts.yaml"] = render_alerts
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a file is out of date")
    parser.add_argument("--out", type=Path, default=GENERATED, help="the dashboards' folder")
    args = parser.parse_args(argv)
    stale = []
    for path, make in outputs(args.out).items():
        text = make()
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m dashboards.build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
