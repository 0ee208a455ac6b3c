"""A small clinic's derived data, written point by point from the tables of
``poise.core.derived``: two patients now in a session (one in a balance trial with an open
alert, one in a knee ROM trial with a silent, low-battery sensor), and 30 days of history.

The values are chosen so the dashboards' answers are known in advance (``KNOWN``)."""

from __future__ import annotations

import math

from poise.core.derived import MEASUREMENTS
from poise.core.influx import DERIVED_RP, InfluxV1, point_line

SITE = "clinic-a"
BALANCE, ROM = "p-001", "p-002"
S = 1_000_000_000
CONDITION_EO = "eyes=open,surface=firm"
CONDITION_EC = "eyes=closed,surface=foam"

KNOWN = {
    "sensors_online": {BALANCE: 1, ROM: 1},  # p-002's shank sensor went silent
    "lowest_battery": {BALANCE: 80.0, ROM: 12.0},
    "open_alerts": {BALANCE: 1},
    "sway_rms_now": 0.09,  # the last sway_live point of p-001
    "reps_now": 12,
    "correct_reps": 9,
    "tug_last_s": 10.5,
}


def _tags(patient: str, **extra: str) -> dict[str, str]:
    return {"site": SITE, "patient": patient, "algorithm_version": "1", **extra}


def _trial(patient: str, trial: str, exercise: str, condition: str, side: str) -> dict[str, str]:
    return _tags(
        patient, session=f"{patient}-s-now", trial=trial, exercise=exercise,
        condition=condition, side=side,
    )  # fmt: skip


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(
        self, measurement: str, tags: dict[str, str], fields: dict[str, object], t_ns: int
    ) -> None:
        m = MEASUREMENTS[measurement]
        unknown = set(tags) - set(m.all_tags) | set(fields) - {f.name for f in m.fields}
        assert not unknown, f"{measurement}: not in the derived tables: {unknown}"
        self.lines.append(point_line(measurement, tags, fields, t_ns))


def clinic_lines(now_ns: int) -> list[str]:
    out = Lines()
    now = now_ns // S * S

    # --- device status: every 2 s over the last 10 min ---------------------------------
    sensors = {
        BALANCE: [("s-lb-1", "lower_back", "gw-1")],
        ROM: [("s-th-2", "thigh", "gw-2"), ("s-sh-2", "shank", "gw-2")],
    }
    for patient, own in sensors.items():
        for sensor, _placement, gateway in own:
            silent_from = now - 60 * S if sensor == "s-sh-2" else None
            for k in range(300):
                t = now - (299 - k) * 2 * S
                silent = silent_from is not None and t > silent_from
                out.add(
                    "sensor_status",
                    _tags(patient, sensor=sensor, gateway=gateway),
                    {
                        "online": not silent,
                        "rate_hz": 0.0 if silent else 99.5,
                        "lost_pct": 0.2,
                        "jitter_ms": 4.0,
                        "battery_pct": 12.0 if sensor == "s-sh-2" else 80.0,
                        "rssi_dbm": -61.0,
                        "silent_s": (t - silent_from) / S if silent and silent_from else 0.1,
                    },
                    t,
                )

    # --- p-001: a balance trial over the last 60 s ---------------------------------------
    trial = _trial(BALANCE, "t-b-1", "quiet_stance", CONDITION_EC, "none")
    for k in range(600):  # 10 Hz trace
        t = now - (599 - k) * S // 10
        phase = 2 * math.pi * 0.5 * k / 10
        out.add(
            "sway_trace",
            trial,
            {"ap_m_s2": 0.1 * math.sin(phase), "ml_m_s2": 0.05 * math.cos(phase)},
            t,
        )
    for k in range(60):  # 1 Hz scores
        t = now - (59 - k) * S
        rms = 0.09 if k == 59 else 0.06 + 0.0005 * k
        out.add(
            "sway_live",
            trial,
            {"rms_m_s2": rms, "rms_ap_m_s2": rms * 0.8, "rms_ml_m_s2": rms * 0.6,
             "window_s": 10.0, "baseline_rms_m_s2": 0.05, "mdc_rms_m_s2": 0.012},
            t,
        )  # fmt: skip
    out.add(
        "alert",
        _tags(BALANCE, session=f"{BALANCE}-s-now", trial="t-b-1", kind="sway_above_baseline"),
        {"active": True, "value": 0.09, "threshold": 0.062, "unit": "m/s²", "evidence": "{}"},
        now - 5 * S,
    )

    # --- p-002: a knee ROM trial over the last 60 s --------------------------------------
    rom = _trial(ROM, "t-r-1", "rom/knee_flexion", "none", "left")
    for k in range(1200):  # 20 Hz
        t = now - (1199 - k) * S // 20
        angle = 45.0 - 45.0 * math.cos(2 * math.pi * k / 100)  # one rep every 5 s, 0..90 deg
        out.add(
            "joint_live",
            {**rom, "joint": "knee"},
            {"angle_deg": angle, "axis_confidence": 0.9, "rep_count": k // 100,
             "target_rom_deg": 90.0, "max_rom_deg": 120.0},
            t,
        )  # fmt: skip
    for i in range(1, KNOWN["reps_now"] + 1):
        t = now - 60 * S + i * 5 * S - S
        out.add(
            "repetition",
            {**rom, "joint": "knee"},
            {"index": i, "start_s": 5.0 * (i - 1), "end_s": 5.0 * i, "duration_s": 5.0,
             "peak_deg": 90.0, "rom_deg": 88.0, "correct": i <= KNOWN["correct_reps"],
             "reasons": "" if i <= KNOWN["correct_reps"] else "too_small"},
            t,
        )  # fmt: skip

    # --- intensity epochs, both patients, last 5 min ------------------------------------
    for patient, placement in ((BALANCE, "lower_back"), (ROM, "thigh")):
        for k in range(60):
            t = now - (59 - k) * 5 * S
            zone = (k // 15) % 4
            out.add(
                "intensity_live",
                _tags(patient, session=f"{patient}-s-now", placement=placement),
                {"enmo_mg": 20.0 + 40 * zone, "mad_mg": 30.0 + 40 * zone,
                 "zone": ("sedentary", "light", "moderate", "vigorous")[zone], "zone_index": zone},
                t,
            )  # fmt: skip

    # --- the current trials' summaries (at their start) ---------------------------------
    out.add(
        "trial_summary", trial, {"kind": "sway", "duration_s": 60.0, "rms_m_s2": 0.07}, now - 60 * S
    )
    out.add(
        "trial_summary", rom,
        {"kind": "rom", "duration_s": 60.0, "rom_deg": 88.0, "peak_deg": 90.0, "rep_count": 12,
         "correct_count": 9, "target_reps": 12, "target_rom_deg": 90.0},
        now - 60 * S,
    )  # fmt: skip

    # --- 30 days of history: one session a day, a few trials each -----------------------
    day = 86_400 * S
    for d in range(1, 31):
        t0 = now - d * day
        for patient in (BALANCE, ROM):
            session = f"{patient}-s-{d}"

            def tt(
                name: str,
                exercise: str,
                condition: str = "none",
                side: str = "none",
                patient: str = patient,
                session: str = session,
            ) -> dict[str, str]:
                return _tags(patient, session=session, trial=f"{session}-{name}",
                             exercise=exercise, condition=condition, side=side)  # fmt: skip

            out.add(
                "session_summary",
                _tags(patient, session=session),
                {"duration_s": 1800.0, "active_s": 900.0 + 10 * d, "sedentary_s": 900.0,
                 "light_s": 600.0, "moderate_s": 250.0, "vigorous_s": 50.0,
                 "enmo_mean_mg": 60.0, "trials": 4, "reps": 24,
                 "adherence_pct": 100.0 - d, "pain_0_10": 3.0 + (d % 3), "fatigue_borg": 11.0},
                t0,
            )  # fmt: skip
            if patient == BALANCE:
                for j, cond in enumerate((CONDITION_EO, CONDITION_EC)):
                    out.add("trial_summary", tt(f"sway{j}", "quiet_stance", cond),
                            {"kind": "sway", "duration_s": 30.0, "rms_m_s2": 0.05 + 0.02 * j + 0.0005 * d},
                            t0 + (j + 1) * 60 * S)  # fmt: skip
                out.add("trial_summary", tt("fs", "steadi_4stage/tandem"),
                        {"kind": "four_stage", "duration_s": 10.0, "hold_s": 10.0 - (d % 4), "passed": d % 4 == 0},
                        t0 + 300 * S)  # fmt: skip
                out.add("trial_summary", tt("cs", "chair_stand_30s"),
                        {"kind": "chair_stand", "duration_s": 30.0, "stands": 10 + d % 3, "below_norm": True},
                        t0 + 400 * S)  # fmt: skip
                tug = KNOWN["tug_last_s"] if d == 1 else 11.0 + 0.1 * d
                out.add("trial_summary", tt("tug", "tug"),
                        {"kind": "tug", "duration_s": tug, "tug_s": tug, "tug_flag": tug >= 12.0},
                        t0 + 500 * S)  # fmt: skip
                out.add("sway_live", tt("sway1", "quiet_stance", CONDITION_EC),
                        {"rms_m_s2": 0.07, "window_s": 10.0, "baseline_rms_m_s2": 0.05, "mdc_rms_m_s2": 0.012},
                        t0 + 130 * S)  # fmt: skip
            else:
                out.add("trial_summary", tt("rom", "rom/knee_flexion", side="left"),
                        {"kind": "rom", "duration_s": 60.0, "rom_deg": 60.0 + d, "peak_deg": 62.0 + d,
                         "rep_count": 12, "correct_count": 8, "target_reps": 12, "target_rom_deg": 90.0},
                        t0 + 120 * S)  # fmt: skip
    return out.lines


def write_clinic(influx: InfluxV1, now_ns: int) -> None:
    influx.ensure_schema()
    lines = clinic_lines(now_ns)
    for i in range(0, len(lines), 5000):
        influx.write(lines[i : i + 5000], rp=DERIVED_RP)
