"""Staff accounts: argon2id password hashes (argon2-cffi), login with lockout after
repeated failures, server-side login sessions, and the audit trail.

Plain parameters (``Policy``) apart from the records; the clock is passed in as ``now_ns``
so the lockout rules can be tested without waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from poise.console.db import ROLES, Audit, AuthSession, Staff, now_ns

NAME_RE = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A refused account operation, with a message a person can act on."""


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5  # failed logins in a row before the account locks
    lockout_s: float = 15 * 60  # how long it stays locked (``poise user unlock`` ends it)
    session_s: float = 12 * 3600  # a login lasts one working day


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AccountError(
            f"user name {name!r}: expected 2-32 characters, lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(
            f"password: expected at least {MIN_PASSWORD_CHARS} characters, found {len(password)}"
        )
    return password


def audit(
    db: Session, staff_id: int | None, action: str, target: str = "", detail: str = ""
) -> None:
    """One line of the audit trail (ids only: never names of patients or free text)."""
    db.add(Audit(staff_id=staff_id, action=action, target=target, detail=detail[:255]))


def add_user(db: Session, name: str, role: str, password: str) -> Staff:
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {list(ROLES)}")
    check_password(password)
    if db.scalar(select(Staff).where(Staff.name == name)) is not None:
        raise AccountError(
            f"user {name!r} exists already (change the password with 'poise user password')"
        )
    staff = Staff(name=name, role=role, password_hash=_hasher.hash(password))
    db.add(staff)
    db.flush()
    audit(db, None, "user_add", str(staff.id), f"role={role}")
    return staff


def get_user(db: Session, name: str) -> Staff:
    staff = db.scalar(select(Staff).where(Staff.name == name))
    if staff is None:
        raise AccountError(f"no user {name!r} (see 'poise user list')")
    return staff


def set_password(db: Session, name: str, password: str) -> Staff:
    staff = get_user(db, name)
    check_password(password)
    staff.password_hash = _hasher.hash(password)
    db.execute(delete(AuthSession).where(AuthSession.staff_id == staff.id))
    audit(db, None, "user_password", str(staff.id))
    return staff


def unlock(db: Session, name: str) -> Staff:
    staff = get_user(db, name)
    staff.failed_logins = 0
    staff.locked_until_ns = 0
    audit(db, None, "user_unlock", str(staff.id))
    return staff


@dataclass(frozen=True)
class LoginResult:
    staff: Staff | None
    reason: str  # "ok", "wrong", "locked"


def authenticate(
    db: Session, name: str, password: str, policy: Policy, t_ns: int | None = None
) -> LoginResult:
    """Check a login; count failures and lock the account after ``policy.max_failures``.

    A locked account is refused even with the right password until the lock expires."""
    t = now_ns() if t_ns is None else t_ns
    staff = db.scalar(select(Staff).where(Staff.name == name)) if NAME_RE.fullmatch(name) else None
    if staff is None or not staff.active:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        audit(db, None, "login_failed", "", "unknown user")
        return LoginResult(None, "wrong")
    if staff.locked_until_ns > t:
        audit(db, staff.id, "login_refused", str(staff.id), "locked")
        return LoginResult(None, "locked")
    try:
        _hasher.verify(staff.password_hash, password)
    except (VerificationError, InvalidHashError):
        staff.failed_logins += 1
        if staff.failed_logins >= policy.max_failures:
            staff.locked_until_ns = t + int(policy.lockout_s * 1e9)
            staff.failed_logins = 0
            audit(
                db,
                staff.id,
                "account_locked",
                str(staff.id),
                f"after {policy.max_failures} failures",
            )
            return LoginResult(None, "locked")
        audit(db, staff.id, "login_failed", str(staff.id), "wrong password")
        return LoginResult(None, "wrong")
    staff.failed_logins = 0
    if _hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher.hash(password)
    audit(db, staff.id, "login", str(staff.id))
    return LoginResult(staff, "ok")


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(db: Session, staff: Staff, policy: Policy, t_ns: int | None = None) -> str:
    """A new login session; returns the cookie token (only its hash is stored)."""
    t = now_ns() if t_ns is None else t_ns
    token = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            token_sha256=_sha(token),
            staff_id=staff.id,
            csrf=secrets.token_urlsafe(32),
            created_ns=t,
            expires_ns=t + int(policy.session_s * 1e9),
        )
    )
    return token


def find_session(
    db: Session, token: str, t_ns: int | None = None
) -> tuple[AuthSession, Staff] | None:
    t = now_ns() if t_ns is None else t_ns
    auth = db.get(AuthSession, _sha(token))
    if auth is None or auth.expires_ns <= t:
        return None
    staff = db.get(Staff, auth.staff_id)
    if staff is None or not staff.active:
        return None
    return auth, staff


def close_session(db: Session, token: str) -> None:
    auth = db.get(AuthSession, _sha(token))
    if auth is not None:
        audit(db, auth.staff_id, "logout", str(auth.staff_id))
        db.delete(auth)
