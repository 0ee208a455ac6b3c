"""Pseudonymous identifiers: the one check every entry point uses (config, CLI, topics,
wire frames, session events, console forms).

An id is ``[A-Za-z0-9_-]{1,64}``. That keeps names with spaces out, but not
``Jane_Doe_1950-03-02``; the rule that ids are pseudonymous (no names, no birth dates) is
enforced where ids enter the system (see docs/security.md once it exists).
"""

from __future__ import annotations

import re

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
ID_RE = re.compile(ID_PATTERN)


class IdError(ValueError):
    """An id that is not a pseudonymous id of the allowed form."""


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a valid id, else IdError naming ``kind`` (site, patient, ...)."""
    if not is_id(value):
        raise IdError(f"{kind} id {value!r} must match {ID_PATTERN} (pseudonymous ids only)")
    return value
