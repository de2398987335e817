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
    """Events in a local SQLite file (WAL mode; safe across threads and processes).

    ``checkpoint_seconds``: move WAL checkpoints off the writes. By default SQLite
    checkpoints in the commit that crosses 1000 WAL pages, and a checkpoint ends
    with an fsync of the database (measured ~20 ms on the development VM): the
    write that triggers it, and every writer queued behind it, wait that long.
    With this set, commits never checkpoint and a background thread checkpoints at
    most this often, after writes: a ``RESTART`` checkpoint. It holds writers back
    while it runs, as the automatic one does, but runs once per interval instead of
    every 1000 pages (~250 single-event commits), and it lets the next write start
    the WAL from its beginning, so the WAL stays the size of one interval's writes
    (passive checkpoints racing a steady stream of writes never finish: the WAL
    grew by ~30 MB/s). For latency-sensitive writers (``mlsys serve``'s durable
    delivery).
    """

    def __init__(self, path: str | Path, *, checkpoint_seconds: float | None = None) -> None:
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
            if checkpoint_seconds is not None:
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = (
            _Checkpointer(self.path, checkpoint_seconds) if checkpoint_seconds is not None else None
        )

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def append(self, event: Event) -> None:
        self.append_many((event,))

    def append_many(self, events: Sequence[Event]) -> None:
        rows = [(e.id, e.type, e.time, e.to_json()) for e in events]
        with self._lock:
            if len(rows) == 1:
                self._conn.execute(_INSERT, rows[0])
            else:
                # One transaction per batch: all or nothing, and one commit instead of
                # one per row (the background writer's batches are ~2x faster).
                self._conn.execute("BEGIN")
                try:
                    self._conn.executemany(_INSERT, rows)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        if self._checkpointer is not None:
            self._checkpointer.written()

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


class _Checkpointer:
    """WAL checkpoints on a thread of their own, after writes, at most every
    ``interval`` seconds (see :class:`SqliteEventLog`). Started by the first write."""

    def __init__(self, path: Path, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._dirty = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def written(self) -> None:
        if not self._dirty.is_set():  # set() takes a lock and notifies: not per write
            self._dirty.set()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="mlsys-log-checkpoint", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
        try:
            while True:
                self._dirty.wait()
                if self._stopped.wait(self._interval):
                    break
                self._dirty.clear()
                conn.execute("PRAGMA wal_checkpoint(RESTART)")
            conn.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error:
            pass  # the next writer without this option, or the next start, checkpoints
        finally:
            conn.close()
