"""The ``poise`` command line. ``poise --help`` lists everything; each command's --help
explains its options with their defaults and units.

One module per command group, each with ``add_commands(sub)`` and an ``ORDER`` number that
places it in ``--help``; a new group is a new module here and nothing else. Science and services are imported inside the command functions, so
``poise --help`` and a config check stay fast and need no optional dependency.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from poise.cli.common import UsageError, package_version
from poise.core import ids


def command_groups() -> list[str]:
    """Every module of this package that defines ``add_commands``, in ``ORDER``."""
    found: list[tuple[int, str]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"poise.cli.{info.name}")
        if hasattr(module, "add_commands"):
            found.append((int(getattr(module, "ORDER", 100)), info.name))
    return [name for _, name in sorted(found)]


AXIS_VALUES = {"-x", "-y", "-z", "+x", "+y", "+z", "x", "y", "z"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poise",
        description="poise: live balance and movement analysis for physical therapy, from "
        "commodity BLE motion sensors. Data flows sensor -> collector -> MQTT -> ingest -> InfluxDB.",
        epilog="Start with 'poise demo' (what 'make demo' runs). Credentials come from the "
        "environment, never the command line, per role: POISE_{ROLE}_MQTT_USER and "
        "POISE_{ROLE}_MQTT_PASSWORD (or ..._PASSWORD_FILE), POISE_{ROLE}_INFLUX_USER/_PASSWORD "
        "or _TOKEN, CA files POISE_MQTT_CA / POISE_INFLUX_CA; 'poise stack env --dir DIR' "
        "prints them for a local stack. Ids that look like a name or a date are refused "
        "(rule: POISE_ID_DENY). See docs/security.md.",
    )
    parser.add_argument("--version", action="version", version=f"poise {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in command_groups():
        importlib.import_module(f"poise.cli.{name}").add_commands(sub)
    return parser


def _join_axis_values(argv: list[str]) -> list[str]:
    """``--ap-axis -z`` would read ``-z`` as an option; make it ``--ap-axis=-z``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--ap-axis" and i + 1 < len(argv) and argv[i + 1] in AXIS_VALUES:
            out.append(f"--ap-axis={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_axis_values(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        # the clinic's id rule (docs/security.md), before any id is read
        ids.set_deny_pattern(os.environ.get(ids.DENY_ENV))
        return int(args.func(args))
    except (UsageError, ids.IdError) as exc:
        print(f"poise {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``poise analyze ... | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
