"""The DynamoDB system log under moto: sharding, pagination, TTL, O(1) clear, retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlsys.eventlog import Event, EventLogError, InvalidPageTokenError, open_event_log
from mlsys.eventlog.dynamodb import DynamoDBEventLog
from tests.inference_support import create_log_table, fake_aws_credentials

TABLE = "mlsys-log"
DAY = 86_400


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_log_table(client, TABLE)
        yield client


def make_events(
    count: int, *, start_ns: int = 1_764_000_000_000_000_000, event_type: str = "prediction"
) -> list[Event]:
    return [
        Event(
            type=event_type,  # type: ignore[arg-type]
            id=f"{start_ns + i * 1_000_000:020d}-{i:08x}",
            time=f"2025-11-24T16:00:00.{i:06d}Z",
            request_id=f"r{i}",
            data={"i": i},
        )
        for i in range(count)
    ]


def all_items(client: Any) -> list[dict[str, Any]]:
    """Every event item (not the table's ``meta`` items: the cutoff, the model names)."""
    items = client.scan(TableName=TABLE)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("ev#")]


def test_writes_spread_over_shards_and_read_back_newest_first(dynamodb: Any) -> None:
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=4)
    events = make_events(60)
    log.append_many(events)
    partitions = {item["pk"]["S"] for item in all_items(dynamodb)}
    assert partitions == {f"ev#prediction#{s}" for s in range(4)}
    page = log.query(limit=100)
    assert [e.id for e in page.events] == [e.id for e in reversed(events)]
    assert page.events[0] == events[-1]
    assert page.next_token is None


def test_pages_cover_every_event_exactly_once(dynamodb: Any) -> None:
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=3)
    predictions = make_events(23)
    errors = make_events(5, start_ns=1_764_000_000_000_500_000, event_type="error")
    log.append_many(predictions + errors)
    seen: list[str] = []
    token = None
    while True:
        page = log.query(limit=4, next_token=token)
        seen += [e.id for e in page.events]
        token = page.next_token
        if token is None:
            break
    assert seen == sorted((e.id for e in predictions + errors), reverse=True)
    only_errors = log.query(limit=10, event_type="error").events
    assert [e.id for e in only_errors] == [e.id for e in reversed(errors)]
    with pytest.raises(InvalidPageTokenError):
        log.query(next_token="garbage")


def test_since_is_an_inclusive_lower_bound(dynamodb: Any) -> None:
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=2)
    older = Event(
        type="training",
        id=f"{1_700_000_000 * 10**9:020d}-aaaaaaaa",
        time="2023-11-14T22:13:20.000000Z",
    )
    newer = Event(
        type="training",
        id=f"{1_800_000_000 * 10**9:020d}-bbbbbbbb",
        time="2027-01-15T08:00:00.000000Z",
    )
    log.append_many([older, newer])
    assert [e.id for e in log.query(since="2027-01-15T08:00:00Z").events] == [newer.id]
    assert len(log.query(since="2023-11-14T22:13:20Z").events) == 2


def test_clear_is_one_write_and_hides_everything_before_it(dynamodb: Any) -> None:
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=2)
    log.append_many(make_events(30))
    writes: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: writes.append(model.name)
    )
    log.clear()
    assert writes == ["PutItem"]  # no scan, no deletes
    assert log.query().events == []
    assert len(all_items(dynamodb)) == 30  # storage is reclaimed later, by TTL
    fresh = Event(type="error", data={"after": True})
    log.append(fresh)
    assert [e.id for e in log.query().events] == [fresh.id]


def test_items_expire_after_the_retention_period(dynamodb: Any) -> None:
    writer = DynamoDBEventLog(TABLE, client=dynamodb, retention_days=7, clock=lambda: 1_000_000)
    writer.append(Event(type="prediction"))
    (item,) = all_items(dynamodb)
    assert int(item["expires_at"]["N"]) == 1_000_000 + 7 * DAY
    reader = DynamoDBEventLog(TABLE, client=dynamodb, clock=lambda: 1_000_000 + 7 * DAY + 1)
    assert reader.query().events == []  # expired, even before TTL deletes it
    assert len(writer.query().events) == 1


def test_unprocessed_items_are_retried_with_backoff(dynamodb: Any) -> None:
    throttled_calls = {"left": 2}

    def throttle(parsed: dict[str, Any], **_: Any) -> None:
        if throttled_calls["left"] > 0:
            throttled_calls["left"] -= 1
            parsed["UnprocessedItems"] = {TABLE: last_request[-3:]}

    last_request: list[Any] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchWriteItem",
        lambda params, **_: last_request.__setitem__(slice(None), params["RequestItems"][TABLE]),
    )
    dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", throttle)
    sleeps: list[float] = []
    log = DynamoDBEventLog(TABLE, client=dynamodb, sleep=sleeps.append, backoff_seconds=0.1)
    events = make_events(10)
    log.append_many(events + events[:4])  # duplicates (an ingest retry) are written once
    assert sleeps == [0.1, 0.2]
    assert sorted(e.id for e in log.query().events) == sorted(e.id for e in events)
    assert len(all_items(dynamodb)) == 10


def test_persistent_throttling_raises_instead_of_losing_events(dynamodb: Any) -> None:
    last_request: list[Any] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchWriteItem",
        lambda params, **_: last_request.__setitem__(slice(None), params["RequestItems"][TABLE]),
    )
    dynamodb.meta.events.register(
        "after-call.dynamodb.BatchWriteItem",
        lambda parsed, **_: parsed.__setitem__("UnprocessedItems", {TABLE: last_request[-1:]}),
    )
    log = DynamoDBEventLog(TABLE, client=dynamodb, sleep=lambda _: None, max_attempts=3)
    with pytest.raises(EventLogError, match=r"1 event\(s\) still unprocessed .* after 3 attempts"):
        log.append_many(make_events(5))


def test_open_event_log_selects_dynamodb_by_uri(dynamodb: Any) -> None:
    log = open_event_log(f"dynamodb://{TABLE}", client=dynamodb, shards=2, retention_days=1)
    assert isinstance(log, DynamoDBEventLog)
    log.append(Event(type="training", data={"promoted": True}))
    assert log.query(event_type="training").events[0].data == {"promoted": True}


def test_missing_table_is_a_log_error(dynamodb: Any) -> None:
    log = DynamoDBEventLog("no-such-table", client=dynamodb)
    with pytest.raises(EventLogError, match="cannot"):
        log.append(Event(type="error"))
