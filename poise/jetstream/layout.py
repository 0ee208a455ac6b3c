"""Where everything lives on NATS, as pure functions.

Gateways publish MQTT topics unchanged (``poise/v1/raw/{site}/{patient}/{sensor}``); NATS
turns ``/`` into ``.`` and a subject mapping in the server rewrites raw frames and session
events into one partitioned subject space::

    poise.v1.raw.{site}.{patient}.{sensor}  ->  poise.v1.p.{k}.raw.{site}.{patient}.{sensor}
    poise.v1.session.{site}.{patient}       ->  poise.v1.p.{k}.session.{site}.{patient}

with ``k = partition(PARTITIONS, patient)``: FNV-1a (32 bit) of the patient id, modulo
``PARTITIONS``. One stream, ``POISE``, holds ``poise.v1.p.>``, so a patient's frames and
events keep their relative order and a worker that owns partition ``k`` sees everything of
its patients by filtering ``poise.v1.p.{k}.>``. ``PARTITIONS`` is fixed when a deployment
is created: changing it moves patients between partitions, which needs an empty stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from poise.core.ids import check_id

PARTITIONS = 16
STREAM = "POISE"
STREAM_SUBJECTS = ("poise.v1.p.>",)
KV_LEASES = "poise_leases"  # partition -> owning worker, expires unless renewed
KV_MEMBERS = "poise_members"  # live workers, expire unless renewed
KV_CHECKPOINTS = "poise_checkpoints"  # partition -> worker state and stream sequence
DEAD_LETTER_PREFIX = "poise.v1.deadletter"


def fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def partition_of(patient: str, partitions: int = PARTITIONS) -> int:
    """The partition nats-server's ``partition(N, token)`` mapping gives this patient."""
    return fnv1a_32(patient.encode()) % partitions


def mappings(partitions: int = PARTITIONS) -> dict[str, str]:
    """The server's subject mappings (nats-server ``mappings`` block)."""
    p = f"{{{{partition({partitions},2)}}}}"
    w = "{{wildcard(%d)}}"
    return {
        "poise.v1.raw.*.*.*": f"poise.v1.p.{p}.raw.{w % 1}.{w % 2}.{w % 3}",
        "poise.v1.session.*.*": f"poise.v1.p.{p}.session.{w % 1}.{w % 2}",
    }


def raw_subject(site: str, patient: str, sensor: str) -> str:
    """What a native JetStream publisher sends to (the server maps it like an MQTT topic)."""
    return f"poise.v1.raw.{site}.{patient}.{sensor}"


def partition_filter(k: int) -> str:
    return f"poise.v1.p.{k}.>"


RAW_FILTER = "poise.v1.p.*.raw.>"


@dataclass(frozen=True)
class Routed:
    """A message of the partitioned stream, with the MQTT topic it was published on."""

    partition: int
    kind: str  # "raw" or "session"
    topic: str  # e.g. poise/v1/raw/site/patient/sensor


class SubjectError(ValueError):
    pass


def parse_subject(subject: str) -> Routed:
    parts = subject.split(".")
    if len(parts) < 6 or parts[:3] != ["poise", "v1", "p"] or not parts[3].isdigit():
        raise SubjectError(f"not a partitioned poise subject: {subject!r}")
    kind = parts[4]
    rest = parts[5:]
    if (kind, len(rest)) not in (("raw", 3), ("session", 2)):
        raise SubjectError(f"unexpected subject shape: {subject!r}")
    for token, what in zip(rest, ("site", "patient", "sensor"), strict=False):
        check_id(what, token)
    return Routed(int(parts[3]), kind, "/".join(["poise", "v1", kind, *rest]))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class NatsUser:
    name: str
    password: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    admin: bool = False


# Subjects every JetStream client needs: the API for its own consumers and the reply inbox.
_JS_CLIENT = ("$JS.API.>", "$JS.ACK.>", "_INBOX.>")


def role_permissions(role: str, site: str | None = None) -> NatsUser:
    """Per-role permissions on the partitioned subjects, the same rights as the Mosquitto
    ACL (poise.stack.acl_text). Permissions apply to subjects after mapping, so a gateway's
    right to publish raw frames of its own site is written on ``poise.v1.p.*.raw.{site}.>``.
    The user name and password are filled in by the caller."""
    if role == "admin":
        return NatsUser("", "", admin=True)
    if role == "gateway":
        if site is None:
            raise ValueError("a gateway's permissions need its site")
        return NatsUser(
            "", "",
            publish=(f"poise.v1.p.*.raw.{site}.>", f"poise.v1.status.{site}.>", "$MQTT.>",
                     "$JS.API.STREAM.INFO.*", "_INBOX.>"),
            subscribe=("_INBOX.>", "$MQTT.>"),
        )
    if role == "ingest":
        return NatsUser("", "", publish=(*_JS_CLIENT, f"{DEAD_LETTER_PREFIX}.>"),
                        subscribe=(*_JS_CLIENT, "poise.v1.status.>"))
    if role == "worker":
        return NatsUser(
            "", "",
            publish=(*_JS_CLIENT, "$KV.>", "poise.v1.metrics.>", "poise.v1.alerts.>",
                     f"{DEAD_LETTER_PREFIX}.>"),
            subscribe=(*_JS_CLIENT, "$KV.>", "poise.v1.status.>"),
        )
    derived = ("poise.v1.metrics.>", "poise.v1.alerts.>", "poise.v1.status.>")
    if role == "console":
        return NatsUser(
            "", "",
            publish=("poise.v1.p.*.session.>", "$MQTT.>", "_INBOX.>", "$JS.API.>"),
            subscribe=(*derived, "$MQTT.>", "_INBOX.>"),
        )
    if role == "reader":
        return NatsUser("", "", publish=("_INBOX.>", "$MQTT.>"),
                        subscribe=(*derived, "$MQTT.>", "_INBOX.>"))
    raise ValueError(f"unknown role {role!r}")


def server_config(
    *,
    host: str,
    port: int,
    mqtt_port: int,
    store_dir: str,
    users: list[NatsUser],
    partitions: int = PARTITIONS,
    server_name: str = "poise",
) -> str:
    """A nats-server configuration: JetStream, the MQTT listener, mappings, users."""
    lines = [
        f"server_name: {_quote(server_name)}",
        f"listen: {_quote(f'{host}:{port}')}",
        "jetstream {",
        f"  store_dir: {_quote(store_dir)}",
        "}",
        "mqtt {",
        f"  listen: {_quote(f'{host}:{mqtt_port}')}",
        # a gateway may be away for a while; frames it sent are in the stream already
        "  ack_wait: \"30s\"",
        "  max_ack_pending: 10000",
        "}",
        "mappings = {",
    ]
    for src, dst in mappings(partitions).items():
        lines.append(f"  {_quote(src)}: {_quote(dst)}")
    lines += ["}", "authorization {", "  users = ["]
    for u in users:
        if u.admin:
            lines.append(f"    {{ user: {_quote(u.name)}, password: {_quote(u.password)} }}")
            continue
        pub = ", ".join(_quote(s) for s in u.publish)
        sub = ", ".join(_quote(s) for s in u.subscribe)
        lines.append(
            f"    {{ user: {_quote(u.name)}, password: {_quote(u.password)}, "
            f"permissions: {{ publish: [{pub}], subscribe: [{sub}] }} }}"
        )
    lines += ["  ]", "}", ""]
    return "\n".join(lines)
