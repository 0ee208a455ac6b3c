"""The console's HTTP surface in-process (the real application and a real SQLite file):
sign-in, CSRF, lockout, roles, the audit trail, refused form values, the JSON twins.
The browser tests (test_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import html as html_lib
import re
import warnings
from pathlib import Path

import pytest
from sqlalchemy import select

from poise.console import accounts
from poise.console.app import CSP, ConsoleConfig
from poise.console.db import Audit
from poise.console.server import build

with warnings.catch_warnings():
    # starlette's test client still names an anyio alias that anyio deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery"


@pytest.fixture
def console(tmp_path: Path):
    c = build(tmp_path, None, "clinic", None, None, config=ConsoleConfig())
    with c.db.begin() as s:
        accounts.add_user(s, "anna", "therapist", PASSWORD)
        accounts.add_user(s, "root", "admin", PASSWORD)
    return c


def client(console) -> TestClient:
    # https: the session cookie is Secure, so it only travels over TLS (or to localhost)
    return TestClient(console.app(), base_url="https://testserver")


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def sign_in(cl: TestClient, name: str = "anna", password: str = PASSWORD):
    page = cl.get("/login")
    return cl.post("/login", data={"csrf": csrf_of(page.text), "name": name, "password": password})


def alert_text(html: str) -> str:
    return html_lib.unescape(" ".join(re.findall(r'role="alert"[^>]*>\s*([^<]*)', html)))


def test_no_login_redirects_to_sign_in_and_events_are_refused(console) -> None:
    with client(console) as cl:
        r = cl.get("/patients", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/patients"
        assert cl.get("/room.json").status_code == 401
        assert cl.get("/sessions/s-x/events").status_code == 401


def test_sign_in_sets_a_secure_http_only_cookie_and_headers(console) -> None:
    with client(console) as cl:
        r = sign_in(cl)
        assert r.status_code == 200
        assert r.url.path == "/"
        cookie = r.history[0].headers["set-cookie"]
        assert "poise_session=" in cookie
        for flag in ("HttpOnly", "Secure", "SameSite=strict"):
            assert flag.lower() in cookie.lower()
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        out = cl.post("/logout", data={"csrf": csrf_of(r.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert cl.get("/", follow_redirects=False).status_code == 303


def test_wrong_password_then_lockout(console) -> None:
    with client(console) as cl:
        for _ in range(4):
            r = sign_in(cl, password="wrong password")
            assert r.status_code == 401
            assert "Wrong user name or password" in alert_text(r.text)
        r = sign_in(cl, password="wrong password")
        assert "locked" in alert_text(r.text)
        r = sign_in(cl)  # the right password, but locked
        assert r.status_code == 401
        assert "locked" in alert_text(r.text)
    with console.db() as s:
        actions = [a.action for a in s.scalars(select(Audit))]
    assert "account_locked" in actions


def test_missing_or_wrong_csrf_token_is_refused(console) -> None:
    with client(console) as cl:
        page = cl.get("/login")
        r = cl.post("/login", data={"name": "anna", "password": PASSWORD})
        assert r.status_code == 403
        assert "security token" in alert_text(r.text)
        sign_in(cl)
        r = cl.post("/patients", data={"id": "p001", "age_band": "70-74", "sex": "male"})
        assert r.status_code == 403
        assert "security token (CSRF)" in alert_text(r.text)
        r = cl.post("/patients", data={"csrf": csrf_of(page.text), "id": "p001"})
        assert r.status_code == 403
    with console.db() as s:
        assert s.scalar(select(Audit).where(Audit.action == "refused_csrf")) is not None


def test_another_roles_page_is_refused(console) -> None:
    with client(console) as cl:
        sign_in(cl)
        r = cl.get("/admin/audit")
        assert r.status_code == 403
        assert "for admin accounts" in alert_text(r.text)
    with client(console) as cl:
        sign_in(cl, "root")
        r = cl.get("/admin/audit")
        assert r.status_code == 200
        assert "login" in r.text


def test_a_session_through_the_forms_with_refusals(console) -> None:
    with client(console) as cl:
        room = sign_in(cl)
        token = csrf_of(room.text)
        form = {
            "csrf": token,
            "id": "p001",
            "age_band": "70-74",
            "sex": "female",
            "sensor_0": "p001-lowerback",
            "segment_0": "lower_back",
            "side_0": "none",
        }
        r = cl.post("/patients", data={**form, "age_band": "200"})
        assert r.status_code == 400
        assert "age band: expected one of" in alert_text(r.text)
        r = cl.post("/patients", data=form)
        assert r.url.path == "/patients/p001"
        r = cl.post("/patients/p001/sessions", data={"csrf": token})
        sid = r.url.path.rsplit("/", 1)[1]
        r = cl.post(f"/sessions/{sid}/trials", data={"csrf": token, "exercise": "juggling"})
        assert r.status_code == 400
        assert "'juggling' is not in the known exercises" in alert_text(r.text)
        r = cl.post(f"/sessions/{sid}/trials/t-none/stop", data={"csrf": token})
        assert r.status_code == 409
        assert "trial stop without a start" in alert_text(r.text)
        r = cl.post(f"/sessions/{sid}/trials", data={"csrf": token, "exercise": "quiet_stance"})
        assert r.status_code == 200
        tid = re.search(r"/trials/(t-[0-9a-f]+)/stop", r.text).group(1)
        cl.post(f"/sessions/{sid}/trials/{tid}/stop", data={"csrf": token})
        r = cl.post(f"/sessions/{sid}/stop", data={"csrf": token, "pain_0_10": "11"})
        assert r.status_code == 400
        assert "pain: expected a whole number from 0 to 10" in alert_text(r.text)
        r = cl.post(
            f"/sessions/{sid}/stop", data={"csrf": token, "pain_0_10": "2", "fatigue_borg": "13"}
        )
        assert r.url.path == "/patients/p001"
        assert "pain 2/10" in r.text
        assert "fatigue 13 (Borg)" in r.text
        doc = cl.get("/patients/p001/export.json").json()
        assert doc["sessions"][0]["trials"][0]["exercise"] == "quiet_stance"
        assert cl.get("/room.json").json()["in_session"] == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/patients", "/patients"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://x", "/"),
    ],
)
def test_after_sign_in_only_local_paths(target: str, expected: str) -> None:
    from poise.console.app import local_path

    assert local_path(target) == expected


def test_live_data_of_a_session_run_elsewhere_shows_in_the_room(console) -> None:
    import time

    with client(console) as cl:
        room = sign_in(cl)
        form = {"csrf": csrf_of(room.text), "id": "p001", "age_band": "70-74", "sex": "female"}
        cl.post(
            "/patients",
            data={**form, "sensor_0": "p001-shank", "segment_0": "shank", "side_0": "right"},
        )
        point = {
            "measurement": "joint_live",
            "t_ns": time.time_ns(),
            "tags": {"trial": "t-x", "joint": "knee"},
            "fields": {"angle_deg": 30.0, "rep_count": 2},
        }
        console.board.apply_points("p001", [point])
        console.board.apply_points("p999", [point])  # not a patient of these records
        rows = cl.get("/room.json").json()["in_session"]
        assert [(r["patient"], r["session"], r["rep_count"]) for r in rows] == [("p001", None, 2)]
        assert "/patients/p001/live" in cl.get("/room/rows").text
        page = cl.get("/patients/p001/live")
        assert page.status_code == 200
        assert 'data-events="/patients/p001/events"' in page.text
        assert "Start the trial" not in page.text
