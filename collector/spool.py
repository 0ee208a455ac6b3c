"""A disk-backed spool of outgoing frames (SQLite, in WAL mode).

Every frame is written here before it is published and stays until the broker has
acknowledged it, so a broker outage or a collector restart loses nothing. Acknowledged frames
are kept a little longer (the replay window) because a broker that is killed outright loses
what it had not yet saved; they are published again after a reconnect, which the ingest's
idempotent writes absorb.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    acked_ns INTEGER  -- NULL until the broker acknowledged it
);
CREATE INDEX IF NOT EXISTS frames_acked ON frames (acked_ns);
"""


class Spool:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; only a power cut may lose the
            # last transactions, which the gateway's own storage cannot promise anyway.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, items: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO frames (topic, payload) VALUES (?, ?)", items)
            self._db.execute("COMMIT")

    def unacked_after(self, after_id: int, limit: int) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT id, topic, payload FROM frames WHERE acked_ns IS NULL AND id > ? "
                "ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()

    def ack(self, ids: list[int], now_ns: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE frames SET acked_ns = ? WHERE id = ? AND acked_ns IS NULL",
                [(now_ns, i) for i in ids],
            )
            self._db.execute("COMMIT")

    def acked_since(self, since_ns: int) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT id, topic, payload FROM frames WHERE acked_ns >= ? ORDER BY id", (since_ns,)
            ).fetchall()

    def purge(self, acked_before_ns: int) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM frames WHERE acked_ns < ?", (acked_before_ns,))
            return cur.rowcount

    def discard_unacked(self) -> int:
        """Drop every frame the broker never acknowledged (an explicit operator decision)."""
        with self._lock:
            return int(self._db.execute("DELETE FROM frames WHERE acked_ns IS NULL").rowcount)

    def counts(self) -> tuple[int, int]:
        """(unacknowledged, acknowledged but kept for replay)."""
        with self._lock:
            unacked, acked = self._db.execute(
                "SELECT sum(acked_ns IS NULL), sum(acked_ns IS NOT NULL) FROM frames"
            ).fetchone()
        return int(unacked or 0), int(acked or 0)
