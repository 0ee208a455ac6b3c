"""Local services without Docker: Mosquitto and InfluxDB 1.x on free loopback ports.

Each instance gets a generated config and throwaway data folders under one directory, never
the system services and never fixed ports. Used by ``poise demo``, ``poise stack`` and the
test fixtures. The binaries come from Debian's ``mosquitto`` and ``influxdb`` packages
(``make`` installs them when missing).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

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

    def public(self) -> dict[str, Any]:
        return {
            "mqtt": {"host": self.mqtt_host, "port": self.mqtt_port},
            "influx": {"url": self.influx_url, "database": self.database},
            "dir": self.dir,
        }


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


class Mosquitto(Service):
    name = "mosquitto"

    def command(self) -> list[str]:
        return [_require("mosquitto", "mosquitto"), "-c", str(self.root / "mosquitto.conf")]

    def write_config(self) -> None:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        # Started as root, mosquitto switches to the user named here; naming the current user
        # keeps it able to read this config and write its data wherever the folder is (a
        # pytest tmp folder is private to its owner). As a normal user it cannot switch anyway.
        user = getpass.getuser()
        (self.root / "mosquitto.conf").write_text(
            "# generated by poise.stack for a local, throwaway broker\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
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

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Influx(Service):
    name = "influxdb"

    def command(self) -> list[str]:
        return [_require("influxd", "influxdb"), "run", "-config", str(self.root / "influxdb.conf")]

    def write_config(self) -> None:
        rpc_port = free_port()
        r = self.root
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
            "  log-enabled = false\n  auth-enabled = false\n"
            '[logging]\n  level = "warn"\n'
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False


class LocalStack:
    """Mosquitto and InfluxDB under ``root``; ``start`` returns when both answer."""

    def __init__(self, root: Path | str, database: str = "poise") -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.mosquitto = Mosquitto(self.root)
        self.influx = Influx(self.root)

    def start(self, *, detached: bool = False) -> StackInfo:
        self.mosquitto.start(detached=detached)
        try:
            self.influx.start(detached=detached)
        except BaseException:
            self.mosquitto.stop()
            raise
        info = self.info()
        state = {
            **asdict(info),
            "pids": {"mosquitto": self.mosquitto.pid, "influxdb": self.influx.pid},
        }
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2))
        return info

    def info(self) -> StackInfo:
        return StackInfo(
            "127.0.0.1", self.mosquitto.port, self.influx.url, self.database, str(self.root)
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


def down(root: Path | str) -> list[str]:
    """Stop a stack started by ``poise stack up`` in ``root``; returns what was stopped."""
    root = Path(root).resolve()
    state_path = root / STATE_FILE
    if not state_path.exists():
        raise StackError(f"no running stack recorded in {state_path}")
    state = json.loads(state_path.read_text())
    stopped = []
    for name, pid in state.get("pids", {}).items():
        if pid is None or not _alive(pid):
            continue
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
        )
        expected = b"mosquitto" if name == "mosquitto" else b"influxd"
        if expected not in cmdline:
            continue  # the pid was reused by another program: leave it alone
        svc = Service.__new__(Service)
        svc.pid, svc.proc = pid, None
        svc.stop()
        stopped.append(name)
    state_path.unlink()
    return stopped
