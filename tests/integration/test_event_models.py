"""Every event names its model (issue 19): the two stores keep models apart, read events
written before the change as the default model, and a one-model read of the DynamoDB log
touches that model's partitions only."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from mlsys.eventlog import DEFAULT_MODEL_NAME, Event, SqliteEventLog
from mlsys.eventlog.dynamodb import DynamoDBEventLog
from mlsys.monitoring.source import iter_events
from tests.inference_support import create_log_table, fake_aws_credentials

TABLE = "mlsys-log"
START_NS = 1_764_000_000_000_000_000
WINDOW = {"since": "2000-01-01T00:00:00.000000Z", "until": "2100-01-01T00:00:00.000000Z"}


def _events(model: str, count: int, *, offset: int = 0) -> list[Event]:
    return [
        Event(
            type="prediction" if i % 3 else "error",
            model=model,
            id=f"{START_NS + (offset + i) * 1_000_000:020d}-{offset + i:08x}",
            data={"i": offset + i},
        )
        for i in range(count)
    ]


def _legacy_body(i: int) -> str:
    """An event as stored before events named their model (no ``model`` member)."""
    event_id = f"{START_NS - (i + 1) * 1_000_000:020d}-{i:08x}"
    return orjson.dumps(
        {"id": event_id, "type": "prediction", "time": "2025-11-24T15:59:59.000000Z",
         "request_id": None, "model_version": "v0", "data": {"old": i}}
    ).decode()  # fmt: skip


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_log_table(client, TABLE)
        yield client


def _sqlite(tmp_path: Path) -> SqliteEventLog:
    return SqliteEventLog(tmp_path / "log.sqlite3")


@pytest.fixture(params=["sqlite", "dynamodb"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    client = request.getfixturevalue("dynamodb")
    return DynamoDBEventLog(TABLE, client=client, shards=3)


def test_events_name_their_model_and_a_query_keeps_one_model(log: Any) -> None:
    grunfeld, iris = _events("grunfeld", 10), _events("iris", 8, offset=100)
    log.append_many(grunfeld + iris)
    log.append(Event(type="training", model="iris", data={"promoted": True}))
    assert log.models() == ["grunfeld", "iris"]
    page = log.query(model="grunfeld", limit=100)
    assert [e.id for e in page.events] == [e.id for e in reversed(grunfeld)]
    assert {e.model for e in page.events} == {"grunfeld"}
    assert [e.type for e in log.query(model="iris", event_type="training").events] == ["training"]
    assert log.query(model="nobody").events == []
    everything = log.query(limit=100).events
    assert len(everything) == 19
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert everything[0].to_dict()["model"] == "iris"


def test_pages_of_one_model_cover_its_events_exactly_once(log: Any) -> None:
    mine, other = _events("mine", 23), _events("other", 23, offset=50)
    log.append_many(mine + other)
    seen: list[str] = []
    token = None
    while True:
        page = log.query(model="mine", limit=4, next_token=token)
        seen += [e.id for e in page.events]
        token = page.next_token
        if token is None:
            break
    assert seen == sorted((e.id for e in mine), reverse=True)


def test_the_monitor_reads_one_models_window(log: Any) -> None:
    log.append_many(_events("grunfeld", 9) + _events("iris", 9, offset=100))
    found = list(iter_events(log, types=("prediction",), model="iris", **WINDOW))
    assert len(found) == 6
    assert {e["model"] for e in found} == {"iris"}
    assert len(list(iter_events(log, types=("prediction", "error"), **WINDOW))) == 18


def test_an_old_sqlite_log_is_migrated_and_its_events_read_as_the_default_model(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT NOT NULL,"
        " body TEXT NOT NULL)"
    )
    old.execute("CREATE INDEX events_type_id ON events(type, id)")
    for i in range(3):
        body = _legacy_body(i)
        event_id = orjson.loads(body)["id"]
        old.execute(
            "INSERT INTO events VALUES (?, 'prediction', '2025-11-24T15:59:59.000000Z', ?)",
            (event_id, body),
        )
    old.commit()
    old.close()

    log = SqliteEventLog(path)
    assert log.models() == [DEFAULT_MODEL_NAME]
    legacy = log.query(model=DEFAULT_MODEL_NAME).events
    assert [e.data["old"] for e in legacy] == [0, 1, 2]
    assert {e.model for e in legacy} == {DEFAULT_MODEL_NAME}
    log.append_many(_events("grunfeld", 2))
    assert log.query(model="grunfeld").events[0].model == "grunfeld"
    assert len(log.query(model=DEFAULT_MODEL_NAME).events) == 3
    assert SqliteEventLog(path).models() == [DEFAULT_MODEL_NAME, "grunfeld"]  # opened again
    window = list(iter_events(log, types=("prediction",), model=DEFAULT_MODEL_NAME, **WINDOW))
    assert len(window) == 3


def test_old_dynamodb_items_read_as_the_default_model(dynamodb: Any) -> None:
    for i in range(3):
        body = _legacy_body(i)
        dynamodb.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"ev#prediction#{i % 2}"},
                "sk": {"S": orjson.loads(body)["id"]},
                "expires_at": {"N": str(2**40)},
                "body": {"S": body},
            },
        )
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=2)
    log.append_many(_events("grunfeld", 3))
    legacy = log.query(model=DEFAULT_MODEL_NAME).events
    assert [e.data["old"] for e in legacy] == [0, 1, 2]
    assert {e.model for e in legacy} == {DEFAULT_MODEL_NAME}
    assert len(log.query(model="grunfeld").events) == 3
    assert len(log.query().events) == 6  # every model, the pre-model events included
    window = list(iter_events(log, types=("prediction",), model=DEFAULT_MODEL_NAME, **WINDOW))
    assert len(window) == 3


def test_a_one_model_read_queries_and_reads_only_that_models_items(dynamodb: Any) -> None:
    """The efficiency the layout buys: with the model in the partition key, reading one
    model's events costs what it cost before models were named, however busy the
    others are (no filter expression discarding other models' items after reading them)."""
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=4)
    log.append_many(_events("busy", 300) + _events("quiet", 6, offset=1000))
    queried: list[str] = []
    scanned: list[int] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query",
        lambda params, **_: queried.append(params["ExpressionAttributeValues"][":pk"]["S"]),
    )
    dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed["ScannedCount"])
    )
    page = log.query(model="quiet", event_type="prediction", limit=100)
    assert len(page.events) == 4
    assert sorted(queried) == [f"ev#prediction#{shard}#quiet" for shard in range(4)]
    assert sum(scanned) == 4  # items read: the quiet model's alone, none of the 300
    queried.clear()
    scanned.clear()
    assert len(list(iter_events(log, types=("prediction",), model="quiet", **WINDOW))) == 4
    assert all(pk.endswith("#quiet") for pk in queried)
    assert sum(scanned) == 4


def test_a_models_name_is_registered_once_per_process(dynamodb: Any) -> None:
    log = DynamoDBEventLog(TABLE, client=dynamodb, shards=2)
    writes: list[int] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchWriteItem",
        lambda params, **_: writes.append(len(params["RequestItems"][TABLE])),
    )
    log.append_many(_events("m", 5))
    log.append_many(_events("m", 5, offset=10))
    assert writes == [6, 5]  # the model item rides along with the first batch only
    log.append(Event(type="error", model="m"))
    assert writes == [6, 5]  # a known model: one PutItem, no batch
    assert DynamoDBEventLog(TABLE, client=dynamodb).models() == ["m"]
