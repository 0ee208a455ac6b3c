"""``poise analyze ...``: the science on offline CSV files (the shell around ``analysis``).

Reads files in the CSV contract (poise.core.csvio), calls the pure analysis, prints JSON or
a readable table. Bad input gets a message naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.plausibility import (
    ACC_UNITS,
    GYR_UNITS,
    TIME_UNITS,
    PlausibilityReport,
    Units,
    check_imu,
)
from poise.cli.common import UsageError, print_json, table
from poise.core.clinical import CONDITIONS
from poise.core.csvio import CsvError, ImuRecording, read_imu_csv, write_csv


def _read(path: Path, min_samples: int = 2) -> ImuRecording:
    try:
        return read_imu_csv(path, min_samples=min_samples)
    except CsvError as exc:
        raise UsageError(str(exc)) from None


def _load_checked(
    path: Path, args: argparse.Namespace | None = None, *, needs_gyr: bool = True
) -> tuple[ImuRecording, PlausibilityReport]:
    """Read a recording, convert it from the units the user declared (``--time-unit``,
    ``--acc-unit``, ``--gyr-unit``) and refuse it unless it is plausible in poise's units."""
    rec = _read(path)
    try:
        units = Units(
            time=getattr(args, "time_unit", "s"),
            acc=getattr(args, "acc_unit", "m/s2"),
            gyr=getattr(args, "gyr_unit", "rad/s"),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    t, acc, gyr = units.to_si(rec.time_s, rec.acc, rec.gyr)
    assert gyr is not None
    report = check_imu(t, acc, gyr, needs_gyr=needs_gyr)
    if not report.ok:
        parts = []
        for f in report.problems:
            hint = ""
            if f.likely_unit and f.channel in ("time", "acc", "gyr"):
                hint = (
                    f" (if the file really is in {f.likely_unit}, pass "
                    f"--{f.channel}-unit {f.likely_unit})"
                )
            parts.append(f.message + hint)
        raise UsageError(f"{path}: " + "; ".join(parts))
    return replace(rec, time_s=t, acc=acc, gyr=gyr), report


def _check_output(output: Path, *inputs: Path) -> None:
    """Refuse an output that would overwrite an input, or that is a folder."""
    if output.is_dir():
        raise UsageError(f"{output}: is a folder; give a file name to write")
    for inp in inputs:
        try:
            same = output.exists() and output.samefile(inp)
        except OSError:
            same = False
        if same or output.resolve() == inp.resolve():
            raise UsageError(f"{output}: is the input file; writing it would destroy the recording")


def _write(path: Path, columns: dict[str, Any]) -> None:
    try:
        write_csv(path, columns)
    except CsvError as exc:
        raise UsageError(str(exc)) from None


def _load(path: Path, args: argparse.Namespace | None = None) -> ImuRecording:
    return _load_checked(path, args)[0]


def _add_unit_args(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--acc-unit",
        choices=ACC_UNITS,
        default="m/s2",
        help="the file's acceleration unit, converted to m/s² before the checks (default m/s2)",
    )
    q.add_argument(
        "--gyr-unit",
        choices=GYR_UNITS,
        default="rad/s",
        help="the file's angular-rate unit, converted to rad/s (default rad/s)",
    )
    q.add_argument(
        "--time-unit",
        choices=tuple(TIME_UNITS),
        default="s",
        help="the unit of time_s, converted to seconds (default s)",
    )


def _condition(args: argparse.Namespace) -> dict[str, str]:
    return {
        k: v
        for k, v in (
            ("eyes", getattr(args, "eyes", None)),
            ("surface", getattr(args, "surface", None)),
            ("stance", getattr(args, "stance", None)),
        )
        if v
    }


def _number(value: float | None, fmt: str = ".4g") -> str:
    """A metric for people: plain digits, or 'not computable' for a missing value."""
    if value is None or not np.isfinite(value):
        return "not computable"
    return format(float(value), fmt)


def cmd_sway(args: argparse.Namespace) -> int:
    from analysis import sway

    rec, report = _load_checked(args.file, args, needs_gyr=False)
    gyr = None if "no_gyroscope" in report.flags else rec.gyr
    try:
        res = sway.analyze_trial(
            rec.time_s,
            rec.acc,
            gyr,
            sway.SwayParams(ap_axis=args.ap_axis),
            condition=_condition(args),
            input_flags=report.flags,
            check=False,
        )
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    if args.json:
        print_json(res.as_dict())
        return 0
    q = res.quality
    cond = ", ".join(f"{k} {v}" for k, v in res.condition.items()) or "condition not given"
    print(
        f"Sway of {args.file} ({q.duration_s:.1f} s at {res.fs_hz:.1f} Hz, AP axis {args.ap_axis}, "
        f"{cond}, {res.algorithm_version})"
    )
    table([(k, _number(v), sway.UNITS[k]) for k, v in res.metrics.items()])
    flags = [
        f
        for f, on in (
            (f"too short (< {res.params.min_duration_s:g} s)", q.too_short),
            ("clipping", q.clipping),
        )
        if on
    ]
    if q.sample_loss_pct > 0:
        flags.append(f"{q.sample_loss_pct:.1f} % samples lost")
    if q.loss_of_balance_s is not None:
        flags.append(f"loss of balance at {q.loss_of_balance_s:.1f} s")
    if q.not_computed:
        flags.append("not computable: " + ", ".join(q.not_computed))
    flags += [f.replace("_", " ") for f in report.flags]
    print("quality: " + ("; ".join(flags) if flags else "no flags"))
    return 0


def cmd_orientation(args: argparse.Namespace) -> int:
    from analysis.orientation import Orientation

    _check_output(args.output, args.file)
    rec = _load(args.file, args)
    if args.mag and rec.mag is None:
        raise UsageError(
            f"{args.file}: --mag asks for 9D orientation, but the file has no "
            "mag_x, mag_y, mag_z columns"
        )
    q = Orientation(use_mag=args.mag, mode=args.mode).update(rec.time_s, rec.acc, rec.gyr, rec.mag)
    _write(
        args.output,
        {"time_s": rec.time_s, "qw": q[:, 0], "qx": q[:, 1], "qy": q[:, 2], "qz": q[:, 3]},
    )
    print(
        json.dumps(
            {
                "rows": rec.n_samples,
                "output": str(args.output),
                "mode": "9D" if args.mag else "6D",
                "sampling_rate_hz": round(rec.sampling_rate_hz, 4),
            }
        ),
        file=sys.stderr if args.output == Path("/dev/stdout") else sys.stdout,
    )
    return 0


def _parse_stage(text: str) -> tuple[str, float, float]:
    try:
        name, span = text.split(":", 1)
        start, end = (float(x) for x in span.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME:START-END in seconds, e.g. tandem:25-35; found {text!r}"
        ) from None
    return name, start, end


def cmd_four_stage(args: argparse.Namespace) -> int:
    from analysis import steadi
    from analysis.sway import SwayParams

    rec, report = _load_checked(args.file, args, needs_gyr=False)
    t0 = float(rec.time_s[0])
    stages = [steadi.Stage(n, t0 + a, t0 + b) for n, a, b in args.stage]
    try:
        res = steadi.four_stage(
            rec.time_s,
            rec.acc,
            None if "no_gyroscope" in report.flags else rec.gyr,
            stages,
            steadi.FourStageParams(sway=SwayParams(ap_axis=args.ap_axis)),
            check=False,
        )
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    if res["flags"]["tandem_under_10s"] is None:
        raise UsageError(
            f"{args.file}: one {res['stages'][0]['stage']} stage that was held is not a "
            "4-stage test: no verdict (give the stages up to tandem, or up to the one that "
            "failed)"
        )
    if args.json:
        print_json(res)
        return 0
    for s in res["stages"]:
        if not s["attempted"]:
            print(f"  {s['stage']:<14} not attempted (an earlier stage failed)")
            continue
        lob = (
            f", loss of balance at {s['loss_of_balance_s']:.1f} s"
            if s["loss_of_balance_s"] is not None
            else ""
        )
        rms = f", sway RMS {s['sway']['rms']:.3f} m/s²" if s["sway"] else ""
        print(
            f"  {s['stage']:<14} held {s['hold_s']:5.1f} s  {'PASS' if s['passed'] else 'FAIL'}{lob}{rms}"
        )
    print(
        "flag: tandem stance under 10 s (increased fall risk)"
        if res["flags"]["tandem_under_10s"]
        else "no flag"
    )
    return 0


def cmd_chair_stand(args: argparse.Namespace) -> int:
    from analysis import steadi

    rec = _load(args.file, args)
    try:
        res = steadi.chair_stand(
            rec.time_s,
            rec.acc,
            rec.gyr,
            start_s=float(rec.time_s[0]) + args.start_s,
            age_years=args.age,
            sex=args.sex,
            check=False,
        )
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    if args.json:
        print_json(res)
        return 0
    at = ", ".join(f"{t:.1f}" for t in res["stand_times_s"])
    print(
        f"full stands in 30 s from {res['start_s']:g} s: {res['stands']}"
        + (f"  (at {at} s from the start)" if at else "")
        + ("; the last one more than halfway up at 30 s" if res["halfway_stand_at_end"] else "")
    )
    if res["flags"]["recording_shorter_than_test"]:
        print("note: the recording ends before the 30 s are over")
    if "norm_below" in res:
        norm, below = res["norm_below"], res["flags"]["below_norm"]
        if norm is None:
            print("norm: none for this age")
        else:
            verdict = (
                "no verdict (the recording ends early)"
                if below is None
                else ("BELOW" if below else "not below")
            )
            print(f"norm: below average is < {norm}: {verdict}")
    return 0


def cmd_tug(args: argparse.Namespace) -> int:
    from analysis import steadi

    rec = _load(args.file, args)
    try:
        res = steadi.tug(rec.time_s, rec.acc, rec.gyr, check=False)
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    if args.json:
        print_json(res)
    else:
        print(
            f"Timed Up and Go: {res['duration_s']:.1f} s"
            + ("  (>= 12 s: increased fall risk)" if res["flags"]["tug_12s_or_more"] else "")
        )
        if res["phases_s"] is None:
            print("  phases: not computable (two turns were not found)")
        for phase, secs in (res["phases_s"] or {}).items():
            print(f"  {phase:<13} {secs:5.2f} s")
    return 0


def _align(prox: ImuRecording, dist: ImuRecording, names: tuple[str, str]) -> tuple[Any, ...]:
    """Both recordings on the proximal sensor's timestamps, over the span they share
    (the distal one linearly interpolated)."""
    lo = max(prox.time_s[0], dist.time_s[0])
    hi = min(prox.time_s[-1], dist.time_s[-1])
    if hi - lo <= 0:
        raise UsageError(
            f"{names[0]} and {names[1]} do not overlap in time "
            f"({prox.time_s[0]:.3f}-{prox.time_s[-1]:.3f} s vs "
            f"{dist.time_s[0]:.3f}-{dist.time_s[-1]:.3f} s)"
        )
    sel = (prox.time_s >= lo) & (prox.time_s <= hi)
    t = prox.time_s[sel]
    acc_d = np.column_stack([np.interp(t, dist.time_s, dist.acc[:, i]) for i in range(3)])
    gyr_d = np.column_stack([np.interp(t, dist.time_s, dist.gyr[:, i]) for i in range(3)])
    return t, prox.acc[sel], prox.gyr[sel], acc_d, gyr_d


def cmd_rom(args: argparse.Namespace) -> int:
    from analysis import joint

    prescription = None
    if any(
        v is not None for v in (args.target_rom, args.max_rom, args.min_rep_s, args.reps, args.sets)
    ):
        prescription = joint.Prescription(
            target_rom_deg=args.target_rom,
            max_rom_deg=args.max_rom,
            min_rep_s=args.min_rep_s,
            reps=args.reps,
            sets=args.sets,
        )
    if args.joint in joint.HINGE_JOINTS:
        if args.proximal is None or args.distal is None:
            raise UsageError(f"--joint {args.joint} needs --proximal and --distal (two sensors)")
        prox, dist = _load(args.proximal, args), _load(args.distal, args)
        t, acc_p, gyr_p, acc_d, gyr_d = _align(prox, dist, (str(args.proximal), str(args.distal)))
        from analysis.hinge import hinge_angle

        ta, angle, hinge = hinge_angle(
            t,
            acc_p,
            gyr_p,
            acc_d,
            gyr_d,
            joint.JointParams(neutral_s=args.neutral_s, invert=args.invert),
        )
        if len(ta) == 0:
            raise UsageError(
                "the joint never moved enough to show its flexion axis (both sensors look "
                "still, or they turn together): no angle can be given"
            )
        axis_confidence: float | None = hinge.axis_confidence
        motion = "flexion" if args.joint != "ankle" else "dorsiflexion"
        n_samples = len(t)
    else:
        if args.segment is None:
            raise UsageError(
                f"--joint {args.joint} needs --segment (one sensor on the moving segment)"
            )
        rec = _load(args.segment, args)
        ta, angle = joint.segment_inclination(rec.time_s, rec.acc, rec.gyr, args.neutral_s)
        axis_confidence = None
        motion = args.motion
        n_samples = rec.n_samples
    if len(ta) != n_samples:
        raise UsageError("internal: not every sample got an angle")
    if ta[-1] - ta[0] < args.neutral_s:
        raise UsageError(
            f"the recording ({ta[-1] - ta[0]:.1f} s) is shorter than its neutral pose "
            f"({args.neutral_s} s)"
        )
    reps = joint.count_reps(ta, angle, prescription=prescription)
    out = joint.summarize(ta, angle, reps, prescription)
    out["joint"], out["motion"] = args.joint, motion
    out["normal_rom_deg"] = joint.NORMAL_ROM_DEG.get((args.joint, motion))
    out["quality"] = {
        "duration_s": round(float(ta[-1] - ta[0]), 3),
        "samples": len(ta),
        "neutral_s": args.neutral_s,
    }
    if axis_confidence is not None:
        # how well the motion showed the flexion axes (0..1); under 0.5 the angle is doubtful
        out["quality"]["axis_confidence"] = round(axis_confidence, 3)
        if axis_confidence < 0.5:
            out["quality"]["flags"] = [*out["quality"].get("flags", []), "axis_uncertain"]
    if args.angles:
        write_csv(args.angles, {"time_s": ta, "angle_deg": angle})
    if args.json:
        print_json(out)
        return 0
    print(
        f"{args.joint} {motion}: ROM {out['rom_deg']:.1f}° (peak {out['peak_deg']:.1f}°), "
        f"{out['rep_count']} repetitions"
        + (f"; normal active ROM ~{out['normal_rom_deg']:.0f}°" if out["normal_rom_deg"] else "")
        + (f"; axis confidence {axis_confidence:.2f}" if axis_confidence is not None else "")
    )
    if axis_confidence is not None and axis_confidence < 0.5:
        print("  warning: the motion showed the flexion axes poorly; the angle is doubtful")
    for i, r in enumerate(out["repetitions"], 1):
        verdict = ""
        if "correct" in r:
            verdict = "  correct" if r["correct"] else f"  INCORRECT ({', '.join(r['reasons'])})"
        print(
            f"  {i:2d}. {r['start_s']:7.2f}-{r['end_s']:7.2f} s  peak {r['peak_deg']:6.1f}°  ROM {r['rom_deg']:6.1f}°{verdict}"
        )
    return 0


ORDER = 40  # place in `poise --help`


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyze offline CSV recordings (sway, STEADI tests, orientation, ROM)",
        description="Offline analysis of CSV files with columns time_s, acc_x, acc_y, acc_z, "
        "gyr_x, gyr_y, gyr_z [, mag_x, mag_y, mag_z] in s, m/s², rad/s, µT (sensor frame). "
        "Extra columns are ignored.",
    )
    asub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    ap_help = (
        "the sensor axis that points forward (out of the patient's front), e.g. -z when the "
        "device's face looks backwards on the lower back (default -z)"
    )

    q = asub.add_parser(
        "sway",
        help="balance sway of one trial from a lower-back sensor",
        description="ISway-style sway measures of one standing trial (see docs/metrics.md).",
    )
    q.add_argument("file", type=Path)
    q.add_argument(
        "--ap-axis",
        default="-z",
        choices=["+x", "-x", "+y", "-y", "+z", "-z", "x", "y", "z"],
        help=ap_help,
    )
    q.add_argument("--eyes", choices=CONDITIONS["eyes"], help="condition: eyes open or closed")
    q.add_argument("--surface", choices=CONDITIONS["surface"], help="condition: firm or foam")
    q.add_argument(
        "--stance",
        choices=["feet_apart", "feet_together", "semi_tandem", "tandem", "single_leg"],
        help="condition: the stance",
    )
    q.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: metrics, algorithm_version, quality, condition",
    )
    _add_unit_args(q)
    q.set_defaults(func=cmd_sway)

    q = asub.add_parser(
        "orientation",
        help="orientation quaternions with VQF",
        description="Writes time_s, qw, qx, qy, qz (sensor-to-earth, earth z up), one row per "
        "input row. 6D (no magnetometer: heading is arbitrary but steady) unless --mag.",
    )
    q.add_argument("file", type=Path)
    q.add_argument("-o", "--output", type=Path, required=True, help="output CSV")
    q.add_argument("--mag", action="store_true", help="9D: use the magnetometer for heading")
    q.add_argument(
        "--mode",
        choices=["offline", "online"],
        default="offline",
        help="offline: VQF's acausal variant, best for files (default); online: the causal "
        "filter the live path uses",
    )
    _add_unit_args(q)
    q.set_defaults(func=cmd_orientation)

    q = asub.add_parser(
        "rom",
        help="joint angle, range of motion and repetitions",
        description="Hinge joints (knee, elbow, ankle) from two sensors: --proximal (thigh, "
        "upper arm, shank) and --distal (shank, forearm, foot), strapped on in any orientation. "
        "Hip and shoulder from one sensor on the moving segment (--segment): its inclination "
        "change. The first --neutral-s seconds must be a still neutral pose (angle 0); the "
        "direction the joint mostly moves in from it counts as flexion (positive; --invert "
        "flips it). The flexion axes are learnt from the movement (no heading alignment, so a "
        "still thigh or upper arm is fine); quality.axis_confidence says how well.",
    )
    q.add_argument("--proximal", type=Path, help="CSV of the sensor on the proximal segment")
    q.add_argument("--distal", type=Path, help="CSV of the sensor on the distal segment")
    q.add_argument("--segment", type=Path, help="CSV of the one sensor (hip, shoulder)")
    q.add_argument("--joint", required=True, choices=["knee", "elbow", "ankle", "hip", "shoulder"])
    q.add_argument(
        "--motion",
        choices=["flexion", "abduction"],
        default="flexion",
        help="for hip and shoulder (default flexion)",
    )
    q.add_argument(
        "--neutral-s",
        type=float,
        default=2.0,
        help="seconds of still neutral pose at the start (default 2)",
    )
    q.add_argument(
        "--invert", action="store_true", help="the first movement is extension: flip the sign"
    )
    q.add_argument(
        "--target-rom", type=float, help="prescription: a repetition must reach this ROM (degrees)"
    )
    q.add_argument(
        "--max-rom", type=float, help="prescription: the angle must stay at or below this (degrees)"
    )
    q.add_argument(
        "--min-rep-s", type=float, help="prescription: a repetition faster than this is too fast"
    )
    q.add_argument("--reps", type=int, help="prescription: repetitions per set")
    q.add_argument("--sets", type=int, help="prescription: sets")
    q.add_argument("--angles", type=Path, help="also write time_s, angle_deg to this CSV")
    q.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: rom_deg, peak_deg, rep_count, "
        "repetitions, algorithm_version, quality",
    )
    _add_unit_args(q)
    q.set_defaults(func=cmd_rom)

    q = asub.add_parser(
        "four-stage",
        help="STEADI 4-Stage Balance Test",
        description="Hold time and sway per stage; the test stops at the first failed stage.",
    )
    q.add_argument("file", type=Path)
    q.add_argument(
        "--stage",
        type=_parse_stage,
        action="append",
        required=True,
        metavar="NAME:START-END",
        help="a stage and its start and end in seconds from the file's start; NAME is one of "
        "feet_together, semi_tandem, tandem, single_leg; repeat in that order, up to the "
        "first failed stage or at least to tandem",
    )
    q.add_argument("--ap-axis", default="-z", help=ap_help)
    q.add_argument("--json", action="store_true")
    _add_unit_args(q)
    q.set_defaults(func=cmd_four_stage)

    q = asub.add_parser(
        "chair-stand",
        help="30-Second Chair Stand from a lower-back sensor",
        description="Counts full stands in the 30 s from --start-s; a stand more than "
        "halfway up at 30 s counts (CDC).",
    )
    q.add_argument("file", type=Path)
    q.add_argument(
        "--start-s",
        type=float,
        default=0.0,
        help="when the test starts, in seconds from the file's start (default 0)",
    )
    q.add_argument("--age", type=int, help="age in years, for the CDC norm")
    q.add_argument("--sex", choices=["male", "female"], help="for the CDC norm")
    q.add_argument("--json", action="store_true")
    _add_unit_args(q)
    q.set_defaults(func=cmd_chair_stand)

    q = asub.add_parser(
        "tug",
        help="Timed Up and Go from a lower-back sensor",
        description="Duration from rise onset to seated again, and its phases. The recording "
        "must start and end with the patient seated and still.",
    )
    q.add_argument("file", type=Path)
    q.add_argument("--json", action="store_true")
    _add_unit_args(q)
    q.set_defaults(func=cmd_tug)
