"""The embedded system log: a local SQLite file (``sqlite:///path``).

Table ``events`` holds one row per event (the JSON body, plus the columns queries
filter on: ``type``, ``time`` and ``model``); table ``models`` the names of the
models that have events. A log file written before events named their model is
migrated when opened: ``model`` is added with :data:`~mlsys.eventlog.model.DEFAULT_MODEL_NAME`
as its default, so its rows read as the default model without being rewritten.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsys.eventlog.model import (
    DEFAULT_MODEL_NAME,
    Event,
    EventPage,
    EventType,
    cursor_from_token,
    token_after,
)

_INSERT = "INSERT OR IGNORE INTO events(id, type, time, body, model) VALUES (?, ?, ?, ?, ?)"
"""The event id is the key: appending an event again (a retried batch) is a no-op."""
_INSERT_MODEL = "INSERT OR IGNORE INTO models(name) VALUES (?)"
# A constant, not input: the default of the column that pre-model rows read as.
_MODEL_COLUMN = f"model TEXT NOT NULL DEFAULT '{DEFAULT_MODEL_NAME}'"


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
        self._known_models: set[str] = set()
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._create_or_migrate()
            if checkpoint_seconds is not None:
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = (
            _Checkpointer(self.path, checkpoint_seconds) if checkpoint_seconds is not None else None
        )

    def _create_or_migrate(self) -> None:
        # IMMEDIATE: two processes opening an old file at once migrate it once.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                " id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT NOT NULL,"
                f" body TEXT NOT NULL, {_MODEL_COLUMN})"
            )
            self._conn.execute("CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY)")
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}
            if "model" not in columns:  # a log from before events named their model
                self._conn.execute(f"ALTER TABLE events ADD COLUMN {_MODEL_COLUMN}")
                self._conn.execute(
                    "INSERT OR IGNORE INTO models(name) SELECT ? WHERE EXISTS"
                    " (SELECT 1 FROM events)",
                    (DEFAULT_MODEL_NAME,),
                )
            self._conn.execute("CREATE INDEX IF NOT EXISTS events_type_id ON events(type, id)")
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS events_model_type_id ON events(model, type, id)"
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def append(self, event: Event) -> None:
        self.append_many((event,))

    def append_many(self, events: Sequence[Event]) -> None:
        rows = [(e.id, e.type, e.time, e.to_json(), e.model) for e in events]
        new_models = {e.model for e in events} - self._known_models
        with self._lock:
            if len(rows) == 1 and not new_models:
                self._conn.execute(_INSERT, rows[0])
            else:
                # One transaction per batch: all or nothing, and one commit instead of
                # one per row (the background writer's batches are ~2x faster).
                self._conn.execute("BEGIN")
                try:
                    self._conn.executemany(_INSERT_MODEL, [(name,) for name in new_models])
                    self._conn.executemany(_INSERT, rows)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                self._known_models |= new_models
        if self._checkpointer is not None:
            self._checkpointer.written()

    def query(
        self,
        *,
        limit: int = 100,
        event_type: EventType | None = None,
        since: str | None = None,
        next_token: str | None = None,
        model: str | None = None,
    ) -> EventPage:
        clauses: list[str] = []
        params: list[Any] = []
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
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

    def models(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT name FROM models ORDER BY name").fetchall()
        return [name for (name,) in rows]

    def clear(self) -> None:
        """Delete every event; the model names stay known (as the DynamoDB log's do)."""
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
