"""Pseudonymous identifiers: the one check every entry point uses (config, CLI, topics,
wire frames, session events, console forms).

An id is ``[A-Za-z0-9_-]{1,64}`` (what topics and tags can carry) **and** does not look like
a name or a date, by a rule a clinic can adjust (docs/security.md):

- a date such as ``1950-03-02``, ``02-03-1950`` or ``02_03_50`` anywhere in it, or
  ``19500302`` as a part of its own between ``-``/``_`` (years 1900-2099), since a date of
  birth is identifying (a run of digits inside a random code, as in ``e-4f19500302ab``, is
  not taken for a date);
- two capitalised words joined by ``_`` or ``-`` (``Jane_Doe``, ``Doe-Jane``), the usual shape
  of a name typed into an id field.

So ``Jane_Doe_1950-03-02`` is refused, ``P0042`` or ``p001-lowerback`` are fine. The rule is
the regular expression :data:`DEFAULT_DENY`; ``poise`` commands replace it with the
``POISE_ID_DENY`` environment variable (an empty value turns it off), see
:func:`set_deny_pattern`. No rule can recognise every name: the clinic's own numbering
scheme is what keeps ids pseudonymous; this catches the common slips.
"""

from __future__ import annotations

import re

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
ID_RE = re.compile(ID_PATTERN)

_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_YEAR = r"(?:19|20)[0-9]{2}"
DEFAULT_DENY = (
    rf"(?<![0-9]){_YEAR}[-_]{_MONTH}[-_]{_DAY}(?![0-9])"  # 1950-03-02, 1950_03_02
    rf"|(?<![0-9A-Za-z]){_YEAR}{_MONTH}{_DAY}(?![0-9A-Za-z])"  # 19500302 standing alone
    rf"|(?<![0-9]){_DAY}[-_]{_MONTH}[-_](?:{_YEAR}|[0-9]{{2}})(?![0-9])"  # 02-03-1950, 02_03_50
    r"|[A-Z][a-z]+[_-][A-Z][a-z]+"  # Jane_Doe, Doe-Jane
)
DENY_ENV = "POISE_ID_DENY"

_deny: re.Pattern[str] | None = re.compile(DEFAULT_DENY)


class IdError(ValueError):
    """An id that is not a pseudonymous id of the allowed form."""


def set_deny_pattern(pattern: str | None) -> None:
    """Replace the name-and-date rule: a regular expression searched in every id (``None``
    restores the default, ``""`` turns the rule off). Raises IdError on a bad expression."""
    global _deny  # noqa: PLW0603 -- one rule for the whole process, set once at start
    if pattern is None:
        _deny = re.compile(DEFAULT_DENY)
        return
    try:
        _deny = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise IdError(f"{DENY_ENV}: not a regular expression: {exc}") from None


def deny_pattern() -> str | None:
    return _deny.pattern if _deny is not None else None


def id_problem(kind: str, value: object) -> str | None:
    """Why ``value`` is not an acceptable ``kind`` id, or None when it is."""
    if not isinstance(value, str) or ID_RE.fullmatch(value) is None:
        return f"{kind} id {value!r} must match {ID_PATTERN} (pseudonymous ids only)"
    if _deny is not None:
        hit = _deny.search(value)
        if hit is not None:
            return (
                f"{kind} id {value!r} looks like a name or a date ({hit.group(0)!r}); use a "
                f"pseudonymous code such as P0042 (the rule is {DENY_ENV}, docs/security.md)"
            )
    return None


def is_id(value: object) -> bool:
    if not isinstance(value, str) or ID_RE.fullmatch(value) is None:
        return False
    return _deny is None or _deny.search(value) is None


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a valid id, else IdError naming ``kind`` (site, patient, ...)."""
    problem = id_problem(kind, value)
    if problem is not None:
        raise IdError(problem)
    return value
