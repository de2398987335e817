"""The system log in DynamoDB: sharded, TTL-expired, newest-first, cleared in O(1).

Table layout (keys fixed by the infrastructure: ``pk`` S, ``sk`` S, TTL ``expires_at``):

``pk = "ev#<type>#<shard>#<model>"``, ``sk = <event id>``
    One item per event. Event ids start with the nanosecond timestamp, so
    ``sk`` order is time order. Writes spread over ``shards`` partitions per
    model and event type (shard = CRC32 of the id, so a retried write lands on
    the same item instead of duplicating it): no single hot partition key
    however high the request rate. The default model's partitions are
    ``ev#<type>#<shard>``, the layout every event had before events named their
    model, so a table written by an earlier version reads unchanged: its events
    are the default model's.
``pk = "meta"``, ``sk = "model#<name>"``
    One item per model with events, written with a model's first event in each
    process (an idempotent put): :meth:`DynamoDBEventLog.models`, and the
    partitions a read of every model's events queries.
``expires_at``
    Epoch seconds, ``retention_days`` after the write; DynamoDB's TTL deletes
    the item (and expired-but-not-yet-deleted items are filtered on read).
``pk = "meta"``, ``sk = "cutoff"``
    ``before``: an event id. ``clear()`` writes it, one PutItem regardless of
    table size; every read adds ``sk > before`` to its key condition, so
    cleared events vanish at once and TTL reclaims their storage later.

A page query asks every partition of the requested model(s) and type(s) for its
newest ``limit + 1`` items below the cursor (in parallel), merges them newest first
and returns ``limit``; the ``next`` token is the last id returned. A query for one
model reads that model's partitions only (``shards`` per type, as many as before
models were named), never another model's events.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsys.errors import ConfigError
from mlsys.eventlog.model import (
    DEFAULT_MODEL_NAME,
    EVENT_TYPES,
    Event,
    EventLogError,
    EventPage,
    EventType,
    cursor_from_token,
    new_event_id,
    token_after,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_SIZE = 25
"""DynamoDB's BatchWriteItem limit."""
META_PK = "meta"
CUTOFF_SK = "cutoff"
MODEL_SK_PREFIX = "model#"
SECONDS_PER_DAY = 86_400


def _since_bound(since: str) -> str:
    """The smallest event id at or after ISO time ``since``."""
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise ConfigError(f"since must be an ISO-8601 time, got {since!r}") from None
    nanoseconds = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    return f"{max(nanoseconds, 0):020d}"


class DynamoDBEventLog:
    def __init__(
        self,
        table: str,
        *,
        client: DynamoDBClient | None = None,
        retention_days: int = 30,
        shards: int = 8,
        max_attempts: int = 8,
        backoff_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not table:
            raise ConfigError("DynamoDB event log needs a table name")
        if retention_days < 1 or shards < 1 or max_attempts < 1:
            raise ConfigError("retention_days, shards and max_attempts must be >= 1")
        self.table = table
        self.uri = f"dynamodb://{table}"
        self.retention_days = retention_days
        self.shards = shards
        self._client = client
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._clock = clock
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._registered_models: set[str] = set()

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            import boto3  # noqa: PLC0415 - only DynamoDB users pay for the import

            self._client = boto3.client("dynamodb")
        return self._client

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mlsys-log")
            return self._pool

    # --- writes -------------------------------------------------------------------
    def partition(self, event_type: str, event_id: str, model: str = DEFAULT_MODEL_NAME) -> str:
        return partition_key(model, event_type, zlib.crc32(event_id.encode()) % self.shards)

    def partitions(self, model: str, event_type: str) -> list[str]:
        """Every partition holding ``model``'s events of ``event_type``."""
        return [partition_key(model, event_type, shard) for shard in range(self.shards)]

    def _item(self, event: Event) -> dict[str, Any]:
        expires_at = int(self._clock()) + self.retention_days * SECONDS_PER_DAY
        body = event.to_json()
        return {
            "pk": {"S": self.partition(event.type, event.id, event.model)},
            "sk": {"S": event.id},
            "expires_at": {"N": str(expires_at)},
            "body": {"S": body},
        }

    def append(self, event: Event) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        if event.model not in self._registered_models:
            self.append_many((event,))
            return
        try:
            self.client.put_item(TableName=self.table, Item=self._item(event))
        except (BotoCoreError, ClientError) as exc:
            raise EventLogError(f"cannot write to {self.uri}: {exc}") from exc

    def append_many(self, events: Sequence[Event]) -> None:
        # One request may not name the same key twice; the last copy wins anyway.
        unique = list({e.id: e for e in events}.values())
        new_models = sorted({e.model for e in unique} - self._registered_models)
        requests = [{"PutRequest": {"Item": _model_item(name)}} for name in new_models]
        requests.extend({"PutRequest": {"Item": self._item(e)}} for e in unique)
        for start in range(0, len(requests), BATCH_WRITE_SIZE):
            self._write_batch(requests[start : start + BATCH_WRITE_SIZE])
        # Only once written: a failed batch registers its models again on the retry.
        self._registered_models.update(new_models)

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        pending: dict[str, list[Any]] = {self.table: requests}
        for attempt in range(self._max_attempts):
            try:
                response = self.client.batch_write_item(RequestItems=pending)
            except (BotoCoreError, ClientError) as exc:
                raise EventLogError(f"cannot write to {self.uri}: {exc}") from exc
            unprocessed = response.get("UnprocessedItems") or {}
            if not unprocessed.get(self.table):
                return
            pending = dict(unprocessed)
            # Unprocessed items mean throttling: back off exponentially before retrying.
            self._sleep(self._backoff * (2**attempt))
        left = len(pending.get(self.table, []))
        raise EventLogError(
            f"{left} event(s) still unprocessed by {self.uri} after {self._max_attempts} attempts"
        )

    def clear(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": META_PK},
                    "sk": {"S": CUTOFF_SK},
                    "before": {"S": new_event_id()},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise EventLogError(f"cannot clear {self.uri}: {exc}") from exc

    # --- reads --------------------------------------------------------------------
    def cutoff(self) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            item = self.client.get_item(
                TableName=self.table,
                Key={"pk": {"S": META_PK}, "sk": {"S": CUTOFF_SK}},
                ConsistentRead=True,
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise EventLogError(f"cannot read {self.uri}: {exc}") from exc
        return item["before"]["S"] if item else None

    def models(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": META_PK},
                ":prefix": {"S": MODEL_SK_PREFIX},
            },
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        names: list[str] = []
        try:
            while True:
                response = self.client.query(**kwargs)
                names.extend(i["sk"]["S"][len(MODEL_SK_PREFIX) :] for i in response["Items"])
                if "LastEvaluatedKey" not in response:
                    return sorted(names)
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (BotoCoreError, ClientError) as exc:
            raise EventLogError(f"cannot read {self.uri}: {exc}") from exc

    def query(
        self,
        *,
        limit: int = 100,
        event_type: EventType | None = None,
        since: str | None = None,
        next_token: str | None = None,
        model: str | None = None,
    ) -> EventPage:
        upper = cursor_from_token(next_token) if next_token is not None else None
        lower = self.cutoff()
        if since is not None:
            bound = _since_bound(since)
            lower = bound if lower is None else max(lower, bound)
        if lower is not None and upper is not None and lower >= upper:
            return EventPage([], None)
        types = (event_type,) if event_type is not None else EVENT_TYPES
        # Every model's events: each model's partitions, and always the default model's
        # (a table written before events named their model has no model items).
        models = [model] if model is not None else sorted({DEFAULT_MODEL_NAME, *self.models()})
        partitions = [pk for m in models for t in types for pk in self.partitions(m, t)]
        now = int(self._clock())
        results = self._executor().map(
            lambda pk: self._query_partition(pk, lower, upper, limit + 1, now), partitions
        )
        merged = sorted(
            (item for items in results for item in items), key=lambda i: i[0], reverse=True
        )[: limit + 1]
        events = [Event.from_json(body) for _, body in merged[:limit]]
        token = token_after(events[-1]) if len(merged) > limit else None
        return EventPage(events, token)

    def _query_partition(
        self, pk: str, lower: str | None, upper: str | None, wanted: int, now: int
    ) -> list[tuple[str, str]]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "pk = :pk"
        if lower is not None and upper is not None:
            condition += " AND sk BETWEEN :lo AND :hi"
            values[":lo"] = {"S": lower}
            values[":hi"] = {"S": upper}
        elif upper is not None:
            condition += " AND sk < :hi"
            values[":hi"] = {"S": upper}
        elif lower is not None:
            condition += " AND sk >= :lo"
            values[":lo"] = {"S": lower}
        found: list[tuple[str, str]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ExpressionAttributeNames": {"#b": "body", "#e": "expires_at"},
            "ProjectionExpression": "sk, #b, #e",
            "ScanIndexForward": False,
            "Limit": wanted,
        }
        try:
            while len(found) < wanted:
                response = self.client.query(**kwargs)
                for item in response.get("Items", []):
                    sk = item["sk"]["S"]
                    if sk == upper or int(item["expires_at"]["N"]) < now:
                        continue
                    found.append((sk, item["body"]["S"]))
                last = response.get("LastEvaluatedKey")
                if not last:
                    break
                kwargs["ExclusiveStartKey"] = last
        except (BotoCoreError, ClientError) as exc:
            raise EventLogError(f"cannot read {self.uri}: {exc}") from exc
        return found[:wanted]


def partition_key(model: str, event_type: str, shard: int) -> str:
    """``ev#<type>#<shard>#<model>``; ``ev#<type>#<shard>`` for the default model (the
    layout from before events named their model, so older events read as its)."""
    if model == DEFAULT_MODEL_NAME:
        return f"ev#{event_type}#{shard}"
    return f"ev#{event_type}#{shard}#{model}"


def _model_item(name: str) -> dict[str, Any]:
    return {"pk": {"S": META_PK}, "sk": {"S": MODEL_SK_PREFIX + name}}
