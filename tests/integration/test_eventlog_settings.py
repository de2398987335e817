"""Every writer of the DynamoDB system log honours MLSYS_LOG_SHARDS and
MLSYS_LOG_RETENTION_DAYS, so training and ``mlsys models`` events land where the
API's reader (configured from the same settings) looks, with the operator's TTL."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlsys.eventlog import open_event_log_for
from mlsys.eventlog.dynamodb import DynamoDBEventLog
from mlsys.settings import load_settings
from tests.inference_support import create_log_table, fake_aws_credentials
from tests.training_support import FAST, nonlinear_regression, run_main, write_csv

TABLE = "mlsys-log"
SHARDS = 64  # far from the default 8: an event written with 8 shards lands elsewhere
RETENTION_DAYS = 3
DAY = 86_400


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    monkeypatch.setenv("MLSYS_LOG_SHARDS", str(SHARDS))
    monkeypatch.setenv("MLSYS_LOG_RETENTION_DAYS", str(RETENTION_DAYS))
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_log_table(client, TABLE)
        yield client


def stored(client: Any, event_id: str) -> dict[str, Any]:
    (item,) = [i for i in client.scan(TableName=TABLE)["Items"] if i["sk"]["S"] == event_id]
    return item  # type: ignore[no-any-return]


def assert_written_with_the_settings(client: Any, event_id: str, *, written_at: float) -> None:
    item = stored(client, event_id)
    assert item["pk"]["S"] == f"ev#training#{zlib.crc32(event_id.encode()) % SHARDS}"
    expected = written_at + RETENTION_DAYS * DAY
    assert abs(int(item["expires_at"]["N"]) - expected) < 120


@pytest.mark.slow
def test_training_and_models_events_use_the_configured_shards_and_retention(
    dynamodb: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    log_args = ["--registry", str(registry), "--log", f"dynamodb://{TABLE}"]
    started = time.time()
    for model in ("linear", "random_forest"):
        argv = ["train", *log_args, *FAST, "--data", data, "--models", model]
        assert run_main(argv) == 0, capsys.readouterr().err
    assert run_main(["models", "rollback", *log_args, "--reason", "test"]) == 0
    capsys.readouterr()

    reader = open_event_log_for(load_settings(), f"dynamodb://{TABLE}", client=dynamodb)
    assert isinstance(reader, DynamoDBEventLog)
    assert (reader.shards, reader.retention_days) == (SHARDS, RETENTION_DAYS)
    events = reader.query(limit=10, event_type="training").events
    # Two training runs and the rollback, all visible to a reader with the same settings.
    assert len(events) == 3
    assert events[0].data["action"] == "rollback"
    for event in events:
        assert_written_with_the_settings(dynamodb, event.id, written_at=started)
