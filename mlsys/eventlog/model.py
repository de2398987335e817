"""The system-log data model: events, pages, page tokens and the :class:`EventLog` interface."""

from __future__ import annotations

import base64
import functools
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson

from mlsys.errors import MlsysError
from mlsys.knobs import default_of

EventType = Literal["prediction", "training", "error", "feedback", "monitor", "shadow", "scoring"]
EVENT_TYPES: tuple[EventType, ...] = (
    "prediction",
    "training",
    "error",
    "feedback",
    "monitor",
    "shadow",
    "scoring",
)
"""``shadow``: a shadow-rollout candidate's output next to the champion's (never served);
``scoring``: one file scored by ``mlsys predict`` (rows, errors, model version, seconds)."""


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
    return f"{_iso_second(seconds)}.{nanos // 1000:06d}Z"


@functools.lru_cache(maxsize=4)
def _iso_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC (cached: consecutive events share their second)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def new_event_id(now_ns: int | None = None) -> str:
    """Time-ordered unique id: nanoseconds since the epoch plus random bits.

    The bits only separate events of the same nanosecond, so they come from
    :mod:`random` (reseeded in every forked process), ~10x cheaper than
    :mod:`secrets` on the request path.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    return f"{now_ns:020d}-{random.getrandbits(32):08x}"


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
DEFAULT_MODEL_NAME: str = default_of("runtime", "model_name")
"""The model of an event that names none: what ``MLSYS_MODEL_NAME`` defaults to, so
events written before events named their model read as the default model's."""


_now_ns = time.time_ns


@dataclass(frozen=True, kw_only=True, init=False)
class Event:
    """One log entry. ``id`` sorts in time order; ``data`` is type-specific."""

    type: EventType
    model: str = DEFAULT_MODEL_NAME
    """The model (registry name) the event is about; events stored before events named
    their model read as :data:`DEFAULT_MODEL_NAME`."""
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    """Defaults to :func:`new_event_id` now."""
    time: str = ""
    """Defaults to the instant in ``id``: one clock reading, so the log's id order
    is its time order, whichever process or thread wrote an event first."""
    request_id: str | None = None
    model_version: str | None = None

    def __init__(
        self,
        *,
        type: EventType,
        model: str = DEFAULT_MODEL_NAME,
        data: Mapping[str, Any] | None = None,
        id: str = "",
        time: str = "",
        request_id: str | None = None,
        model_version: str | None = None,
    ) -> None:
        if not id:
            now_ns = _now_ns()
            id = new_event_id(now_ns)
            if not time:
                seconds, nanos = divmod(now_ns, 1_000_000_000)
                time = f"{_iso_second(seconds)}.{nanos // 1000:06d}Z"
        elif not time:
            time = _iso_from_id(id)
        # Frozen: the fields are set once, in one call (the generated __init__ makes a
        # slow object.__setattr__ per field; events are built on the request path).
        self.__dict__.update(
            type=type,
            model=model,
            data={} if data is None else data,
            id=id,
            time=time,
            request_id=request_id,
            model_version=model_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready members; ``data`` is the event's own dict (not a copy)."""
        data = self.data
        return {
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "request_id": self.request_id,
            "model": self.model,
            "model_version": self.model_version,
            "data": data if type(data) is dict else dict(data),
        }

    def to_json(self) -> str:
        """Compact UTF-8 JSON, as stored by the log implementations.

        orjson rather than :mod:`json`: ~10x faster, which matters because the
        background writer shares the GIL with the request threads. Computed
        once per event (the size check before storing reuses it).
        """
        cached: str | None = self.__dict__.get("_json")
        if cached is None:
            cached = orjson.dumps(self.to_dict(), default=str, option=_ORJSON_OPTIONS).decode()
            object.__setattr__(self, "_json", cached)
        return cached

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
            model=str(raw.get("model") or DEFAULT_MODEL_NAME),
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
        model: str | None = None,
    ) -> EventPage:
        """Newest first. ``since`` is an ISO-8601 time (inclusive lower bound); ``model``
        keeps one model's events (``None``: every model's)."""
        ...

    def models(self) -> list[str]:
        """The names of the models with events in the log (ever appended, in name order)."""
        ...

    def clear(self) -> None:
        """Make every event logged so far invisible to :meth:`query`."""
        ...


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
