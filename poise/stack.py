"""Local services without Docker: Mosquitto and InfluxDB 1.x on free loopback ports, secure
from the first start.

Each instance gets a generated config and throwaway data folders under one directory, never
the system services and never fixed ports. Used by ``poise demo``, ``poise stack`` and the
test fixtures. The binaries come from Debian's ``mosquitto`` and ``influxdb`` packages
(``make`` installs them when missing).

Security (docs/security.md): the stack generates one password per role and service under
``DIR/secrets`` (readable by its owner only), Mosquitto refuses anonymous clients and applies
the role ACL that also ships as ``docs/deploy/aclfile``, InfluxDB runs with auth on and one
user per role with the least privilege it needs. ``LocalStack.env`` is the set of ``POISE_*``
variables that lets every command run with its own role's credentials. With ``tls=True`` the
stack makes its own CA and server certificate and both listeners speak TLS only.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from poise.core.ids import check_id
from poise.core.influx import Auth, InfluxError, InfluxV1
from poise.core.tls import client_context

STATE_FILE = "stack.json"

# Mosquitto drops QoS 1 messages for a client silently once this many are queued for it. The
# ingest may be away (restart, InfluxDB outage) while frames keep arriving, so the local
# broker queues generously: 2 million frames of ~100 ms is ~55 h of one 100 Hz sensor, or
# ~37 min of a 30-patient, 90-sensor clinic. docs/deployment.md explains sizing it.
MAX_QUEUED_MESSAGES = 2_000_000
# How many unacknowledged QoS 1 messages the broker sends one client before waiting. The
# ingest acknowledges a frame only after InfluxDB took it, so its batches can't be larger.
MAX_INFLIGHT_MESSAGES = 2000
# Seconds between persistence saves. A broker killed outright loses what arrived since the
# last save; publishers replay what the broker acknowledged in a longer window than this
# after any reconnect (collector.publisher.REPLAY_WINDOW_S), and writes are idempotent.
AUTOSAVE_INTERVAL_S = 2

# Roles (docs/security.md). A gateway's MQTT user name is its site id: the ACL's ``pattern``
# lines confine it to that site's topics. Every other role's user name has a dot, which no
# id may contain, so the gateway patterns can never give another role a real site's topic.
ROLES = ("gateway", "ingest", "worker", "console", "reader", "admin")
MQTT_ROLES = ROLES
INFLUX_ROLES = ("ingest", "worker", "console", "reader", "admin")
# InfluxDB 1.x privileges per role on the poise database; admin has all privileges.
INFLUX_GRANTS = {"ingest": "WRITE", "worker": "ALL", "console": "READ", "reader": "READ"}
BROKERS = ("mosquitto", "nats")
RAW_RETENTION = "30d"
DERIVED_RETENTION = "INF"


def role_user(role: str) -> str:
    """The user name of a non-gateway role, the same on MQTT and InfluxDB."""
    if role not in ROLES or role == "gateway":
        raise ValueError(f"unknown role {role!r} (gateway users are named after their site)")
    return f"poise.{role}"


def acl_text() -> str:
    """The Mosquitto ACL, identical for the local stack and docs/deploy/aclfile."""
    return (
        "# poise MQTT access control (Mosquitto acl_file). Nobody is anonymous: every client\n"
        "# logs in with a user of the password file. Topics: docs/wire-format.md.\n"
        "#\n"
        "# Gateways: the user name is the site id, so a gateway publishes raw frames and status\n"
        "# of its own site only, and reads nothing.\n"
        "pattern write poise/v1/raw/%u/#\n"
        "pattern write poise/v1/status/%u/#\n"
        "\n"
        "# ingest: reads raw frames, and device status to know which site a sensor belongs to;\n"
        "# publishes the frames it refuses, with their reason, as dead letters.\n"
        "user poise.ingest\n"
        "topic read poise/v1/raw/#\n"
        "topic read poise/v1/status/#\n"
        "topic write poise/v1/deadletter/ingest\n"
        "\n"
        "# analysis worker: reads raw frames and session events, publishes metrics and alerts.\n"
        "user poise.worker\n"
        "topic read poise/v1/raw/#\n"
        "topic read poise/v1/session/#\n"
        "topic read poise/v1/status/#\n"
        "topic write poise/v1/metrics/#\n"
        "topic write poise/v1/alerts/#\n"
        "\n"
        "# console: publishes session and trial events, reads metrics, alerts and status.\n"
        "user poise.console\n"
        "topic readwrite poise/v1/session/#\n"
        "topic read poise/v1/metrics/#\n"
        "topic read poise/v1/alerts/#\n"
        "topic read poise/v1/status/#\n"
        "\n"
        "# reader: dashboards and people watching; reads derived topics, never raw data.\n"
        "user poise.reader\n"
        "topic read poise/v1/metrics/#\n"
        "topic read poise/v1/alerts/#\n"
        "topic read poise/v1/status/#\n"
        "\n"
        "# admin: operators only (diagnosis, tests); everything of poise and the broker's $SYS.\n"
        "user poise.admin\n"
        "topic readwrite poise/#\n"
        "topic read $SYS/#\n"
    )


class StackError(RuntimeError):
    """A service that could not be started or stopped; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.path.exists(p)), None
    )
    if path is None:
        raise StackError(
            f"{binary} not found. Install Debian's package: apt-get install -y {package} "
            "(make demo and make test do this for you when run as root)"
        )
    return path


@dataclass
class StackInfo:
    mqtt_host: str
    mqtt_port: int
    influx_url: str
    database: str
    dir: str
    tls: bool = False
    env: dict[str, str] = field(default_factory=dict)
    nats_url: str | None = None  # set when the broker is NATS (its MQTT listener is ``mqtt``)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mqtt": {"host": self.mqtt_host, "port": self.mqtt_port, "tls": self.tls},
            "influx": {"url": self.influx_url, "database": self.database},
            "dir": self.dir,
            "env": self.env,
        }
        if self.nats_url is not None:
            out["nats"] = {"url": self.nats_url}
            out["mqtt"]["protocol"] = "3.1.1"  # NATS's MQTT listener speaks 3.1.1 only
        return out


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created so, never world-readable for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    path.chmod(0o600)


class Credentials:
    """One generated password per (service, user), each in its own owner-only file under
    ``secrets/{mqtt,influx}/USER``: what ``*_FILE`` variables and container secrets point at.
    Existing files are kept, so a restarted stack keeps its passwords; rotating one is
    deleting its file and running ``poise stack up`` again (docs/security.md)."""

    def __init__(self, root: Path) -> None:
        self.dir = _private_dir(root)

    def file(self, service: str, user: str) -> Path:
        return self.dir / service / user

    def password(self, service: str, user: str) -> str:
        path = self.file(service, user)
        if not path.exists():
            _private_dir(path.parent)
            _write_private(path, secrets.token_urlsafe(24) + "\n")
        return path.read_text(encoding="utf-8").strip()

    def users(self, service: str) -> list[str]:
        d = self.dir / service
        return sorted(p.name for p in d.iterdir()) if d.exists() else []


class Service:
    """One child process with its config, log and data folder."""

    name = "service"

    def __init__(self, root: Path) -> None:
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.log_path = self.root / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(
        self, *, detached: bool = False, timeout_s: float = 30.0, keep_port: bool = False
    ) -> None:
        """Start on a free port (or the previous one with keep_port, for a restart)."""
        for _attempt in range(3):
            if not (keep_port and self.port):
                self.port = free_port()
            self.write_config()
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=detached,
            )
            log.close()
            self.pid = self.proc.pid
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.ready():
                    return
                time.sleep(0.05)
            self.kill()
            if keep_port:
                time.sleep(0.5)  # the old socket may linger a moment after a kill
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise StackError(f"{self.name} did not start; last log lines:\n{tail}")

    def _signal(self, sig: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def _wait(self, timeout_s: float) -> bool:
        if self.pid is None:
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    return True
            elif not _alive(self.pid):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (services save their state), then SIGKILL if it does not end."""
        self._signal(signal.SIGTERM)
        if not self._wait(timeout_s):
            self.kill()
        self.pid = None
        self.proc = None

    def kill(self) -> None:
        """Kill outright, as a crash would."""
        self._signal(signal.SIGKILL)
        self._wait(10.0)
        self.pid = None
        self.proc = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours still answers kill(0); treat it as gone
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # what clients trust (POISE_MQTT_CA, POISE_INFLUX_CA)
    cert: Path
    key: Path


def make_tls(folder: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A CA of this stack and a server certificate it signs for ``hosts`` (kept if present).

    Made with the ``cryptography`` package: EC P-256 keys, a CA valid 10 years, a server
    certificate valid 2 years with the hosts as subject alternative names."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = _private_dir(folder)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    if files.ca.exists() and files.cert.exists() and files.key.exists():
        return files
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "poise local stack CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(hosts)))]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=730))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca.public_bytes(pem))
    files.cert.write_bytes(cert.public_bytes(pem))
    _write_private(
        files.key,
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    return files


class Mosquitto(Service):
    name = "mosquitto"

    def __init__(self, root: Path, credentials: Credentials, tls: TlsFiles | None = None) -> None:
        super().__init__(root)
        self.credentials = credentials
        self.tls = tls
        self.sites: list[str] = []

    def command(self) -> list[str]:
        return [_require("mosquitto", "mosquitto"), "-c", str(self.root / "mosquitto.conf")]

    def users(self) -> list[str]:
        """The stack's sites and roles, and any site added to it since (its password file
        under secrets/mqtt is kept, so a restart keeps the login)."""
        roles = [role_user(r) for r in MQTT_ROLES if r != "gateway"]
        added = [u for u in self.credentials.users("mqtt") if u not in roles]
        return list(dict.fromkeys([*self.sites, *added, *roles]))

    def write_passwords(self) -> Path:
        """The password file, hashed by ``mosquitto_passwd -U`` (passwords never on a
        command line)."""
        path = self.root / "passwd"
        lines = [f"{u}:{self.credentials.password('mqtt', u)}" for u in self.users()]
        _write_private(path, "\n".join(lines) + "\n")
        tool = _require("mosquitto_passwd", "mosquitto")
        done = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            path.unlink(missing_ok=True)
            raise StackError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
        return path

    def write_config(self) -> None:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        passwd = self.write_passwords()
        acl = self.root / "aclfile"
        acl.write_text(acl_text())
        # Started as root, mosquitto switches to the user named here; naming the current user
        # keeps it able to read this config and write its data wherever the folder is (a
        # pytest tmp folder is private to its owner). As a normal user it cannot switch anyway.
        user = getpass.getuser()
        tls = (
            f"certfile {self.tls.cert}\nkeyfile {self.tls.key}\ntls_version tlsv1.2\n"
            if self.tls
            else ""
        )
        (self.root / "mosquitto.conf").write_text(
            "# generated by poise.stack for a local, throwaway broker\n"
            "per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n"
            f"{tls}"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {acl}\n"
            f"user {user}\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"autosave_interval {AUTOSAVE_INTERVAL_S}\n"
            f"max_queued_messages {MAX_QUEUED_MESSAGES}\n"
            "max_queued_bytes 0\n"
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP), e.g. after adding a site."""
        self.write_passwords()
        self._signal(signal.SIGHUP)

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Influx(Service):
    name = "influxdb"

    def __init__(self, root: Path, tls: TlsFiles | None = None) -> None:
        super().__init__(root)
        self.tls = tls

    def command(self) -> list[str]:
        return [_require("influxd", "influxdb"), "run", "-config", str(self.root / "influxdb.conf")]

    def write_config(self) -> None:
        rpc_port = free_port()
        r = self.root
        tls = (
            f'  https-enabled = true\n  https-certificate = "{self.tls.cert}"\n'
            f'  https-private-key = "{self.tls.key}"\n'
            if self.tls
            else ""
        )
        (r / "influxdb.conf").write_text(
            "# generated by poise.stack for a local, throwaway InfluxDB\n"
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{rpc_port}"\n'
            f'[meta]\n  dir = "{r}/meta"\n'
            f'[data]\n  dir = "{r}/data"\n  wal-dir = "{r}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            "[subscriber]\n  enabled = false\n"
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n  auth-enabled = true\n"
            f"{tls}"
            '[logging]\n  level = "warn"\n'
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        verify: Any = client_context(str(self.tls.ca)) if self.tls else True
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5, verify=verify).status_code == 204
        except httpx.HTTPError:
            return False


class StackRunningError(StackError):
    """A stack recorded in this folder is still running."""

    def __init__(self, message: str, state: dict[str, Any], complete: bool) -> None:
        super().__init__(message)
        self.state = state
        self.complete = complete


def _running(root: Path) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The recorded state of a stack in ``root`` and its processes still alive, if any."""
    state_path = root / STATE_FILE
    if not state_path.exists():
        return None
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    alive = {
        name: pid
        for name, pid in state.get("pids", {}).items()
        if pid is not None and _ours(name, pid)
    }
    return (state, alive) if alive else None


def _ours(name: str, pid: int) -> bool:
    """``pid`` is alive and still runs the program this stack started under that name."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    program = {"mosquitto": b"mosquitto", "influxdb": b"influxd", "nats": b"nats-server"}
    return program.get(name, b"\0") in cmdline


class LocalStack:
    """Mosquitto and InfluxDB under ``root``; ``start`` returns when both answer, with
    credentials for every role (``env``, ``mqtt_login``, ``influx_auth``)."""

    def __init__(
        self,
        root: Path | str,
        database: str = "poise",
        *,
        sites: Iterable[str] = ("demo",),
        tls: bool = False,
        raw_retention: str = RAW_RETENTION,
        derived_retention: str = DERIVED_RETENTION,
        broker: str = "mosquitto",
    ) -> None:
        site_list = [check_id("site", s) for s in sites]
        if not site_list:
            raise StackError("a stack needs at least one site for its gateways")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.raw_retention = raw_retention
        self.derived_retention = derived_retention
        self.credentials = Credentials(self.root / "secrets")
        self.tls = make_tls(self.root / "tls") if tls else None
        if broker not in BROKERS:
            raise StackError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")
        self.broker = broker
        self.mosquitto: Any
        if broker == "nats":
            if tls:
                raise StackError(
                    "TLS on the local NATS stack is not wired yet; see docs/deployment.md for "
                    "a NATS deployment with TLS"
                )
            from poise.jetstream.server import NatsServer

            # the same users, passwords and rights as Mosquitto's (docs/deployment.md)
            self.mosquitto = NatsServer(self.root, self.credentials, sites=site_list)
        else:
            self.mosquitto = Mosquitto(self.root, self.credentials, self.tls)
            self.mosquitto.sites = site_list
        self.influx = Influx(self.root, self.tls)

    # --- lifecycle ---
    def start(self, *, detached: bool = False) -> StackInfo:
        found = _running(self.root)
        if found is not None:
            state, alive = found
            complete = set(alive) == {self.mosquitto.name, "influxdb"}
            pids = ", ".join(f"{n} pid {p}" for n, p in alive.items())
            hint = "" if complete else f"; stop what is left: poise stack down --dir {self.root}"
            raise StackRunningError(
                f"a stack is already running in {self.root} ({pids}){hint}", state, complete
            )
        self.mosquitto.start(detached=detached)
        try:
            self.influx.start(detached=detached)
            self.bootstrap_influx()
        except BaseException:
            self.mosquitto.stop()
            self.influx.stop()
            raise
        info = self.info()
        state = {
            **asdict(info),
            "pids": {self.mosquitto.name: self.mosquitto.pid, "influxdb": self.influx.pid},
        }
        _write_private(self.root / STATE_FILE, json.dumps(state, indent=2))
        return info

    def bootstrap_influx(self) -> None:
        """Admin user first (InfluxDB allows that one statement without auth), then the
        database, its retention policies and one user per role, each only if missing."""
        admin = role_user("admin")
        with InfluxV1(self.influx.url, self.database, self.influx_auth("admin")) as db:
            try:
                users = {row[0] for s in db.query("SHOW USERS") for row in s.get("values", [])}
            except InfluxError as exc:
                if exc.status != 401 and "create admin user first" not in str(exc):
                    raise
                with InfluxV1(self.influx.url, self.database, Auth(ca_file=self._ca())) as anon:
                    anon.query(
                        f"CREATE USER {_q(admin)} WITH PASSWORD "
                        f"{_s(self.credentials.password('influx', admin))} WITH ALL PRIVILEGES"
                    )
                users = {admin}
            db.ensure_schema(self.raw_retention, self.derived_retention)
            for role, grant in INFLUX_GRANTS.items():
                user = role_user(role)
                pw = _s(self.credentials.password("influx", user))
                if user not in users:
                    db.query(f"CREATE USER {_q(user)} WITH PASSWORD {pw}")
                db.query(f"GRANT {grant} ON {_q(self.database)} TO {_q(user)}")

    def add_site(self, site: str) -> tuple[str, str]:
        """Give the gateways of another site a login (reloads a running broker); returns
        (user, password)."""
        site = check_id("site", site)
        if site not in self.mosquitto.sites:
            self.mosquitto.sites.append(site)
            if self.mosquitto.pid is not None:
                self.mosquitto.reload()
                time.sleep(0.2)  # the broker re-reads its files on the signal
        return site, self.credentials.password("mqtt", site)

    def info(self) -> StackInfo:
        nats = self.broker == "nats"
        return StackInfo(
            "127.0.0.1",
            self.mosquitto.mqtt_port if nats else self.mosquitto.port,
            self.influx.url,
            self.database,
            str(self.root),
            self.tls is not None,
            self.env,
            self.mosquitto.url if nats else None,
        )

    def stop(self) -> None:
        self.mosquitto.stop()
        self.influx.stop()
        (self.root / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- credentials ---
    def _ca(self) -> str | None:
        return str(self.tls.ca) if self.tls else None

    def mqtt_login(self, role: str, site: str | None = None) -> tuple[str, str]:
        """(user, password) of ``role`` on the broker; a gateway logs in as its site (the
        first site of the stack unless ``site`` is given, which is added when new)."""
        if role == "gateway":
            return self.add_site(site or self.mosquitto.sites[0])
        user = role_user(role)
        return user, self.credentials.password("mqtt", user)

    def mqtt_kwargs(self, role: str, site: str | None = None) -> dict[str, Any]:
        """``username``, ``password`` and ``tls_ca`` of ``role``, as ``Publisher`` and
        ``Ingest`` take them."""
        user, password = self.mqtt_login(role, site)
        return {"username": user, "password": password, "tls_ca": self._ca()}

    def mqtt_client(self, role: str, site: str | None = None, **kw: Any) -> Any:
        """A paho MQTT v5 client logged in as ``role`` (TLS when on), not yet connected."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from poise.core.tls import configure_mqtt

        protocol = mqtt.MQTTv311 if self.broker == "nats" else mqtt.MQTTv5
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol, **kw)
        client.username_pw_set(*self.mqtt_login(role, site))
        configure_mqtt(client, self._ca())
        return client

    def influx_auth(self, role: str) -> Auth:
        """InfluxDB credentials of ``role`` (with the stack's CA when TLS is on)."""
        user = role_user(role)
        return Auth(
            username=user, password=self.credentials.password("influx", user), ca_file=self._ca()
        )

    def influx_client(self, role: str) -> InfluxV1:
        return InfluxV1(self.influx.url, self.database, self.influx_auth(role))

    @property
    def env(self) -> dict[str, str]:
        """``POISE_*`` variables for every role: user names, ``*_FILE`` paths of the password
        files, the CA when TLS is on, and the read-only InfluxDB pair for Grafana and queries
        by hand. Export them all and each command picks its own role's."""
        env: dict[str, str] = {}
        for role in MQTT_ROLES:
            user = self.mosquitto.sites[0] if role == "gateway" else role_user(role)
            self.credentials.password("mqtt", user)
            env[f"POISE_{role.upper()}_MQTT_USER"] = user
            env[f"POISE_{role.upper()}_MQTT_PASSWORD_FILE"] = str(
                self.credentials.file("mqtt", user)
            )
        for role in INFLUX_ROLES:
            user = role_user(role)
            self.credentials.password("influx", user)
            env[f"POISE_{role.upper()}_INFLUX_USER"] = user
            env[f"POISE_{role.upper()}_INFLUX_PASSWORD_FILE"] = str(
                self.credentials.file("influx", user)
            )
        reader = role_user("reader")
        env["POISE_INFLUX_READ_USER"] = reader
        env["POISE_INFLUX_READ_PASSWORD"] = self.credentials.password("influx", reader)
        if self.tls:
            env["POISE_MQTT_CA"] = str(self.tls.ca)
            env["POISE_INFLUX_CA"] = str(self.tls.ca)
        if self.broker == "nats":
            env["POISE_MQTT_PROTOCOL"] = "3.1.1"  # NATS's MQTT listener (poise.core.mqttconf)
        return env


def _q(identifier: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return json.dumps(identifier)


def _s(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def env_for_site(root: Path | str, site: str) -> dict[str, str]:
    """The recorded ``env`` of the stack in ``root`` with the gateway login of ``site``,
    which is created (and the running broker reloaded) when the stack has none yet."""
    root = Path(root).resolve()
    state_path = root / STATE_FILE
    if not state_path.exists():
        raise StackError(f"no stack recorded in {state_path}; start one: poise stack up")
    state = json.loads(state_path.read_text())
    env = dict(state.get("env", {}))
    site = check_id("site", site)
    credentials = Credentials(root / "secrets")
    if site not in credentials.users("mqtt"):
        broker = Mosquitto(root, credentials)
        broker.pid = state.get("pids", {}).get("mosquitto")
        credentials.password("mqtt", site)
        if broker.pid is not None and _ours("mosquitto", broker.pid):
            broker.reload()
            time.sleep(0.2)
        else:
            broker.pid = None
            broker.write_passwords()
    env["POISE_GATEWAY_MQTT_USER"] = site
    env["POISE_GATEWAY_MQTT_PASSWORD_FILE"] = str(credentials.file("mqtt", site))
    return env


def down(root: Path | str) -> list[str]:
    """Stop every service a stack in ``root`` recorded; returns what was stopped."""
    root = Path(root).resolve()
    state_path = root / STATE_FILE
    if not state_path.exists():
        raise StackError(f"no running stack recorded in {state_path}")
    try:
        state = json.loads(state_path.read_text())
    except ValueError:
        raise StackError(f"{state_path} is not a stack record; remove it by hand") from None
    stopped = []
    for name, pid in state.get("pids", {}).items():
        if pid is None or not _ours(name, pid):
            continue  # gone, or the pid was reused by another program: leave it alone
        svc = Service.__new__(Service)
        svc.pid, svc.proc = pid, None
        svc.stop()
        stopped.append(name)
    state_path.unlink()
    return stopped
