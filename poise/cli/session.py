"""``poise session start|stop|note`` and ``poise trial start|stop``: session events (v1) from
the command line, as the console publishes them (docs/session-events.md).

Each command builds the event, checks it with the same validation the worker applies, and
publishes it with QoS 1 on ``poise/v1/session/{site}/{patient}``; it returns once the broker
has acknowledged it. It prints one JSON line with the ids (``session``, ``trial``, ``id``),
so a script can carry them to the next command. Anything the worker would refuse is refused
here first, with exit code 2. Free text has no option: it stays in the clinical records.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from poise.cli.common import UsageError, hostport, mqtt_ca, mqtt_credentials

ORDER = 50  # place in `poise --help`


def publish_events(
    host: str,
    port: int,
    site: str,
    patient: str,
    payloads: list[bytes],
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Publish payloads with QoS 1 and wait until the broker acknowledged each one."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from poise.core import topics
    from poise.core.tls import configure_mqtt

    topic = topics.session(site, patient)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    configure_mqtt(client, tls_ca)
    try:
        client.connect(host, port, keepalive=15)
    except OSError as exc:
        raise UsageError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        for payload in payloads:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise UsageError(
                    f"the broker at {host}:{port} did not acknowledge the event within "
                    f"{timeout_s:g} s (refused credentials or ACL?)"
                )
    finally:
        client.disconnect()
        client.loop_stop()


def _placement(text: str) -> dict[str, str]:
    """SENSOR=SEGMENT[:SIDE], e.g. p001-back=lower_back or p001-shank=shank:right."""
    sensor, sep, rest = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"expected SENSOR=SEGMENT[:SIDE], e.g. p001-shank=shank:right; found {text!r}"
        )
    segment, _, side = rest.partition(":")
    return {"sensor": sensor, "segment": segment, "side": side or "none"}


def _condition(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as eyes=closed; found {text!r}")
    return key, value


def _build(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    from poise.core import events

    doc: dict[str, Any] = {
        "v": events.EVENT_VERSION,
        "type": kind,
        "id": args.id or events.new_id("e"),
        "t_ns": args.t_ns if args.t_ns is not None else time.time_ns(),
        "session": args.session or events.new_id("s"),
    }
    if kind == "session_start":
        doc["placement"] = args.placement
        if args.prescription is not None:
            from poise.core.prescription import PrescriptionError, load_prescription, to_dict

            try:
                rx = load_prescription(args.prescription)
            except PrescriptionError as exc:
                raise UsageError(str(exc)) from None
            doc["prescription"] = to_dict(rx.public())
    if kind in ("trial_start", "trial_stop"):
        doc["trial"] = args.trial or events.new_id("t")
    if kind == "trial_start":
        doc["exercise"] = args.exercise
        doc["condition"] = dict(args.condition)
        doc["side"] = args.side
    if kind == "trial_stop":
        doc["aborted"] = args.aborted
    if kind in ("note", "session_stop"):
        if args.pain is not None:
            doc["pain_0_10"] = args.pain
        if args.fatigue is not None:
            doc["fatigue_borg"] = args.fatigue
    return doc


def _send(args: argparse.Namespace, kind: str) -> int:
    from poise.core import events

    doc = _build(args, kind)
    payload = json.dumps(doc, separators=(",", ":")).encode()
    try:
        events.parse_event(payload, args.site, args.patient)
    except events.EventError as exc:
        raise UsageError(f"refused ({exc.reason}): {exc}") from None
    user, password = mqtt_credentials("console")
    publish_events(
        args.mqtt[0],
        args.mqtt[1],
        args.site,
        args.patient,
        [payload],
        username=user,
        password=password,
        tls_ca=mqtt_ca("console"),
    )
    out = {"type": kind, "id": doc["id"], "session": doc["session"], "t_ns": doc["t_ns"]}
    if "trial" in doc:
        out["trial"] = doc["trial"]
    print(json.dumps(out))
    return 0


def _common(p: argparse.ArgumentParser, *, session_required: bool = True) -> None:
    p.add_argument("--mqtt", type=hostport, required=True, metavar="HOST:PORT")
    p.add_argument("--site", required=True, help="site id (pseudonymous)")
    p.add_argument("--patient", required=True, help="patient id (pseudonymous)")
    p.add_argument(
        "--session",
        required=session_required,
        default=None,
        help="session id" + ("" if session_required else " (default: a new random one)"),
    )
    p.add_argument(
        "--id", default=None, help="event id (default: a new random one; reusing one is a replay)"
    )
    p.add_argument(
        "--t-ns", type=int, default=None, help="event time, ns since the Unix epoch (default now)"
    )


def _scores(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pain", type=float, default=None, help="pain reported, 0-10")
    p.add_argument("--fatigue", type=float, default=None, help="fatigue reported, Borg 6-20")


def add_commands(sub: Any) -> None:
    from poise.core.clinical import EXERCISES, SIDES

    s = sub.add_parser(
        "session",
        help="publish session events: start, note, stop",
        description="Session events (v1) on poise/v1/session/SITE/PATIENT, QoS 1. Prints the "
        "ids as JSON. Credentials: POISE_CONSOLE_MQTT_USER/PASSWORD (or POISE_MQTT_USER/PASSWORD).",
    )
    ssub = s.add_subparsers(dest="session_command", required=True, metavar="ACTION")
    p = ssub.add_parser("start", help="start a session with the patient's sensor placement")
    _common(p, session_required=False)
    p.add_argument(
        "--placement",
        type=_placement,
        action="append",
        required=True,
        metavar="SENSOR=SEGMENT[:SIDE]",
        help="which sensor is on which segment, e.g. p001-shank=shank:right (repeat per sensor)",
    )
    p.add_argument(
        "--prescription", type=Path, default=None, help="prescription TOML in force (optional)"
    )
    p.set_defaults(func=lambda a: _send(a, "session_start"))
    p = ssub.add_parser("note", help="pain and fatigue during the session")
    _common(p)
    _scores(p)
    p.set_defaults(func=lambda a: _send(a, "note"))
    p = ssub.add_parser("stop", help="stop the session (with pain and fatigue at the end)")
    _common(p)
    _scores(p)
    p.set_defaults(func=lambda a: _send(a, "session_stop"))

    t = sub.add_parser(
        "trial",
        help="publish trial events: start, stop",
        description="Trial events (v1) inside a session. Prints the ids as JSON.",
    )
    tsub = t.add_subparsers(dest="trial_command", required=True, metavar="ACTION")
    p = tsub.add_parser("start", help="start a trial (an exercise or a test)")
    _common(p)
    p.add_argument("--trial", default=None, help="trial id (default: a new random one)")
    p.add_argument(
        "--exercise", required=True, metavar="EXERCISE", help=f"one of {', '.join(EXERCISES)}"
    )
    p.add_argument(
        "--condition",
        type=_condition,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. eyes=closed, surface=foam (repeat)",
    )
    p.add_argument("--side", default="none", help=f"one of {', '.join(SIDES)} (default none)")
    p.set_defaults(func=lambda a: _send(a, "trial_start"))
    p = tsub.add_parser("stop", help="stop a trial")
    _common(p)
    p.add_argument("--trial", required=True, help="trial id")
    p.add_argument("--aborted", action="store_true", help="the trial was abandoned")
    p.set_defaults(func=lambda a: _send(a, "trial_stop"))
