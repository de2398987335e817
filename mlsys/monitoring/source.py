"""Stream the events of a time window out of the system log, page by page.

The monitor aggregates, so it needs every event of a window once, in any
order, and never all of them in memory. :func:`iter_events` reads:

* SQLite: one read-only cursor over the window (``fetchmany`` pages);
* DynamoDB: each of the model's partitions (``ev#<type>#<shard>[#<model>]``) on its
  own, paginated, from the window's first event id (``GET /log``'s newest-first merge
  asks every partition for a full page per page returned, which over a whole window
  would read each item once per shard);
* any other :class:`~mlsys.eventlog.EventLog`: ``query`` pages.

Events come back as plain dicts (the stored JSON), the cheapest form to aggregate.
A :class:`ReadBudget` bounds a read by events and stored bytes (the rollout evaluator's
live-quality join runs every few minutes and must not read a busy day's log each time).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from mlsys.eventlog import (
    DEFAULT_MODEL_NAME,
    EventLog,
    EventLogError,
    EventType,
    SqliteEventLog,
)

if TYPE_CHECKING:
    from mlsys.eventlog.dynamodb import DynamoDBEventLog

PAGE = 1000


@dataclass(kw_only=True)
class ReadBudget:
    """At most ``max_events`` events and ``max_bytes`` of their stored JSON, then stop.

    Pass one to :func:`iter_events`; afterwards :attr:`exhausted` says whether the read
    was cut short (the events read are then a prefix of the window, not all of it).
    """

    max_events: int
    max_bytes: int
    events: int = 0
    bytes: int = 0
    exhausted: bool = False

    def charge(self, size: int) -> bool:
        """Count one event of ``size`` bytes; False (and exhausted) once over the budget."""
        if self.events >= self.max_events or self.bytes + size > self.max_bytes:
            self.exhausted = True
            return False
        self.events += 1
        self.bytes += size
        return True


def iter_events(
    log: EventLog,
    *,
    types: Sequence[EventType],
    since: str,
    until: str,
    model: str | None = None,
    budget: ReadBudget | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of ``types`` with ``since <= time <= until`` (ISO-8601 UTC ``...Z``), of
    ``model`` only if given, until ``budget`` (if any) runs out."""
    for size, event in _sized_events(log, types=types, since=since, until=until, model=model):
        if budget is not None and not budget.charge(size):
            return
        yield event


Sized = tuple[int, dict[str, Any]]
"""An event and the size of its stored JSON (what a :class:`ReadBudget` counts)."""


def _sized_events(
    log: EventLog,
    *,
    types: Sequence[EventType],
    since: str,
    until: str,
    model: str | None,
) -> Iterator[Sized]:
    if isinstance(log, SqliteEventLog):
        yield from _sqlite_events(log, types=types, since=since, until=until, model=model)
        return
    from mlsys.eventlog.dynamodb import DynamoDBEventLog as Dynamo  # noqa: PLC0415

    if isinstance(log, Dynamo):
        yield from _dynamodb_events(log, types=types, since=since, until=until, model=model)
        return
    for event_type in types:
        token: str | None = None
        while True:
            page = log.query(
                limit=PAGE, event_type=event_type, since=since, next_token=token, model=model
            )
            for event in page.events:
                if event.time <= until:
                    yield len(event.to_json()), event.to_dict()
            token = page.next_token
            if token is None:
                break


def _sqlite_events(
    log: SqliteEventLog,
    *,
    types: Sequence[EventType],
    since: str,
    until: str,
    model: str | None,
) -> Iterator[Sized]:
    # A connection of its own, read-only: the server's writer keeps working meanwhile.
    conn = sqlite3.connect(f"{log.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        marks = ",".join("?" * len(types))
        sql = f"SELECT body FROM events WHERE type IN ({marks}) AND time >= ? AND time <= ?"  # noqa: S608
        params: list[str] = [*types, since, until]
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(PAGE):
            for (body,) in rows:
                yield len(body), orjson.loads(body)
    finally:
        conn.close()


def event_id_bound(moment: str) -> str:
    """The smallest event id at or after ISO time ``moment`` (ids start with epoch ns)."""
    parsed = datetime.fromisoformat(moment)
    nanoseconds = int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000
    return f"{max(nanoseconds, 0):020d}"


def _dynamodb_events(
    log: DynamoDBEventLog,
    *,
    types: Sequence[EventType],
    since: str,
    until: str,
    model: str | None,
) -> Iterator[Sized]:
    lower = event_id_bound(since)
    cutoff = log.cutoff()  # events before the last clear are invisible, as in GET /log
    if cutoff is not None and cutoff > lower:
        lower = cutoff
    # Ids of the last microsecond of the window sort below the next microsecond's bound.
    upper = f"{int(event_id_bound(until)) + 1000:020d}"
    now = int(time.time())
    models = [model] if model is not None else sorted({DEFAULT_MODEL_NAME, *log.models()})
    for name in models:
        for event_type in types:
            for pk in log.partitions(name, event_type):
                for size, event in _partition(log, pk, lower, upper, now):
                    if since <= event["time"] <= until:
                        yield size, event


def _partition(log: DynamoDBEventLog, pk: str, lower: str, upper: str, now: int) -> Iterator[Sized]:
    kwargs: dict[str, Any] = {
        "TableName": log.table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {
            ":pk": {"S": pk},
            ":lo": {"S": lower},
            ":hi": {"S": upper},
        },
        "ExpressionAttributeNames": {"#b": "body", "#e": "expires_at"},
        "ProjectionExpression": "sk, #b, #e",
    }
    while True:
        try:
            response = log.client.query(**kwargs)
        except Exception as exc:  # botocore's errors; botocore is imported lazily
            raise EventLogError(f"cannot read {log.uri}: {exc}") from exc
        for item in response.get("Items", []):
            if int(item["expires_at"]["N"]) < now:
                continue  # expired, not yet deleted by TTL
            body = item["body"]["S"]
            yield len(body), orjson.loads(body)
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last
