"""The durable event store behind ``POST /events``: SQLite in WAL mode.

An append is one transaction, committed with ``synchronous=FULL`` before the call returns, so an
acknowledged event survives the process being killed (and, with FULL, the machine losing power).
``secure_delete`` overwrites what :meth:`EventStore.forget` removes. A server database can later
sit behind the same four methods.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    ts REAL NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, ts);
"""


def default_path(artifacts: str | Path) -> Path:
    """The event store of one artifact: ``<artifact folder>.events.sqlite`` beside it (outside the
    folder, which a rebuild replaces; named after it, so sibling artifacts never share one).

    >>> default_path("/srv/artifacts/shop").as_posix()
    '/srv/artifacts/shop.events.sqlite'
    """
    path = Path(artifacts).absolute()
    return path.parent / f"{path.name}.events.sqlite"


class EventStore:
    """``append(rows) -> ids``, ``for_user(user, since) -> [(item, event, ts)]``, ``forget(user)``, ``count()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(SCHEMA)

    def append(self, rows: Iterable[tuple[str, str, str, float | None]]) -> list[int]:
        """Store (user_id, item_id, event, timestamp or None = now) rows in one transaction; returns
        their ids once committed."""
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids = []
                for user, item, event, ts in rows:
                    cur.execute("INSERT INTO events (user_id, item_id, event, ts, received) VALUES (?, ?, ?, ?, ?)",
                                (user, item, event, now if ts is None else float(ts), now))
                    ids.append(int(cur.lastrowid))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def for_user(self, user: str, since: float = 0.0, limit: int = 500) -> list[tuple[str, str, float]]:
        """The user's events after ``since`` (epoch seconds), oldest first, at most ``limit`` (the newest)."""
        with self._lock:
            rows = self._db.execute("SELECT item_id, event, ts FROM events WHERE user_id = ? AND ts > ? "
                                    "ORDER BY ts DESC, id DESC LIMIT ?", (user, since, limit)).fetchall()
        return rows[::-1]

    def forget(self, user: str) -> int:
        """Delete every event of ``user``; returns how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM events WHERE user_id = ?", (user,))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left behind in the write-ahead log
        return int(cur.rowcount)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def ids(self) -> set[int]:
        with self._lock:
            return {int(r[0]) for r in self._db.execute("SELECT id FROM events")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
