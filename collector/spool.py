"""A disk-backed spool of outgoing frames (SQLite, in WAL mode).

Every frame is written here before it is published and stays until the broker has
acknowledged it, so a broker outage or a collector restart loses nothing. Acknowledged frames
are kept a little longer (the replay window) because a broker that is killed outright loses
what it had not yet saved; they are published again after a reconnect, which the ingest's
idempotent writes absorb.

The spool has a limit (``max_frames``, by default 5,000,000 frames: about 1.5 GB, or
15 hours of a gateway with 9 sensors at 100 Hz while the broker is unreachable). When it is
full, the *oldest* frames give way to new ones: the session going on now is the one a
therapist acts on, and a gateway that stopped recording would lose it too. Every frame
given up is counted (``dropped``) and logged (at a bounded rate), never silently lost.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from poise.core.ratelog import RateLimitedLog

MAX_FRAMES = 5_000_000
log = logging.getLogger("poise.collector.spool")

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
    def __init__(self, path: Path | str, max_frames: int = MAX_FRAMES) -> None:
        if max_frames < 1:
            raise ValueError(f"a spool holds at least one frame, not {max_frames}")
        self.max_frames = max_frames
        self.dropped = 0  # frames given up, unacknowledged, because the spool was full
        self._full_log = RateLimitedLog(log, every_s=60.0)
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
            self._rows = int(self._db.execute("SELECT count(*) FROM frames").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, items: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO frames (topic, payload) VALUES (?, ?)", items)
            self._rows += len(items)
            over = self._rows - self.max_frames
            if over > 0:
                (unacked,) = self._db.execute(
                    "SELECT count(*) FROM (SELECT acked_ns FROM frames ORDER BY id LIMIT ?) "
                    "WHERE acked_ns IS NULL",
                    (over,),
                ).fetchone()
                self._db.execute(
                    "DELETE FROM frames WHERE id IN (SELECT id FROM frames ORDER BY id LIMIT ?)",
                    (over,),
                )
                self._rows -= over
                self.dropped += int(unacked)
            self._db.execute("COMMIT")
        if over > 0 and self.dropped:
            self._full_log.warning(
                "full", "spool %s is full (%d frames): gave up the oldest, %d unsent so far",
                self.path, self.max_frames, self.dropped,
            )

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
            self._rows -= cur.rowcount
            return cur.rowcount

    def discard_unacked(self) -> int:
        """Drop every frame the broker never acknowledged (an explicit operator decision)."""
        with self._lock:
            n = int(self._db.execute("DELETE FROM frames WHERE acked_ns IS NULL").rowcount)
            self._rows -= n
            return n

    def wait_drained(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        """Wait until every frame is acknowledged; False if some are not by the timeout."""
        deadline = time.monotonic() + timeout_s
        while self.counts()[0]:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def counts(self) -> tuple[int, int]:
        """(unacknowledged, acknowledged but kept for replay)."""
        with self._lock:
            unacked, acked = self._db.execute(
                "SELECT sum(acked_ns IS NULL), sum(acked_ns IS NOT NULL) FROM frames"
            ).fetchone()
        return int(unacked or 0), int(acked or 0)
