"""The system log served by ``GET /log``: predictions, training outcomes and errors.

One small interface, :class:`EventLog`, with implementations chosen by URI via
:func:`open_event_log`:

* ``sqlite:///path/to/log.sqlite3`` -- the embedded default for local use.
* ``dynamodb://table`` -- on AWS (see :mod:`mlsys.eventlog_dynamodb`).

Events are newest-first when read, paginated with an opaque ``next`` token.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlparse

import orjson

from mlsys.errors import ConfigError, MlsysError

if TYPE_CHECKING:
    from mlsys.settings import Settings

EventType = Literal["prediction", "training", "error"]
EVENT_TYPES: tuple[EventType, ...] = ("prediction", "training", "error")


class InvalidPageTokenError(MlsysError):
    code = "invalid_next_token"


class EventLogError(MlsysError):
    """The log store could not be read or written."""

    code = "log_unavailable"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _iso_from_id(event_id: str) -> str:
    """The time an id from :func:`new_event_id` was taken; now for any other id."""
    stamp = event_id.partition("-")[0]
    if len(stamp) != 20 or not stamp.isdigit():
        return now_iso()
    seconds, nanos = divmod(int(stamp), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_event_id(now_ns: int | None = None) -> str:
    """Time-ordered unique id: nanoseconds since the epoch plus random bits."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return f"{now_ns:020d}-{secrets.token_hex(4)}"


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True, kw_only=True)
class Event:
    """One log entry. ``id`` sorts in time order; ``data`` is type-specific."""

    type: EventType
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)
    time: str = ""
    """Defaults to the instant in ``id``: one clock reading, so the log's id order
    is its time order, whichever process or thread wrote an event first."""
    request_id: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        if not self.time:
            object.__setattr__(self, "time", _iso_from_id(self.id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "request_id": self.request_id,
            "model_version": self.model_version,
            "data": dict(self.data),
        }

    def to_json(self) -> str:
        """Compact UTF-8 JSON, as stored by the log implementations.

        orjson rather than :mod:`json`: ~10x faster, which matters because the
        background writer shares the GIL with the request threads.
        """
        return orjson.dumps(self.to_dict(), default=str, option=_ORJSON_OPTIONS).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        if raw.get("type") not in EVENT_TYPES:
            raise ValueError(f"unknown event type {raw.get('type')!r}")
        return cls(
            id=str(raw["id"]),
            type=raw["type"],
            time=str(raw["time"]),
            request_id=raw.get("request_id"),
            model_version=raw.get("model_version"),
            data=raw.get("data") or {},
        )


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    next_token: str | None


def encode_token(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidPageTokenError("next token is not one this API issued") from None
    if not isinstance(payload, dict):
        raise InvalidPageTokenError("next token is not one this API issued")
    return payload


def cursor_from_token(token: str) -> str:
    """The event id a ``next`` token continues below (pages are newest first)."""
    cursor = decode_token(token).get("before")
    if not isinstance(cursor, str):
        raise InvalidPageTokenError("next token is not one this API issued")
    return cursor


def token_after(event: Event) -> str:
    return encode_token({"before": event.id})


class EventLog(Protocol):
    """Append, read newest-first, and clear the system log."""

    uri: str

    def append(self, event: Event) -> None: ...

    def append_many(self, events: Sequence[Event]) -> None: ...

    def query(
        self,
        *,
        limit: int = 100,
        event_type: EventType | None = None,
        since: str | None = None,
        next_token: str | None = None,
    ) -> EventPage:
        """Newest first. ``since`` is an ISO-8601 time (inclusive lower bound)."""
        ...

    def clear(self) -> None:
        """Make every event logged so far invisible to :meth:`query`."""
        ...


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


def parse_log_uri(uri: str) -> tuple[Literal["sqlite", "dynamodb"], str]:
    """Validate a log URI without opening anything: ``(scheme, path or table)``."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as in SQLAlchemy.
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else parsed.path
        if not path:
            raise ConfigError(f"log URI {uri!r} has no file path")
        return "sqlite", path
    if parsed.scheme == "dynamodb":
        if not parsed.netloc:
            raise ConfigError(f"log URI {uri!r} has no table name")
        return "dynamodb", parsed.netloc
    raise ConfigError(f"log URI {uri!r}: use sqlite:///path or dynamodb://table")


def open_event_log(uri: str, **kwargs: Any) -> EventLog:
    """Open the log a URI names: ``sqlite:///path`` or ``dynamodb://table``.

    Extra keyword arguments go to the DynamoDB implementation (client,
    retention, shards).
    """
    scheme, location = parse_log_uri(uri)
    if scheme == "sqlite":
        return SqliteEventLog(location)
    from mlsys.eventlog_dynamodb import DynamoDBEventLog  # noqa: PLC0415

    return DynamoDBEventLog(location, **kwargs)


def open_event_log_for(
    settings: Settings, uri: str | None = None, *, client: Any = None
) -> EventLog:
    """Open ``uri`` (default ``settings.log_uri``) with the operator's log settings.

    Every writer goes through here so that a changed ``MLSYS_LOG_SHARDS`` or
    ``MLSYS_LOG_RETENTION_DAYS`` reaches training and ``mlsys models`` events too:
    an event written to a shard the readers do not scan would never be served.
    ``client`` is an injectable boto3 DynamoDB client (ignored for SQLite).
    """
    target = settings.log_uri if uri is None else uri
    if parse_log_uri(target)[0] == "sqlite":
        return open_event_log(target)
    return open_event_log(
        target,
        client=client,
        retention_days=settings.log_retention_days,
        shards=settings.log_shards,
    )


def events_from_lines(lines: Iterable[str]) -> list[Event]:
    """Parse events that were printed as structured JSON log lines (async delivery)."""
    events: list[Event] = []
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            raw = json.loads(line[start:])
        except ValueError:
            continue
        candidate = raw.get("mlsys_event") if isinstance(raw, dict) else None
        if isinstance(candidate, dict):
            try:
                events.append(Event.from_dict(candidate))
            except (KeyError, TypeError, ValueError):
                # One malformed line must not make the whole batch fail (and be
                # retried forever by the subscription); it is skipped.
                continue
    return events
