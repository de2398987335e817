"""The embedded system log: a local SQLite file (``sqlite:///path``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsys.eventlog.model import (
    Event,
    EventPage,
    EventType,
    cursor_from_token,
    token_after,
)

_INSERT = "INSERT OR IGNORE INTO events(id, type, time, body) VALUES (?, ?, ?, ?)"
"""The event id is the key: appending an event again (a retried batch) is a no-op."""


class SqliteEventLog:
    """Events in a local SQLite file (WAL mode; safe across threads and processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.uri = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                " id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT NOT NULL,"
                " body TEXT NOT NULL)"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS events_type_id ON events(type, id)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def append(self, event: Event) -> None:
        self.append_many((event,))

    def append_many(self, events: Sequence[Event]) -> None:
        rows = [(e.id, e.type, e.time, e.to_json()) for e in events]
        if len(rows) == 1:
            with self._lock:
                self._conn.execute(_INSERT, rows[0])
            return
        with self._lock:
            # One transaction per batch: all or nothing, and one commit instead of
            # one per row (the background writer's batches are ~2x faster).
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(
        self,
        *,
        limit: int = 100,
        event_type: EventType | None = None,
        since: str | None = None,
        next_token: str | None = None,
    ) -> EventPage:
        clauses: list[str] = []
        params: list[Any] = []
        if event_type is not None:
            clauses.append("type = ?")
            params.append(event_type)
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if next_token is not None:
            clauses.append("id < ?")
            params.append(cursor_from_token(next_token))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT body FROM events {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._conn.execute(sql, [*params, limit + 1]).fetchall()
        events = [Event.from_json(body) for (body,) in rows[:limit]]
        token = token_after(events[-1]) if len(rows) > limit else None
        return EventPage(events, token)

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM events")
