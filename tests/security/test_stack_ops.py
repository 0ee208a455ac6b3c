"""Operating the stack: up twice on one folder reuses it, down stops everything; the
InfluxDB schema is made only where the server has such statements and only for what is
missing, never resetting an operator's retention."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from poise.core.influx import Auth, InfluxError, InfluxV1, major_version
from poise.stack import _alive

pytestmark = pytest.mark.integration
POISE = [sys.executable, "-m", "poise.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POISE, *args], capture_output=True, text=True, timeout=120, check=False)


def _connack(port: int, user: str, password: str) -> str:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    box: dict[str, str] = {}
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda c, u, f, rc, p: (box.setdefault("rc", str(rc)), done.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()
    return box.get("rc", "no answer")


def _pids(folder: Path) -> dict[str, int]:
    return json.loads((folder / "stack.json").read_text())["pids"]


def test_stack_up_twice_reuses_it_and_down_stops_all(tmp_path: Path):
    first = run("stack", "up", "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    pids = _pids(tmp_path)
    try:
        second = run("stack", "up", "--dir", str(tmp_path))
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert "reusing it" in second.stderr
        a, b = json.loads(first.stdout), json.loads(second.stdout)
        assert b["reused"] is True
        assert (a["mqtt"], a["influx"], a["env"]) == (b["mqtt"], b["influx"], b["env"])
        assert _pids(tmp_path) == pids  # no second broker or database on the same files
        env = run("stack", "env", "--dir", str(tmp_path))
        assert env.returncode == 0
        assert "export POISE_INGEST_MQTT_USER=poise.ingest" in env.stdout.splitlines()
        # a new site's gateway login, added to the running broker
        new = run("stack", "env", "--dir", str(tmp_path), "--site", "s9")
        assert new.returncode == 0, new.stderr
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in new.stdout.splitlines()
        )
        assert exported["POISE_GATEWAY_MQTT_USER"] == "s9"
        password = Path(exported["POISE_GATEWAY_MQTT_PASSWORD_FILE"]).read_text().strip()
        assert _connack(a["mqtt"]["port"], "s9", password) == "Success"
        assert _connack(a["mqtt"]["port"], "s9", "wrong") == "Not authorized"
        # one of the two dies: up refuses (it would start a second one beside the survivor)
        os.kill(pids["influxdb"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pids["influxdb"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        third = run("stack", "up", "--dir", str(tmp_path))
        assert third.returncode == 1
        assert "poise stack down --dir" in third.stderr
        assert "Traceback" not in third.stderr
    finally:
        down = run("stack", "down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["stopped"] == ["mosquitto"]
    assert not any(_alive(p) for p in pids.values())
    again = run("stack", "up", "--dir", str(tmp_path))  # the same folder starts again cleanly
    try:
        assert again.returncode == 0, again.stderr
    finally:
        assert run("stack", "down", "--dir", str(tmp_path)).returncode == 0


def test_schema_is_created_only_where_missing_and_retention_is_left_alone(stack):
    with stack.influx_client("admin") as admin:
        assert major_version(admin.server_version()) == 1
        assert admin.ensure_schema() == []  # the stack made everything
        admin.query('ALTER RETENTION POLICY raw ON "poise" DURATION 7d')  # the operator's
        admin.query('DROP RETENTION POLICY derived ON "poise"')
        ran = admin.ensure_schema(raw_retention="30d")
        assert ran == ['CREATE RETENTION POLICY derived ON "poise" DURATION INF REPLICATION 1']
        rps = {
            r[0]: r[1]
            for s in admin.query('SHOW RETENTION POLICIES ON "poise"')
            for r in s["values"]
        }
        assert rps["raw"] == "168h0m0s"
        assert admin.ensure_schema() == []
    # the ingest's write-only user may not look: it leaves the set-up to the operator
    with stack.influx_client("ingest") as ingest:
        assert ingest.ensure_schema() == []
    with InfluxV1(stack.influx.url, "other", stack.influx_auth("ingest")) as missing:
        with pytest.raises(InfluxError, match="may not create it") as exc:
            missing.ensure_schema()
        assert not exc.value.retryable


def test_ingest_with_a_wrong_password_exits_2_with_the_reason(stack):
    info = stack.info()
    env = {
        **os.environ,
        "POISE_INGEST_INFLUX_PASSWORD_FILE": "",
        "POISE_INGEST_INFLUX_PASSWORD": "x",
    }
    res = subprocess.run(
        [*POISE, "ingest", "--mqtt", f"127.0.0.1:{info.mqtt_port}", "--influx", info.influx_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert res.returncode == 2
    assert "401" in res.stderr
    assert "Traceback" not in res.stderr


class _FakeInflux2(http.server.BaseHTTPRequestHandler):
    """InfluxDB 2.x cannot be installed here (no Debian package): this stands in for its
    /ping only, to show that no InfluxQL schema statement is sent to a 2.x or 3.x server."""

    queries: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.send_response(204)
        self.send_header("X-Influxdb-Version", self.server.version)  # type: ignore[attr-defined]
        self.send_header("X-Influxdb-Build", "OSS")
        self.end_headers()

    def do_POST(self) -> None:
        self.queries.append(self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("version", ["v2.7.10", "3.0.1"])
def test_no_schema_statement_is_sent_to_influxdb_2_or_3(version):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeInflux2)
    server.version = version  # type: ignore[attr-defined]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with InfluxV1(f"http://127.0.0.1:{server.server_port}", "poise", Auth(token="t")) as c:
            assert c.server_version() == version
            assert c.ensure_schema() == []
        assert _FakeInflux2.queries == []
    finally:
        server.shutdown()
        server.server_close()


def test_version_strings():
    assert major_version("1.6.7~rc0") == 1
    assert major_version("v2.7.10") == 2
    assert major_version("3.0.1") == 3
    assert major_version(None) is None
    assert major_version("unknown") is None
