"""Console tests: argon2id with the library's recommended cost takes ~0.1 s a hash on this
machine; in-process tests swap in argon2id with the smallest cost so the suite stays fast.
Processes started by the tests (``poise user``, ``poise console``) keep the real cost."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from poise.console import accounts


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("x"))
