"""The scoring job's code path on AWS services (moto): what the Batch job started by an
upload under ``score/`` runs (``python -m mlsys predict --json --data s3://B/score/K``, its
settings from the job's environment): S3 in, S3 out, a ``scoring`` event in DynamoDB."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from tests.inference_support import (
    BuiltModel,
    build_classifier,
    create_log_table,
    fake_aws_credentials,
    publish,
)
from tests.training_support import run_main

BUCKET = "mlsys-models"
TABLE = "mlsys-log"


@pytest.fixture(scope="module")
def classifier() -> BuiltModel:
    return build_classifier(version="20260101T000000Z-aaaaaa")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, classifier: BuiltModel) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    # The job definition's environment (infra/scoring.py).
    monkeypatch.setenv("MLSYS_REGISTRY_URI", f"s3://{BUCKET}")
    monkeypatch.setenv("MLSYS_LOG_URI", f"dynamodb://{TABLE}")
    monkeypatch.setenv("MLSYS_MODEL_NAME", "default")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        create_log_table(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
        publish(
            ModelRegistry.open(f"s3://{BUCKET}", model_name="default", s3_client=s3), classifier
        )
        yield s3


def upload(s3: Any, key: str, frame: pd.DataFrame) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=frame.to_csv(index=False).encode())


def scoring_events() -> list[dict[str, Any]]:
    page = open_event_log(f"dynamodb://{TABLE}").query(limit=10, event_type="scoring")
    return [event.to_dict() for event in page.events]


def keys(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return [item["Key"] for item in listed]


def test_an_uploaded_file_is_scored_to_scores_and_logged(
    aws: Any, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = classifier.frame.iloc[:50]
    upload(aws, "score/2026/march.csv", frame)

    code = run_main(["predict", "--json", "--data", f"s3://{BUCKET}/score/2026/march.csv"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["out"] == f"s3://{BUCKET}/scores/2026/march.csv.parquet"
    assert (summary["rows_read"], summary["rows_written"]) == (50, 50)
    body = aws.get_object(Bucket=BUCKET, Key="scores/2026/march.csv.parquet")["Body"].read()
    written = pd.read_parquet(io.BytesIO(body))
    assert written["prediction"].tolist() == classifier.expected[:50]
    (event,) = scoring_events()
    assert event["model_version"] == classifier.card.version
    data = event["data"]
    assert (data["status"], data["rows_read"], data["rows_written"], data["refused"]) == (
        "succeeded",
        50,
        50,
        0,
    )
    assert data["seconds"] >= 0
    assert data["data"] == f"s3://{BUCKET}/score/2026/march.csv"


def test_a_file_with_a_refused_row_writes_nothing_and_logs_the_failure(
    aws: Any, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = classifier.frame.iloc[:5].astype(object)
    frame.loc[3, "age"] = "forty"
    upload(aws, "score/bad.csv", frame)

    code = run_main(["predict", "--json", "--data", f"s3://{BUCKET}/score/bad.csv"])

    err = capsys.readouterr().err
    assert code == 2
    assert err == ("mlsys predict: error: row 4: feature 'age' is numeric; got string 'forty'\n")
    assert keys(aws, "scores/") == []
    (event,) = scoring_events()
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"]["code"] == "invalid_type"


def test_a_missing_object_is_a_one_line_error(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_main(["predict", "--data", f"s3://{BUCKET}/score/nothing.parquet"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"mlsys predict: error: s3://{BUCKET}/score/nothing.parquet: no such object\n"
    )
    assert keys(aws, "scores/") == []
