"""The Lambda entry points on AWS services (moto): S3 registry, DynamoDB log,
stdout delivery through a CloudWatch Logs subscription into the ingest handler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_inference import entrypoints as handler
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import (
    BuiltModel,
    api_event,
    body_of,
    build_regression,
    create_log_table,
    fake_aws_credentials,
    publish,
    subscription_event,
)

BUCKET = "mlsys-models"
TABLE = "mlsys-log"


@pytest.fixture(scope="module")
def first() -> BuiltModel:
    return build_regression(version="20260101T000000Z-00000a")


@pytest.fixture(scope="module")
def second() -> BuiltModel:
    return build_regression(version="20260102T000000Z-00000b", alpha=0.01)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_log_table(dynamodb, TABLE)
        registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="default", s3_client=s3)
        yield {"s3": s3, "dynamodb": dynamodb, "registry": registry}


def test_predict_stdout_then_ingest_then_read_the_log(
    aws: dict[str, Any],
    first: BuiltModel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(aws["registry"], first)
    monkeypatch.setenv("MLSYS_REGISTRY_URI", f"s3://{BUCKET}")
    monkeypatch.setenv("MLSYS_LOG_URI", f"dynamodb://{TABLE}")
    monkeypatch.setenv("MLSYS_LOG_DELIVERY", "stdout")
    monkeypatch.setenv("MLSYS_LOG_SHARDS", "4")
    handler.reset_default_api()
    try:
        record = first.frame.iloc[0].to_dict()
        response = handler.handle_predict(
            api_event("POST", "/stream", body={"data": record}, request_id="aws-1"), None
        )
        assert response["statusCode"] == 200
        assert body_of(response)["model_version"] == first.card.version
        bad = handler.handle_predict(
            api_event("POST", "/batch", body={"data": [{"bmi": 1}]}, request_id="aws-2"), None
        )
        assert bad["statusCode"] == 400
        # Nothing reached DynamoDB in the request: delivery is asynchronous.
        assert aws["dynamodb"].scan(TableName=TABLE)["Items"] == []
        printed = capsys.readouterr().out.splitlines()
        assert any('"_aws"' in line for line in printed)  # EMF metric lines share the stream

        noise = ["START RequestId: 1f2e Version: $LATEST", '{"mlsys_event": {"type": "bogus"}}']
        result = handler.handle_log_ingest(subscription_event(noise + printed), None)
        assert result == {"ingested": 2}
        again = handler.handle_log_ingest(subscription_event(printed), None)
        assert again == {"ingested": 2}  # CloudWatch retries are idempotent
        control = handler.handle_log_ingest(
            subscription_event([], message_type="CONTROL_MESSAGE"), None
        )
        assert control == {"ingested": 0}
        assert handler.handle_log_ingest({"awslogs": {"data": "%%%"}}, None)["ingested"] == 0

        log = body_of(handler.handle_admin(api_event("GET", "/log"), None))
        assert [(e["type"], e["request_id"]) for e in log["result"]] == [
            ("error", "aws-2"),
            ("prediction", "aws-1"),
        ]
        assert log["result"][1]["data"]["inputs"] == record
        assert log["result"][0]["data"]["details"]["record"] == 0

        cleared = handler.handle_admin(api_event("DELETE", "/log"), None)
        assert cleared["statusCode"] == 200
        assert body_of(handler.handle_admin(api_event("GET", "/log"), None))["result"] == []
    finally:
        handler.reset_default_api()


def test_s3_champion_is_rechecked_with_conditional_gets_and_hot_swapped(
    aws: dict[str, Any], first: BuiltModel, second: BuiltModel
) -> None:
    clock = {"now": 0.0}
    settings = Settings(
        registry_uri=f"s3://{BUCKET}", log_uri=f"dynamodb://{TABLE}", model_refresh_seconds=10.0
    )
    publish(aws["registry"], first)
    service = InferenceService.from_settings(
        settings,
        clock=lambda: clock["now"],
        s3_client=aws["s3"],
        dynamodb_client=aws["dynamodb"],
        emit_metrics=False,
    )
    api = Api(service)
    pointer_reads: list[dict[str, Any]] = []
    aws["s3"].meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **_: (
            pointer_reads.append(dict(params)) if params["Key"].endswith("champion.json") else None
        ),
    )
    event = api_event("POST", "/stream", body={"data": first.frame.iloc[0].tolist()})
    for _ in range(5):
        assert body_of(api.handle_predict(event))["model_version"] == first.card.version
    assert len(pointer_reads) == 1  # loaded once, not per request

    clock["now"] = 10.0
    assert body_of(api.handle_predict(event))["model_version"] == first.card.version
    assert len(pointer_reads) == 2
    assert "IfNoneMatch" in pointer_reads[1]  # 304 Not Modified: nothing re-downloaded

    publish(aws["registry"], second)
    clock["now"] = 20.0
    response = body_of(api.handle_predict(event))
    assert response["model_version"] == second.card.version
    assert response["result"] == pytest.approx(second.expected[0], rel=1e-4)
    errors = body_of(api.handle_admin(api_event("GET", "/log", query={"type": "prediction"})))
    assert {e["model_version"] for e in errors["result"]} == {
        first.card.version,
        second.card.version,
    }
