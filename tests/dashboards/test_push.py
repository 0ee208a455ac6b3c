"""``poise dashboards push`` against a stand-in for Grafana's HTTP API: Grafana itself cannot
run here, so a small HTTP server on loopback answers the endpoints the command uses the way
Grafana 11 documents them, and records every call. The test checks what a real Grafana would
receive: the folder, each dashboard as committed, each alert rule, the credential header."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards import alerts, build
from poise.cli import main

TOKEN = "glsa_test_token_0123456789"


class StandIn:
    """Grafana's state as far as the command sees it: folders, dashboards, alert rules."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, Any]] = []
        self.folders: dict[str, str] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.status_override: int | None = None

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.status_override:
            return self.status_override, {"message": "denied"}
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:2] == ["api", "folders"] and len(parts) == 3:
            uid = parts[2]
            if uid in self.folders:
                return 200, {"uid": uid, "title": self.folders[uid]}
            return 404, {"message": "folder not found"}
        if method == "POST" and parts == ["api", "folders"]:
            self.folders[body["uid"]] = body["title"]
            return 200, {"uid": body["uid"], "title": body["title"]}
        if method == "POST" and parts == ["api", "dashboards", "db"]:
            if body["folderUid"] not in self.folders:
                return 400, {"message": "folder not found"}
            self.dashboards[body["dashboard"]["uid"]] = body
            return 200, {"status": "success", "uid": body["dashboard"]["uid"]}
        if parts[:4] == ["api", "v1", "provisioning", "alert-rules"]:
            if method == "GET":
                uid = parts[4]
                return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "nf"})
            if method == "POST":
                self.rules[body["uid"]] = body
                return 201, body
            if method == "PUT":
                if parts[4] not in self.rules:
                    return 404, {"message": "nf"}
                self.rules[parts[4]] = body
                return 200, body
        if method == "PUT" and parts[:4] == ["api", "v1", "provisioning", "folder"]:
            self.groups[(parts[4], parts[6])] = body
            return 200, body
        return 404, {"message": f"no such endpoint {method} {path}"}


@pytest.fixture
def grafana() -> Iterator[tuple[str, StandIn]]:
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            state.calls.append((self.command, self.path, self.headers.get("Authorization"), body))
            status, answer = state.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815 (the names http.server calls)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _committed(name: str) -> dict[str, Any]:
    return json.loads((build.GENERATED / f"{name}.json").read_text(encoding="utf-8"))


def test_push_uploads_folder_dashboards_and_alert_rules(grafana, monkeypatch, capsys) -> None:
    url, state = grafana
    monkeypatch.setenv("POISE_GRAFANA_TOKEN", TOKEN)
    assert main(["dashboards", "push", "--grafana", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folder_created"] is True
    assert out["dashboards"] == list(build.DASHBOARDS)
    assert out["alert_rules_created"] == len(alerts.provisioning()["groups"][0]["rules"])

    assert state.folders == {"poise": "poise"}
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in state.calls)
    for name in build.DASHBOARDS:
        sent = state.dashboards[_committed(name)["uid"]]
        assert sent["folderUid"] == "poise"
        assert sent["overwrite"] is True
        assert sent["dashboard"] == {**_committed(name), "id": None}
    rules = alerts.provisioning()["groups"][0]["rules"]
    for rule in rules:
        stored = state.rules[rule["uid"]]
        assert stored["folderUID"] == "poise"
        assert stored["data"] == rule["data"]
    group = state.groups[("poise", alerts.GROUP)]
    assert group["interval"] == 10
    assert [r["uid"] for r in group["rules"]] == [r["uid"] for r in rules]


def test_push_twice_updates_in_place(grafana, monkeypatch, capsys) -> None:
    url, state = grafana
    monkeypatch.setenv("POISE_GRAFANA_TOKEN", TOKEN)
    assert main(["dashboards", "push", "--grafana", url]) == 0
    first = (dict(state.dashboards), dict(state.rules))
    state.calls.clear()
    capsys.readouterr()
    assert main(["dashboards", "push", "--grafana", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folder_created"] is False
    assert out["alert_rules_created"] == 0
    assert out["alert_rules_updated"] == len(first[1])
    assert (state.dashboards, state.rules) == first
    assert not [c for c in state.calls if c[0] == "POST" and c[1] == "/api/folders"]


def test_push_rewrites_the_datasource_uid(grafana, monkeypatch) -> None:
    url, state = grafana
    monkeypatch.setenv("POISE_GRAFANA_TOKEN", TOKEN)
    assert main(["dashboards", "push", "--grafana", url, "--datasource-uid", "clinic-influx"]) == 0
    sent = json.dumps([state.dashboards, state.rules])
    assert "poise-influxdb" not in sent
    assert sent.count('"clinic-influx"') > 20


def test_push_without_a_credential_is_a_usage_error(grafana, monkeypatch, capsys) -> None:
    url, state = grafana
    for var in ("POISE_GRAFANA_TOKEN", "POISE_GRAFANA_TOKEN_FILE", "POISE_GRAFANA_USER"):
        monkeypatch.delenv(var, raising=False)
    assert main(["dashboards", "push", "--grafana", url]) == 2
    err = capsys.readouterr().err
    assert "POISE_GRAFANA_TOKEN" in err
    assert "Traceback" not in err
    assert state.calls == []


@pytest.mark.parametrize(("status", "words"), [(401, "refused the credential"), (403, "Editor")])
def test_push_refused_says_why(grafana, monkeypatch, capsys, status: int, words: str) -> None:
    url, state = grafana
    monkeypatch.setenv("POISE_GRAFANA_TOKEN", TOKEN)
    state.status_override = status
    assert main(["dashboards", "push", "--grafana", url]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert TOKEN not in err


def test_push_to_nothing_listening_fails_cleanly(monkeypatch, capsys) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("POISE_GRAFANA_TOKEN", TOKEN)
    assert (
        main(["dashboards", "push", "--grafana", f"http://127.0.0.1:{port}", "--timeout-s", "2"])
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot reach" in err
    assert TOKEN not in err
