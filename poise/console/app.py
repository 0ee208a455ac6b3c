"""The console's web application (Starlette): server-rendered pages, every action a form
POST with a CSRF token, live data over Server-Sent Events.

Pages: the room (patients in session now), the patients list and one patient
(prescription, history, notes, export, report), the live session (trials, traces,
repetitions, alerts, pain and fatigue), and for admins the staff list and the audit trail.
Each page has a JSON twin for automation (``/room.json``, ``/patients/{id}/export.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from poise.console import accounts, records
from poise.console.bridge import Bridge, Fanout
from poise.console.db import (
    AGE_BANDS,
    SEXES,
    Audit,
    AuthSession,
    Patient,
    SessionRow,
    Staff,
    TrialRow,
)
from poise.console.live import LiveBoard
from poise.core.clinical import CONDITIONS, EXERCISES, SEGMENTS, SIDES, exercise_kind

R = TypeVar("R", bound=Response)
HERE = Path(__file__).parent
COOKIE = "poise_session"
LOGIN_CSRF_COOKIE = "poise_login_csrf"
SSE_KEEPALIVE_S = 15.0
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

# the report links its style sheet (/report.css); matplotlib's SVG figures carry a <style>
REPORT_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'"
)


@dataclass
class ConsoleConfig:
    site: str = "clinic"
    policy: accounts.Policy = field(default_factory=accounts.Policy)
    secure_cookies: bool = True
    report: Callable[[Session, str], str] | None = None  # patient id -> report HTML
    report_css: Callable[[], str] | None = None  # the report's style sheet


@dataclass
class RoomRow:
    patient: str
    session: SessionRow | None  # None: live data of a session run elsewhere (a CLI, a script)
    trial: TrialRow | None
    live: dict[str, Any]


@dataclass
class Login:
    staff: Staff
    auth: AuthSession
    db: Session
    form: FormData | None = None


def local_path(target: str) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or ``/\\host``,
    which browsers read as another site)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/"


def fmt_time(t_ns: int | None) -> str:
    if not t_ns:
        return "–"
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(start_ns: int, stop_ns: int | None) -> str:
    end = stop_ns if stop_ns else time.time_ns()
    s = max(0, round((end - start_ns) / 1e9))
    return f"{s // 60} min {s % 60:02d} s"


def exercise_label(ex: str) -> str:
    return EXERCISES.get(ex, ("", ex))[1]


class Console:
    def __init__(
        self,
        db: sessionmaker[Session],
        config: ConsoleConfig,
        board: LiveBoard | None = None,
        fanout: Fanout | None = None,
        bridge: Bridge | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.board = board or LiveBoard()
        self.fanout = fanout or Fanout()
        self.bridge = bridge
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["time"] = fmt_time
        self.env.filters["exercise"] = exercise_label
        self.env.globals.update(
            duration=fmt_duration,
            kind_of=exercise_kind,
            EXERCISES=EXERCISES,
            CONDITIONS=CONDITIONS,
            SIDES=SIDES,
            SEGMENTS=SEGMENTS,
            AGE_BANDS=AGE_BANDS,
            SEXES=SEXES,
        )

    # --- responses
    def render(
        self, request: Request, name: str, ctx: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        login: Login | None = ctx.get("login")
        base = {
            "request": request,
            "site": self.config.site,
            "staff": login.staff if login else None,
            "csrf": login.auth.csrf if login else "",
            "broker_ok": self.bridge.connected() if self.bridge else None,
        }
        html = self.env.get_template(name).render({**base, **ctx})
        return self.secure(HTMLResponse(html, status_code=status))

    @staticmethod
    def secure(resp: R) -> R:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def refuse(
        self, request: Request, login: Login | None, status: int, title: str, message: str
    ) -> HTMLResponse:
        return self.render(
            request, "error.html", {"login": login, "title": title, "message": message}, status
        )

    # --- authentication
    def _login(self, request: Request, db: Session) -> Login | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        found = accounts.find_session(db, token)
        if found is None:
            return None
        return Login(staff=found[1], auth=found[0], db=db)

    def page(
        self, roles: tuple[str, ...] = ("therapist", "admin")
    ) -> Callable[
        [Callable[[Request, Login], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]
    ]:
        """Wrap an endpoint: a login is required, its role must be allowed, and a POST must
        carry the login's CSRF token. The endpoint's database work commits when it returns."""

        def wrap(
            fn: Callable[[Request, Login], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                with self.db() as db:
                    login = self._login(request, db)
                    if login is None:
                        if request.method == "GET" and not request.url.path.endswith(
                            (".json", "/events")
                        ):
                            return RedirectResponse(
                                f"/login?next={request.url.path}", status_code=303
                            )
                        return self.refuse(
                            request, None, 401, "Sign in first", "This needs a signed-in account."
                        )
                    if login.staff.role not in roles:
                        accounts.audit(db, login.staff.id, "refused_role", request.url.path[:64])
                        db.commit()
                        return self.refuse(
                            request,
                            login,
                            403,
                            "Not for your role",
                            f"This page is for {' or '.join(roles)} accounts; you are signed "
                            f"in as a {login.staff.role}.",
                        )
                    if request.method == "POST":
                        login.form = await request.form()
                        sent = login.form.get("csrf")
                        if not isinstance(sent, str) or not secrets.compare_digest(
                            sent, login.auth.csrf
                        ):
                            accounts.audit(
                                db, login.staff.id, "refused_csrf", request.url.path[:64]
                            )
                            db.commit()
                            return self.refuse(
                                request,
                                login,
                                403,
                                "The form has expired",
                                "The form had no valid security token (CSRF). Reload the "
                                "page and send it again.",
                            )
                    resp = await fn(request, login)
                    db.commit()
                    return self.secure(resp)

            return endpoint

        return wrap

    async def login_form(self, request: Request, message: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        nxt = request.query_params.get("next", "/")
        resp = self.render(
            request,
            "login.html",
            {"login_csrf": token, "message": message, "next": local_path(nxt)},
            status,
        )
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            secure=self.config.secure_cookies,
            samesite="strict",
            max_age=3600,
        )
        return resp

    async def login_get(self, request: Request) -> Response:
        with self.db() as db:
            if self._login(request, db) is not None:
                return RedirectResponse("/", status_code=303)
        return await self.login_form(request)

    async def login_post(self, request: Request) -> Response:
        form = await request.form()
        sent, cookie = form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)
        if not isinstance(sent, str) or not cookie or not secrets.compare_digest(sent, cookie):
            return await self.login_form(
                request,
                "The sign-in form had no valid security token (CSRF). It has been reloaded: "
                "sign in again.",
                403,
            )
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        with self.db() as db:
            # argon2 is slow on purpose: keep it off the event loop
            res = await asyncio.to_thread(
                accounts.authenticate, db, name, password, self.config.policy
            )
            if res.staff is None:
                db.commit()
                msg = (
                    "This account is locked after repeated failed sign-ins. Wait "
                    f"{self.config.policy.lockout_s / 60:.0f} minutes or ask an admin to "
                    "unlock it ('poise user unlock NAME')."
                    if res.reason == "locked"
                    else "Wrong user name or password."
                )
                return await self.login_form(request, msg, 401)
            token = accounts.open_session(db, res.staff, self.config.policy)
            db.commit()
        nxt = str(form.get("next", "/"))
        resp = RedirectResponse(local_path(nxt), 303)
        resp.set_cookie(
            COOKIE,
            token,
            httponly=True,
            secure=self.config.secure_cookies,
            samesite="strict",
            max_age=int(self.config.policy.session_s),
        )
        resp.delete_cookie(LOGIN_CSRF_COOKIE)
        return self.secure(resp)

    async def logout(self, request: Request, login: Login) -> Response:
        token = request.cookies.get(COOKIE, "")
        accounts.close_session(login.db, token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    # --- the room
    def room_rows(self, db: Session) -> list[RoomRow]:
        rows = [
            RoomRow(sess.patient_id, sess, trial, self.board.summary(sess.patient_id))
            for sess, trial in records.open_sessions(db)
        ]
        here = {r.patient for r in rows}
        for pid in self.board.recent(time.time()):
            if pid not in here and db.get(Patient, pid) is not None:
                rows.append(RoomRow(pid, None, None, self.board.summary(pid)))
        # open alerts first
        rows.sort(key=lambda r: (not r.live["alerts"], r.patient))
        return rows

    async def room(self, request: Request, login: Login) -> Response:
        return self.render(request, "room.html", {"login": login, "rows": self.room_rows(login.db)})

    async def room_rows_fragment(self, request: Request, login: Login) -> Response:
        return self.render(
            request, "_room_rows.html", {"login": login, "rows": self.room_rows(login.db)}
        )

    async def room_json(self, request: Request, login: Login) -> Response:
        out = []
        for r in self.room_rows(login.db):
            out.append(
                {
                    "patient": r.patient,
                    "session": r.session.id if r.session else None,
                    "trial": r.trial.id if r.trial else None,
                    "exercise": r.trial.exercise if r.trial else None,
                    **r.live,
                }
            )
        return JSONResponse({"site": self.config.site, "in_session": out})

    # --- patients
    async def patients(self, request: Request, login: Login) -> Response:
        return self.render(
            request,
            "patients.html",
            {
                "login": login,
                "patients": records.patients_overview(login.db),
                "form": {},
                "error": "",
            },
        )

    async def patient_add(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        try:
            p = records.add_patient(login.db, self.config.site, login.form, login.staff.id)
        except records.FormError as exc:
            login.db.rollback()
            return self.render(
                request,
                "patients.html",
                {
                    "login": login,
                    "patients": records.patients_overview(login.db),
                    "form": dict(login.form),
                    "error": str(exc),
                },
                400,
            )
        return RedirectResponse(f"/patients/{p.id}", status_code=303)

    def _patient_ctx(self, login: Login, pid: str) -> dict[str, Any]:
        patient = records.get_patient(login.db, pid)
        rx_row, rx = records.current_prescription(login.db, pid)
        return {
            "login": login,
            "patient": patient,
            "rx_row": rx_row,
            "rx": rx,
            "rx_text": rx_row.toml if rx_row else records.EXAMPLE_RX.replace("PID", pid),
            "history": records.history(login.db, pid),
            "notes": records.notes(login.db, pid),
            "open": records.open_session_of(login.db, pid),
            "has_report": self.config.report is not None,
            "error": "",
            "rx_error": "",
        }

    async def patient(self, request: Request, login: Login) -> Response:
        pid = request.path_params["pid"]
        try:
            ctx = self._patient_ctx(login, pid)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        accounts.audit(login.db, login.staff.id, "view_patient", pid)
        return self.render(request, "patient.html", ctx)

    async def prescription_save(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        pid = request.path_params["pid"]
        try:
            records.save_prescription(
                login.db, pid, str(login.form.get("toml", "")), login.staff.id
            )
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            login.db.rollback()
            ctx = self._patient_ctx(login, pid)
            ctx.update(rx_text=str(login.form.get("toml", "")), rx_error=str(exc))
            return self.render(request, "patient.html", ctx, 400)
        return RedirectResponse(f"/patients/{pid}#prescription", status_code=303)

    async def note_add(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        pid = request.path_params["pid"]
        try:
            records.add_note(login.db, pid, str(login.form.get("text", "")), login.staff.id)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            login.db.rollback()
            ctx = self._patient_ctx(login, pid)
            ctx["error"] = str(exc)
            return self.render(request, "patient.html", ctx, 400)
        return RedirectResponse(f"/patients/{pid}#notes", status_code=303)

    async def export_json(self, request: Request, login: Login) -> Response:
        pid = request.path_params["pid"]
        try:
            doc = records.export(login.db, pid)
        except records.NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        accounts.audit(login.db, login.staff.id, "export_patient", pid)
        return JSONResponse(
            doc, headers={"Content-Disposition": f'attachment; filename="{pid}.json"'}
        )

    async def report(self, request: Request, login: Login) -> Response:
        pid = request.path_params["pid"]
        if self.config.report is None:
            return self.refuse(request, login, 404, "No report", "Reports are not available here.")
        try:
            records.get_patient(login.db, pid)
            html = await asyncio.to_thread(self.config.report, login.db, pid)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except Exception as exc:  # the report reads InfluxDB: say what failed, never crash
            return self.refuse(request, login, 502, "The report could not be made", str(exc))
        accounts.audit(login.db, login.staff.id, "view_report", pid)
        resp = HTMLResponse(html)
        # the report is one self-contained document: inline styles and SVG, no script
        resp.headers["Content-Security-Policy"] = REPORT_CSP
        return resp

    # --- sessions
    async def session_start(self, request: Request, login: Login) -> Response:
        pid = request.path_params["pid"]
        try:
            sess = records.start_session(login.db, self.config.site, pid, login.staff.id)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            login.db.rollback()
            return self.refuse(request, login, 409, "The session was not started", str(exc))
        self._sent()
        return RedirectResponse(f"/sessions/{sess.id}", status_code=303)

    def _sent(self) -> None:
        if self.bridge is not None:
            self.bridge.wake()

    def _live_ctx(self, login: Login, sid: str) -> dict[str, Any]:
        sess = records.get_session(login.db, sid)
        _row, rx = records.session_prescription(login.db, sess)
        trials = records.trials(login.db, sid)
        return {
            "login": login,
            "sess": sess,
            "patient": records.get_patient(login.db, sess.patient_id),
            "rx": rx,
            "choices": records.trial_choices(rx),
            "trials": trials,
            "open_trial": next((t for t in trials if t.stop_ns is None), None),
            "error": "",
            "form": {},
        }

    async def live(self, request: Request, login: Login) -> Response:
        sid = request.path_params["sid"]
        try:
            ctx = self._live_ctx(login, sid)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        return self.render(request, "live.html", ctx)

    async def _live_refused(
        self, request: Request, login: Login, sid: str, exc: Exception, status: int
    ) -> Response:
        login.db.rollback()
        try:
            ctx = self._live_ctx(login, sid)
        except records.NotFoundError as nf:
            return self.refuse(request, login, 404, "Not found", str(nf))
        ctx["error"] = str(exc)
        ctx["form"] = dict(login.form or {})
        return self.render(request, "live.html", ctx, status)

    async def trial_start(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        sid = request.path_params["sid"]
        try:
            records.start_trial(login.db, self.config.site, sid, login.form, login.staff.id)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            return await self._live_refused(request, login, sid, exc, exc.status)
        self._sent()
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    async def trial_stop(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        sid, tid = request.path_params["sid"], request.path_params["tid"]
        try:
            records.stop_trial(
                login.db,
                self.config.site,
                sid,
                tid,
                login.form.get("aborted") == "yes",
                login.staff.id,
            )
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            return await self._live_refused(request, login, sid, exc, exc.status)
        self._sent()
        return RedirectResponse(f"/sessions/{sid}", status_code=303)

    async def session_stop(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        sid = request.path_params["sid"]
        try:
            sess = records.stop_session(login.db, self.config.site, sid, login.form, login.staff.id)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        except records.FormError as exc:
            return await self._live_refused(request, login, sid, exc, exc.status)
        self._sent()
        return RedirectResponse(f"/patients/{sess.patient_id}#history", status_code=303)

    async def watch(self, request: Request, login: Login) -> Response:
        """The live view of a patient whose session was started elsewhere: no controls."""
        pid = request.path_params["pid"]
        try:
            patient = records.get_patient(login.db, pid)
        except records.NotFoundError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        ctx: dict[str, Any] = {
            "login": login,
            "sess": None,
            "patient": patient,
            "trials": [],
            "error": "",
            "form": {},
        }
        return self.render(request, "live.html", ctx)

    async def watch_events(self, request: Request, login: Login) -> Response:
        pid = request.path_params["pid"]
        try:
            records.get_patient(login.db, pid)
        except records.NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return self._stream(pid)

    async def live_events(self, request: Request, login: Login) -> Response:
        sid = request.path_params["sid"]
        try:
            sess = records.get_session(login.db, sid)
        except records.NotFoundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return self._stream(sess.patient_id)

    def _stream(self, pid: str) -> Response:
        queue = self.fanout.subscribe(pid)
        first = self.board.snapshot(pid)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                yield _sse(first)
                while True:
                    try:
                        update = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    # merge what queued up meanwhile into one message: fewer redraws
                    while not queue.empty():
                        more = queue.get_nowait()
                        update = {
                            **more,
                            "sway": update["sway"] + more["sway"],
                            "sway_rms": update["sway_rms"] + more["sway_rms"],
                            "joint": update["joint"] + more["joint"],
                        }
                    yield _sse(update)
            finally:
                self.fanout.unsubscribe(pid, queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- admin
    async def users(self, request: Request, login: Login) -> Response:
        return self.render(
            request,
            "users.html",
            {"login": login, "users": records.staff_list(login.db), "error": ""},
        )

    async def user_add(self, request: Request, login: Login) -> Response:
        assert login.form is not None
        f = login.form
        try:
            staff = await asyncio.to_thread(
                accounts.add_user,
                login.db,
                str(f.get("name", "")).strip(),
                str(f.get("role", "")),
                str(f.get("password", "")),
            )
        except accounts.AccountError as exc:
            login.db.rollback()
            return self.render(
                request,
                "users.html",
                {"login": login, "users": records.staff_list(login.db), "error": str(exc)},
                400,
            )
        accounts.audit(login.db, login.staff.id, "user_add_by_admin", str(staff.id))
        return RedirectResponse("/admin/users", status_code=303)

    async def user_unlock(self, request: Request, login: Login) -> Response:
        try:
            accounts.unlock(login.db, request.path_params["name"])
        except accounts.AccountError as exc:
            return self.refuse(request, login, 404, "Not found", str(exc))
        accounts.audit(
            login.db, login.staff.id, "user_unlock_by_admin", request.path_params["name"][:64]
        )
        return RedirectResponse("/admin/users", status_code=303)

    async def audit_page(self, request: Request, login: Login) -> Response:
        rows = login.db.scalars(select(Audit).order_by(desc(Audit.id)).limit(200)).all()
        total = login.db.scalar(select(func.count(Audit.id)))
        return self.render(request, "audit.html", {"login": login, "rows": rows, "total": total})

    # --- the app
    def app(self) -> Starlette:
        p = self.page
        admin = self.page(("admin",))

        async def report_css(_request: Request) -> Response:
            if self.config.report_css is None:
                return Response("", status_code=404)
            return Response(
                self.config.report_css(),
                media_type="text/css",
                headers={"Cache-Control": "max-age=3600"},
            )

        async def not_found(request: Request, exc: Exception) -> Response:
            code = exc.status_code if isinstance(exc, HTTPException) else 500
            return self.refuse(
                request,
                None,
                code,
                "Not found" if code == 404 else "Error",
                "There is no such page.",
            )

        routes = [
            Route("/login", self.login_get, methods=["GET"]),
            Route("/login", self.login_post, methods=["POST"]),
            Route("/logout", p()(self.logout), methods=["POST"]),
            Route("/", p()(self.room)),
            Route("/room/rows", p()(self.room_rows_fragment)),
            Route("/room.json", p()(self.room_json)),
            Route("/patients", p()(self.patients), methods=["GET"]),
            Route("/patients", p()(self.patient_add), methods=["POST"]),
            Route("/patients/{pid}", p()(self.patient)),
            Route("/patients/{pid}/prescription", p()(self.prescription_save), methods=["POST"]),
            Route("/patients/{pid}/notes", p()(self.note_add), methods=["POST"]),
            Route("/patients/{pid}/export.json", p()(self.export_json)),
            Route("/patients/{pid}/report", p()(self.report)),
            Route("/patients/{pid}/live", p()(self.watch)),
            Route("/patients/{pid}/events", p()(self.watch_events)),
            Route("/report.css", report_css),
            Route("/patients/{pid}/sessions", p()(self.session_start), methods=["POST"]),
            Route("/sessions/{sid}", p()(self.live)),
            Route("/sessions/{sid}/events", p()(self.live_events)),
            Route("/sessions/{sid}/trials", p()(self.trial_start), methods=["POST"]),
            Route("/sessions/{sid}/trials/{tid}/stop", p()(self.trial_stop), methods=["POST"]),
            Route("/sessions/{sid}/stop", p()(self.session_stop), methods=["POST"]),
            Route("/admin/users", admin(self.users), methods=["GET"]),
            Route("/admin/users", admin(self.user_add), methods=["POST"]),
            Route("/admin/users/{name}/unlock", admin(self.user_unlock), methods=["POST"]),
            Route("/admin/audit", admin(self.audit_page)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self.fanout.loop = asyncio.get_running_loop()
            yield

        return Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_found},
            lifespan=lifespan,
        )


def _sse(update: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(update, separators=(",", ":")).encode() + b"\n\n"
