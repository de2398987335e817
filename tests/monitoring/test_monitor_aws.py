"""The monitor against the DynamoDB log and the scheduled run, under moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_inference.entrypoints import handle_monitor
from mlsys.eventlog import Event
from mlsys.eventlog.dynamodb import DynamoDBEventLog
from mlsys.monitoring.monitor import run_monitor
from mlsys.monitoring.scheduled import MonitorJob, metric_data, run_scheduled
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import create_log_table, fake_aws_credentials
from tests.monitoring.support import (
    Trained,
    make_api,
    open_log,
    post,
    records,
    send_batches,
    shifted,
)

TABLE = "mlsys-log"
SINCE = "2000-01-01T00:00:00.000000Z"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_log_table(dynamodb, TABLE)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        yield {"dynamodb": dynamodb, "s3": s3, "cloudwatch": boto3.client("cloudwatch")}


def _traffic(trained: Trained, uri: str, **kwargs: Any) -> None:
    api = make_api(trained, uri, **kwargs)
    features = trained.features()
    send_batches(api, records(features.iloc[:400]), prefix="a")
    send_batches(api, records(shifted(features.iloc[400:800], "c", 2.0)), prefix="c")
    for i, row in enumerate(records(features.iloc[800:850])):
        post(api, "/stream", {"data": row}, f"s-{i}")
    items = [
        {"request_id": f"s-{i}", "actual": float(y)}
        for i, y in enumerate(trained.frame["y"].iloc[800:850])
    ]
    items.append({"request_id": "never-predicted", "actual": 1.0})
    post(api, "/feedback", {"data": items}, "f-0")


def test_monitor_reads_dynamodb_and_sqlite_alike(
    regressor: Trained, aws: dict[str, Any], tmp_path: Path
) -> None:
    sqlite_uri = f"sqlite:///{tmp_path}/log.sqlite3"
    _traffic(regressor, sqlite_uri)
    _traffic(regressor, f"dynamodb://{TABLE}", dynamodb_client=aws["dynamodb"])
    registry = ModelRegistry.open(str(regressor.registry), model_name=regressor.model_name)
    until = "2100-01-01T00:00:00.000000Z"
    dynamo = DynamoDBEventLog(TABLE, client=aws["dynamodb"], shards=8)
    from_dynamodb = run_monitor(log=dynamo, registry=registry, since=SINCE, until=until)
    from_sqlite = run_monitor(log=open_log(sqlite_uri), registry=registry, since=SINCE, until=until)
    assert from_dynamodb.to_json() == from_sqlite.to_json()
    (version,) = from_dynamodb.versions
    assert version.records == 850
    assert version.drifted == ["c"]
    assert version.unmatched_feedback == 1
    assert version.quality is not None
    assert version.quality.n == 50


def test_dynamodb_window_and_clear_are_respected(regressor: Trained, aws: dict[str, Any]) -> None:
    _traffic(regressor, f"dynamodb://{TABLE}", dynamodb_client=aws["dynamodb"])
    registry = ModelRegistry.open(str(regressor.registry), model_name=regressor.model_name)
    dynamo = DynamoDBEventLog(TABLE, client=aws["dynamodb"])
    later = run_monitor(
        log=dynamo,
        registry=registry,
        since="2099-01-01T00:00:00.000000Z",
        until="2100-01-01T00:00:00.000000Z",
    )
    assert later.versions == []
    dynamo.clear()
    cleared = run_monitor(
        log=dynamo, registry=registry, since=SINCE, until="2100-01-01T00:00:00.000000Z"
    )
    assert cleared.versions == []


def test_scheduled_run_publishes_metrics_writes_the_report_and_logs_a_monitor_event(
    regressor: Trained, aws: dict[str, Any]
) -> None:
    uri = f"dynamodb://{TABLE}"
    _traffic(regressor, uri, dynamodb_client=aws["dynamodb"])
    settings = Settings(
        registry_uri=str(regressor.registry), model_name=regressor.model_name, log_uri=uri
    )
    log = DynamoDBEventLog(TABLE, client=aws["dynamodb"])
    job = MonitorJob.from_event({"window_minutes": 60, "reports_uri": "s3://models/reports"})
    summary = run_scheduled(
        job,
        settings=settings,
        now=datetime.now(UTC),
        log=log,
        s3_client=aws["s3"],
        cloudwatch_client=aws["cloudwatch"],
    )
    champion = ModelRegistry.open(str(regressor.registry), model_name="reg").require_champion()
    assert summary["champion"] == champion.version
    assert summary["report"].startswith("s3://models/reports/reg/")
    listed = aws["s3"].list_objects_v2(Bucket="models", Prefix="reports/reg/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    assert len(keys) == 2
    assert keys[1] == "reports/reg/latest.html"
    page = aws["s3"].get_object(Bucket="models", Key="reports/reg/latest.html")
    assert page["ContentType"].startswith("text/html")
    assert b"<svg" in page["Body"].read()

    metrics = aws["cloudwatch"].list_metrics(Namespace="mlsys")["Metrics"]
    names = {(m["MetricName"], tuple(sorted(d["Name"] for d in m["Dimensions"]))) for m in metrics}
    assert ("FeatureDrift", ("Feature", "ModelName", "ModelVersion")) in names
    assert ("FeatureDrift", ("ModelName",)) in names
    assert ("PredictionDrift", ("ModelName",)) in names
    assert ("LiveQuality", ("ModelName",)) in names

    (event,) = log.query(event_type="monitor").events
    assert event.data["versions"][0]["features"]["c"]["drift"] is True
    assert event.data["report"] == summary["report"]


def test_alarm_series_carry_the_champions_largest_drift(regressor: Trained, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    _traffic(regressor, uri)
    registry = ModelRegistry.open(str(regressor.registry), model_name=regressor.model_name)
    report = run_monitor(
        log=open_log(uri), registry=registry, since=SINCE, until="2100-01-01T00:00:00.000000Z"
    )
    (version,) = report.versions
    data = metric_data("reg", report, version.version)
    aggregate = {
        d["MetricName"]: d["Value"]
        for d in data
        if [x["Name"] for x in d["Dimensions"]] == ["ModelName"]
    }
    assert aggregate["FeatureDrift"] == max(f.psi or 0.0 for f in version.features.values())
    assert aggregate["FeatureDrift"] == version.features["c"].psi
    assert "LiveQuality" in aggregate
    # No champion among the versions seen: only the per-version series.
    assert all(len(d["Dimensions"]) > 1 for d in metric_data("reg", report, "other"))


@pytest.mark.parametrize(
    "event",
    [{"window_minutes": 0}, {"threshold": "x"}, {"reports_uri": "/tmp/reports"}],
)
def test_bad_schedule_input_is_a_config_error(event: dict[str, Any]) -> None:
    from mlsys.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError):
        MonitorJob.from_event(event)


def test_monitor_event_type_is_listed(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/log.sqlite3")
    log.append(Event(type="monitor", data={"versions": []}))
    assert [e.type for e in log.query(event_type="monitor").events] == ["monitor"]


def test_lambda_entry_point_reads_its_settings_from_the_environment(
    regressor: Trained, aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"dynamodb://{TABLE}"
    _traffic(regressor, uri, dynamodb_client=aws["dynamodb"])
    monkeypatch.setenv("MLSYS_REGISTRY_URI", str(regressor.registry))
    monkeypatch.setenv("MLSYS_MODEL_NAME", regressor.model_name)
    monkeypatch.setenv("MLSYS_LOG_URI", uri)
    summary = handle_monitor({"window_minutes": 30, "reports_uri": "s3://models/reports"}, None)
    assert summary["versions"][0]["records"] == 850
    assert summary["report"].startswith("s3://models/reports/reg/")
