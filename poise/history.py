"""Seeded history: weeks of sessions for patients who improve, stay stable or worsen.

The points are those the analysis worker writes (``trial_summary`` and ``session_summary``
of poise.core.derived, with the tags, fields and algorithm versions of poise.worker.trials;
like the worker, no ``below_norm``: the norm needs age and sex, which only the clinical
records know), so reports, dashboards, the console and tests see realistic data
without hours of simulated IMU streams. ``generate`` is pure (a seed in, points and the known truth out); ``write`` sends
the points to InfluxDB.

The courses (``f`` runs from 0 at the first week to 1 at the last):

- improving: trunk sway RMS x (1 - 0.35 f); tandem hold 6 -> 13 s (held at most 10 s);
  chair stands 8 -> 15; TUG 13.5 -> 10 s; knee ROM 70 -> 95 deg (target 90); pain 5 -> 1.5;
- stable: no change; every STEADI result within its norm (15 chair stands, TUG 9.5 s);
- worsening: sway RMS x (1 + 0.8 f); tandem hold 12 -> 4 s; chair stands 13 -> 5 (below the
  age/sex norm); TUG 10.5 -> 14.5 s; knee ROM 85 -> 72 deg; pain 2 -> 6.

Session-to-session noise: sway log-normal 12 %, TUG 0.5 s, stands 1, ROM 3 deg, pain 1.
The STEADI tests are done in the first session of each week; quiet stance (eyes open on a
firm surface, eyes closed on foam) and the knee exercise in every session.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from analysis import steadi
from poise.core.clinical import FOUR_STAGE_ORDER, condition_tag
from poise.core.derived import MEASUREMENTS
from poise.core.ids import check_id
from poise.core.influx import DERIVED_RP, InfluxV1, point_line
from poise.worker.trials import KIND_VERSIONS, SESSION_VERSION

# the algorithm versions the worker writes
SWAY_VERSION = KIND_VERSIONS["sway"]
STEADI_VERSION = KIND_VERSIONS["four_stage"]
JOINT_VERSION = KIND_VERSIONS["rom"]
HISTORY_VERSION = 1

COURSES = ("improving", "stable", "worsening")
WEEK_S = 7 * 86400


def chair_norm(age_years: int, sex: str) -> int:
    """The CDC STEADI below-average 30 s chair-stand score (analysis.steadi's table)."""
    norm = steadi.chair_stand_norm(age_years, sex)
    if norm is None:
        raise ValueError(f"no chair-stand norm for age {age_years}")
    return norm


@dataclass(frozen=True)
class HistoryConfig:
    patients: int = 3
    weeks: float = 12.0
    end_ns: int = 1_800_000_000 * 10**9  # the last session ends before this
    site: str = "demo"
    seed: int = 0
    sessions_per_week: int = 3
    prefix: str = "h"  # patient ids: h001, h002, ...
    effect: float = 1.0  # scales every course's change (0.5: half as large; 0: all stable)


@dataclass(frozen=True)
class Course:
    name: str
    sway_end: float  # factor on sway RMS at the end
    tandem: tuple[float, float]  # true hold ability, s (held at most 10 s)
    stands: tuple[float, float]
    tug_s: tuple[float, float]
    rom_deg: tuple[float, float]
    pain: tuple[float, float]
    fatigue: tuple[float, float]
    attendance: tuple[float, float]  # probability of attending a planned session


_COURSES = {
    "improving": Course(
        "improving",
        0.65,
        (6.0, 13.0),
        (8, 15),
        (13.5, 10.0),
        (70, 95),
        (5, 1.5),
        (14, 11),
        (0.95, 0.95),
    ),
    "stable": Course(
        "stable",
        1.0,
        (14.0, 14.0),
        (15, 15),
        (9.5, 9.5),
        (85, 85),
        (3, 3),
        (12, 12),
        (0.9, 0.9),
    ),
    "worsening": Course(
        "worsening",
        1.8,
        (12.0, 4.0),
        (13, 5),
        (10.5, 14.5),
        (85, 72),
        (2, 6),
        (11, 15),
        (0.95, 0.7),
    ),
}


def _lerp(ab: tuple[float, float], f: float) -> float:
    return ab[0] + (ab[1] - ab[0]) * f


def sway_fields(
    rms_ap: float, rms_ml: float, duration_s: float, rng: random.Random
) -> dict[str, float]:
    """A consistent set of sway fields from the two RMS values: the ratios of band-limited
    noise around 1 Hz (mean distance ~ 0.89 RMS as for a Rayleigh radius, range ~ 5.5 RMS,
    path rate ~ 2 pi f RMS, jerk ~ (2 pi f)^2 RMS^2 / 2, the 95 % ellipse pi 5.991 RMS_AP RMS_ML)."""
    rms = math.hypot(rms_ap, rms_ml)
    fc_ap = rng.uniform(0.7, 1.1)
    fc_ml = rng.uniform(0.8, 1.2)
    fc = (fc_ap + fc_ml) / 2
    path_rate = 2 * math.pi * fc * rms * 0.9
    return {
        "rms_m_s2": rms,
        "rms_ap_m_s2": rms_ap,
        "rms_ml_m_s2": rms_ml,
        "mean_distance_m_s2": 0.886 * rms,
        "range_ap_m_s2": 5.5 * rms_ap,
        "range_ml_m_s2": 5.5 * rms_ml,
        "path_length_m_s2": path_rate * duration_s,
        "path_rate_m_s3": path_rate,
        "jerk_m2_s6": 0.5 * (2 * math.pi * fc) ** 2 * rms**2,
        "ellipse_area_95_m2_s4": math.pi * 5.991 * rms_ap * rms_ml,
        "centroidal_frequency_ap_hz": fc_ap,
        "centroidal_frequency_ml_hz": fc_ml,
        "frequency_dispersion_ap": rng.uniform(0.5, 0.7),
        "frequency_dispersion_ml": rng.uniform(0.5, 0.7),
        "f50_ap_hz": 0.7 * fc_ap,
        "f50_ml_hz": 0.7 * fc_ml,
        "f95_ap_hz": 2.6 * fc_ap,
        "f95_ml_hz": 2.6 * fc_ml,
    }


def _point(
    measurement: str, t_ns: int, tags: dict[str, str], fields: dict[str, Any]
) -> dict[str, Any]:
    return {"measurement": measurement, "t_ns": t_ns, "tags": tags, "fields": fields}


def generate(cfg: HistoryConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Points (measurement, t_ns, tags, fields) and the truth: per patient its course, age
    band, sex and what a correct review says about it."""
    check_id("site", cfg.site)
    rng = random.Random(cfg.seed)
    points: list[dict[str, Any]] = []
    truth: dict[str, Any] = {
        "version": HISTORY_VERSION,
        "site": cfg.site,
        "seed": cfg.seed,
        "weeks": cfg.weeks,
        "patients": {},
    }
    n_weeks = max(1, math.ceil(cfg.weeks))
    start_s = cfg.end_ns // 10**9 - n_weeks * WEEK_S
    for i in range(cfg.patients):
        course = _COURSES[COURSES[i % len(COURSES)]]
        patient = check_id("patient", f"{cfg.prefix}{i + 1:03d}")
        age = rng.randint(66, 88)
        sex = rng.choice(("female", "male"))
        norm = chair_norm(age, sex)
        band_lo = age - age % 5
        base_rms_ap = rng.uniform(0.035, 0.06)
        planned = [0, 2, 4, 1, 3, 5, 6][: cfg.sessions_per_week]
        sessions = 0
        for week in range(n_weeks):
            steadi_done = False
            for day in sorted(planned):
                f = (week + day / 7) / max(n_weeks - 1, 1)
                f = min(f, 1.0)
                if rng.random() > _lerp(course.attendance, f):
                    continue
                t0_s = start_s + week * WEEK_S + day * 86400 + 9 * 3600 + rng.randint(0, 7200)
                sessions += 1
                session = f"s-{patient}-{week:02d}{day}"
                points += _session(
                    cfg,
                    rng,
                    course,
                    patient,
                    session,
                    t0_s,
                    f * cfg.effect,
                    base_rms_ap,
                    steadi=not steadi_done,
                    adherence=100.0 * _lerp(course.attendance, f),
                )
                steadi_done = True
        truth["patients"][patient] = {
            "course": course.name,
            "age_band": f"{band_lo}-{band_lo + 4}",
            "sex": sex,
            "chair_stand_norm": norm,
            "sessions": sessions,
            "expect_flagged": course.name == "worsening",
            "expect_reasons": (
                [
                    "tandem_below_10s",
                    "chair_stand_below_norm",
                    "tug_at_or_above_12s",
                    "sway_worsened",
                ]
                if course.name == "worsening"
                else []
            ),
            "expect_improved": (
                ["rms_m_s2", "tug_s", "stands", "rom_deg", "pain_0_10"]
                if course.name == "improving"
                else []
            ),
        }
    return points, truth


def _session(
    cfg: HistoryConfig,
    rng: random.Random,
    course: Course,
    patient: str,
    session: str,
    t0_s: int,
    f: float,
    base_rms_ap: float,
    *,
    steadi: bool,
    adherence: float,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t_s = float(t0_s)
    n_trial = 0
    reps_total = 0
    sway_factor = 1.0 + (course.sway_end - 1.0) * f

    def trial(
        exercise: str,
        condition: dict[str, str],
        side: str,
        version: str,
        fields: dict[str, Any],
        duration_s: float,
    ) -> None:
        nonlocal t_s, n_trial
        n_trial += 1
        tags = {
            "site": cfg.site,
            "patient": patient,
            "algorithm_version": version,
            "session": session,
            "trial": f"{session}-t{n_trial:02d}",
            "exercise": exercise,
            "condition": condition_tag(condition),
            "side": side,
        }
        base = {
            "duration_s": duration_s,
            "sample_loss_pct": round(rng.uniform(0.0, 0.4), 2),
            "flags": "",
        }
        out.append(_point("trial_summary", int(t_s * 1e9), tags, {**base, **fields}))
        t_s += duration_s + rng.uniform(40, 90)

    for cond, level in (
        ({"eyes": "open", "surface": "firm"}, 1.0),
        ({"eyes": "closed", "surface": "foam"}, 3.0),
    ):
        noise = math.exp(rng.gauss(0, 0.12))
        ap = base_rms_ap * level * sway_factor * noise
        ml = ap / rng.uniform(1.1, 1.4)
        trial(
            "quiet_stance",
            cond,
            "none",
            SWAY_VERSION,
            {"kind": "sway", **sway_fields(ap, ml, 30.0, rng)},
            30.0,
        )
    if steadi:
        ability = max(0.5, _lerp(course.tandem, f) + rng.gauss(0, 0.8))
        stage_ability = {
            "steadi_4stage/feet_together": 30.0,
            "steadi_4stage/semi_tandem": max(ability * 1.8, 10.5),
            "steadi_4stage/tandem": ability,
            "steadi_4stage/single_leg": ability * 0.6,
        }
        for k, stage in enumerate(FOUR_STAGE_ORDER):
            hold = round(min(10.0, stage_ability[stage]), 1)
            noise = math.exp(rng.gauss(0, 0.12))
            ap = base_rms_ap * (1.0 + 0.8 * k) * sway_factor * noise
            fields = {
                "kind": "four_stage",
                "hold_s": hold,
                "passed": hold >= 10.0,
                **sway_fields(ap, ap / 1.2, hold, rng),
            }
            trial(stage, {}, "none", STEADI_VERSION, fields, hold)
            if hold < 10.0:
                break  # the test stops at the first failure
        stands = max(0, round(_lerp(course.stands, f) + rng.gauss(0, 1.0)))
        trial(
            "chair_stand_30s",
            {},
            "none",
            STEADI_VERSION,
            {"kind": "chair_stand", "stands": int(stands)},
            30.0,
        )
        tug = round(max(6.0, _lerp(course.tug_s, f) + rng.gauss(0, 0.5)), 2)
        trial(
            "tug",
            {},
            "none",
            STEADI_VERSION,
            {"kind": "tug", "tug_s": tug, "tug_flag": tug >= 12.0},
            tug,
        )
    target = 90.0
    reps = 10
    roms = [_lerp(course.rom_deg, f) + rng.gauss(0, 3.0) for _ in range(reps)]
    rom = max(roms)
    correct = sum(r >= target for r in roms)
    reps_total += reps
    trial(
        "rom/knee_flexion",
        {},
        "right",
        JOINT_VERSION,
        {
            "kind": "rom",
            "rom_deg": round(rom, 1),
            "peak_deg": round(rom + 2.0, 1),
            "rep_count": reps,
            "correct_count": int(correct),
            "target_reps": reps,
            "target_rom_deg": target,
            "max_rom_deg": 110.0,
        },
        reps * 3.0,
    )
    duration = t_s - t0_s
    active = duration * rng.uniform(0.35, 0.5)
    moderate = active * 0.3
    light = active - moderate
    pain = min(10.0, max(0.0, round(_lerp(course.pain, f) + rng.gauss(0, 1.0))))
    fatigue = min(20.0, max(6.0, round(_lerp(course.fatigue, f) + rng.gauss(0, 1.0))))
    enmo = 25.0 + 60.0 * active / duration
    out.append(
        _point(
            "session_summary",
            int(t0_s * 1e9),
            {
                "site": cfg.site,
                "patient": patient,
                "algorithm_version": SESSION_VERSION,
                "session": session,
            },
            {
                "duration_s": round(duration, 1),
                "active_s": round(active, 1),
                "sedentary_s": round(duration - active, 1),
                "light_s": round(light, 1),
                "moderate_s": round(moderate, 1),
                "vigorous_s": 0.0,
                "enmo_mean_mg": round(enmo, 1),
                "mad_mean_mg": round(enmo * 1.6, 1),
                "enmo_peak_1min_mg": round(enmo * 2.5, 1),
                "load": round(light / 60 + 2 * moderate / 60, 2),
                "trials": n_trial,
                "reps": reps_total,
                # the worker's adherence: prescribed exercises done / prescribed (here two:
                # the knee exercise and the balance work, one of them sometimes skipped)
                "adherence_pct": 100.0 if rng.random() < adherence / 100 else 50.0,
                "pain_0_10": float(pain),
                "fatigue_borg": float(fatigue),
            },
        )
    )
    return out


def check_points(points: Iterable[dict[str, Any]]) -> None:
    """Every point fits its table in poise.core.derived (tags and field kinds)."""
    kinds = {"float": (float,), "int": (int,), "bool": (bool,), "str": (str,)}
    for p in points:
        m = MEASUREMENTS[p["measurement"]]
        if set(p["tags"]) - set(m.all_tags):
            raise ValueError(f"{m.name}: unknown tags {set(p['tags']) - set(m.all_tags)}")
        for name, value in p["fields"].items():
            fd = m.field(name)
            ok = isinstance(value, kinds[fd.kind]) and not (
                fd.kind == "int" and isinstance(value, bool)
            )
            if not ok:
                raise ValueError(f"{m.name}.{name}: expected {fd.kind}, found {value!r}")


def lines(points: Iterable[dict[str, Any]]) -> list[str]:
    return [point_line(p["measurement"], p["tags"], p["fields"], p["t_ns"]) for p in points]


def write(influx: InfluxV1, points: list[dict[str, Any]], batch: int = 5000) -> int:
    """Write the points to the ``derived`` retention policy; returns how many. Idempotent:
    a point is keyed by its tags and time, so writing the same history twice changes
    nothing."""
    check_points(points)
    text = lines(points)
    for k in range(0, len(text), batch):
        influx.write(text[k : k + batch], rp=DERIVED_RP)
    return len(text)


def parse_weeks(text: str) -> float:
    """``12w``, ``30d`` or a number of weeks."""
    t = text.strip().lower()
    try:
        if t.endswith("w"):
            value = float(t[:-1])
        elif t.endswith("d"):
            value = float(t[:-1]) / 7
        else:
            value = float(t)
    except ValueError:
        raise ValueError(f"expected a period like 12w or 30d, found {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 520):
        raise ValueError(f"expected a period between 1d and 520w, found {text!r}")
    return value
