"""InfluxDB through its v1 HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

InfluxDB 1.x serves this API natively and 2.x/3.x serve it for compatibility, so one client
speaks to all of them. Auth is pluggable: none, user/password, or token.

Storage layout (docs/architecture.md): database ``poise`` (configurable), retention policy
``raw`` (short) for samples, ``derived`` (long) for metrics. A point is keyed by
measurement, tags and timestamp, so writing a frame twice overwrites it with itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from poise.core.tls import client_context
from poise.core.wire import Frame

RAW_MEASUREMENT = "imu"
RAW_RP = "raw"
DERIVED_RP = "derived"


class InfluxError(RuntimeError):
    """A failed call. ``retryable`` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class Auth:
    """How to authenticate: ``Auth()`` none, ``Auth(username=..., password=...)`` or
    ``Auth(token=...)`` (sent as ``Authorization: Token ...``, as InfluxDB 2 and 3 expect on
    their v1 API)."""

    username: str | None = None
    password: str | None = None
    token: str | None = None
    ca_file: str | None = None  # verify an https server against this CA file (or "system")

    def __repr__(self) -> str:  # never print a secret
        return f"Auth(username={self.username!r}, token={'***' if self.token else None})"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}

    def basic(self) -> tuple[str, str] | None:
        if self.username is not None:
            return (self.username, self.password or "")
        return None


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def tag_string(tags: Mapping[str, str]) -> str:
    """Tags sorted by key, as InfluxDB prefers them."""
    return ",".join(f"{_escape_tag(k)}={_escape_tag(v)}" for k, v in sorted(tags.items()))


def frame_lines(
    frame: Frame, tags: Mapping[str, str], measurement: str = RAW_MEASUREMENT
) -> list[str]:
    """One line-protocol line per sample. ``%.9g`` round-trips every float32 exactly."""
    return frame_text(frame, tags, measurement).split("\n")


def frame_text(frame: Frame, tags: Mapping[str, str], measurement: str = RAW_MEASUREMENT) -> str:
    """The frame's lines joined by newlines, formatted in one operation (the ingest's hot path:
    one ``%`` over the whole frame costs about half of one per line)."""
    n = frame.n_samples
    template = "\n".join([_line_template(measurement, tuple(tags.items()), frame.channels)] * n)
    values: list[float | int] = []
    t, period = frame.t0_ns, frame.period_ns
    for row in frame.data.tolist():
        values.extend(row)
        values.append(t)
        t += period
    return template % tuple(values)


@lru_cache(maxsize=4096)
def _line_template(
    measurement: str, tags: tuple[tuple[str, str], ...], channels: tuple[str, ...]
) -> str:
    """The ``%`` template of one sample's line: ``%.9g`` per value (it round-trips every
    float32 exactly) and ``%d`` for the time; kept per sensor and channel set."""
    return (
        f"{measurement},{tag_string(dict(tags))} "
        + ",".join(f"{name}=%.9g" for name in channels)
        + " %d"
    )


def _field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def point_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], t_ns: int
) -> str:
    """A general point; non-finite floats are left out (line protocol cannot carry them)."""
    parts = [
        f"{_escape_tag(k)}={_field_value(v)}"
        for k, v in fields.items()
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    ]
    if not parts:
        raise ValueError(f"point {measurement} at {t_ns} has no finite field")
    tag_part = f",{tag_string(tags)}" if tags else ""
    return f"{measurement}{tag_part} {','.join(parts)} {t_ns}"


class InfluxV1:
    """A small synchronous client with a persistent HTTP connection."""

    def __init__(
        self,
        url: str,
        database: str,
        auth: Auth | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.auth = auth or Auth()
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            headers=self.auth.headers(),
            auth=self.auth.basic(),
            verify=client_context(self.auth.ca_file) if self.auth.ca_file else True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxV1:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc}", retryable=True) from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise InfluxError(
                f"InfluxDB {path} answered {resp.status_code}: {resp.text[:300]}",
                retryable=True,
                status=resp.status_code,
            )
        if resp.status_code >= 400:
            raise InfluxError(
                f"InfluxDB {path} refused the request ({resp.status_code}): {resp.text[:300]}",
                retryable=False,
                status=resp.status_code,
            )
        return resp

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.TransportError:
            return False

    def write(self, lines: Iterable[str] | bytes, rp: str | None = RAW_RP) -> None:
        body = lines if isinstance(lines, bytes) else "\n".join(lines).encode()
        params = {"db": self.database, "precision": "ns"}
        if rp:
            params["rp"] = rp
        self._call("POST", "/write", params=params, content=body)

    def query(self, q: str, *, epoch: str = "ns") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series of all statements. Raises on a statement error."""
        resp = self._call(
            "POST", "/query", params={"db": self.database, "epoch": epoch}, data={"q": q}
        )
        out: list[dict[str, Any]] = []
        for result in resp.json().get("results", []):
            if "error" in result:
                raise InfluxError(
                    f"query failed: {result['error']} ({_redact(q)})", retryable=False
                )
            out.extend(result.get("series", []))
        return out

    def scalar(self, q: str) -> Any:
        """The first value of the first row of the first series, or None."""
        series = self.query(q)
        if not series or not series[0].get("values"):
            return None
        return series[0]["values"][0][1]

    def server_version(self) -> str | None:
        """The server's version from its ``/ping`` headers (``X-Influxdb-Version``), or None
        when it does not say."""
        resp = self._call("GET", "/ping")
        version = resp.headers.get("X-Influxdb-Version")
        return str(version) if version else None

    def ensure_schema(
        self, raw_retention: str = "30d", derived_retention: str = "INF"
    ) -> list[str]:
        """Create what is missing of the database and its two retention policies; returns
        the statements it ran (none when everything exists).

        Only InfluxDB 1.x has these statements: on 2.x and 3.x the bucket and its DBRP
        mapping are made with that version's own tools (docs/deployment.md) and nothing is
        run. An existing retention policy is never altered: its duration is the operator's.
        A user without the right to look (InfluxDB answers 403) is left to the operator's
        set-up too: writes then say whether it is complete."""
        major = major_version(self.server_version())
        if major is not None and major >= 2:
            return []
        db = json.dumps(self.database)  # double-quoted identifier
        ran: list[str] = []
        try:
            names = {row[0] for s in self.query("SHOW DATABASES") for row in s.get("values", [])}
            if self.database not in names:
                ran.append(f"CREATE DATABASE {db}")
                self.query(ran[-1])
            existing = {
                row[0]
                for s in self.query(f"SHOW RETENTION POLICIES ON {db}")
                for row in s.get("values", [])
            }
            for rp, duration, default in (
                (RAW_RP, raw_retention, True),
                (DERIVED_RP, derived_retention, False),
            ):
                if rp not in existing:
                    ran.append(
                        f"CREATE RETENTION POLICY {rp} ON {db} DURATION {duration} REPLICATION 1"
                        + (" DEFAULT" if default else "")
                    )
                    self.query(ran[-1])
        except InfluxError as exc:
            if exc.status == 403 or "not authorized" in str(exc):
                if ran:
                    raise InfluxError(
                        f"database {self.database} lacks {ran[-1]!r} and this user may not "
                        "create it: run it as an admin (docs/deployment.md)",
                        retryable=False,
                        status=exc.status,
                    ) from None
                return ran
            raise
        return ran

    def count_samples(self, where: str = "", channel: str = "acc_x") -> int:
        clause = f" WHERE {where}" if where else ""
        value = self.scalar(
            f'SELECT count("{channel}") FROM "{RAW_RP}"."{RAW_MEASUREMENT}"{clause}'
        )
        return int(value or 0)


def _redact(q: str) -> str:
    """A statement fit for a message: no password literal."""
    return re.sub(r"(?i)(PASSWORD\s+)'(?:[^'\\]|\\.)*'", r"\1'***'", q)


def major_version(version: str | None) -> int | None:
    """1 for ``1.6.7~rc0``, 2 for ``v2.7.4``, 3 for ``3.0.1``; None when unknown."""
    if not version:
        return None
    head = version.lstrip("vV").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def tags_for(site: str, patient: str, sensor: str) -> dict[str, str]:
    return {"site": site, "patient": patient, "sensor": sensor}
