"""The scheduled rollout evaluator on AWS services (moto): S3 registry, DynamoDB log, SNS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_inference.entrypoints import handle_rollout_evaluate
from mlsys.eventlog import Event, open_event_log
from mlsys.registry import ModelRegistry
from mlsys.rollout.scheduled import evaluate_once
from mlsys.rollout.state import start_rollout
from mlsys.settings import load_settings
from tests.inference_support import create_log_table, fake_aws_credentials
from tests.unit.test_registry_store import make_card

BUCKET, TABLE = "mlsys-rollout-models", "mlsys-rollout-log"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        create_log_table(boto3.client("dynamodb"), TABLE)
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="alarms")["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
        yield {"topic": topic, "queue": queue, "sqs": sqs}


def settings_for(topic: str, **extra: str) -> Any:
    return load_settings(
        {
            "MLSYS_REGISTRY_URI": f"s3://{BUCKET}",
            "MLSYS_MODEL_NAME": "m",
            "MLSYS_LOG_URI": f"dynamodb://{TABLE}",
            "MLSYS_ALARM_TOPIC_ARN": topic,
            "MLSYS_ROLLOUT_MIN_REQUESTS": "20",
            "MLSYS_ROLLOUT_MIN_BAKE_SECONDS": "0",
            **extra,
        }
    )


def notifications(aws: dict[str, Any]) -> list[dict[str, Any]]:
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
    return [json.loads(json.loads(m["Body"])["Message"]) for m in messages.get("Messages", [])]


def canary(champion_requests: int, candidate_requests: int, candidate_errors: int) -> None:
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    for version in ("v1", "v2"):
        registry.register(make_card(version), b"onnx")
    first = registry.promote("v1", reason="first", actor="t", expected=None)
    start_rollout(
        registry, "v2", mode="canary", fraction=0.2, reason="t", actor="t", expected=first
    )
    log = open_event_log(f"dynamodb://{TABLE}")
    log.append_many(
        [
            *(
                Event(type="prediction", model_version="v1", data={"latency_ms": 3.0})
                for _ in range(champion_requests)
            ),
            *(
                Event(type="prediction", model_version="v2", data={"latency_ms": 3.0})
                for _ in range(candidate_requests)
            ),
            *(Event(type="error", model_version="v2") for _ in range(candidate_errors)),
        ]
    )


def test_pending_changes_nothing_and_notifies_nobody(aws: dict[str, Any]) -> None:
    canary(champion_requests=50, candidate_requests=5, candidate_errors=0)
    result = evaluate_once(settings_for(aws["topic"])).to_dict()
    assert (result["state"], result["action"], result["applied"]) == ("canary", "pending", False)
    assert "5/20 candidate requests" in result["verdict"]["reason"]
    assert notifications(aws) == []


def test_a_healthy_canary_completes_and_the_alarm_topic_hears_of_it(aws: dict[str, Any]) -> None:
    canary(champion_requests=80, candidate_requests=30, candidate_errors=0)
    result = evaluate_once(settings_for(aws["topic"])).to_dict()
    assert (result["action"], result["applied"]) == ("complete", True)
    assert result["now"] == {
        "state": "none",
        "champion": "v2",
        "candidate": None,
        "fraction": None,
        "started": None,
        "reason": None,
    }
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    assert registry.require_champion().version == "v2"
    [message] = notifications(aws)
    assert (message["action"], message["candidate"], message["champion_now"]) == (
        "complete",
        "v2",
        "v2",
    )


def test_a_failing_canary_is_aborted_and_reported(aws: dict[str, Any]) -> None:
    canary(champion_requests=80, candidate_requests=30, candidate_errors=10)
    result = evaluate_once(settings_for(aws["topic"])).to_dict()
    assert (result["action"], result["applied"]) == ("abort", True)
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    pointer = registry.require_champion()
    assert (pointer.version, pointer.rollout) == ("v1", None)
    [message] = notifications(aws)
    assert message["action"] == "abort"
    assert "error rate 25.00%" in message["reason"]
    recorded = open_event_log(f"dynamodb://{TABLE}").query(limit=1, event_type="training")
    assert recorded.events[0].data["action"] == "rollout_abort"


def test_without_a_rollout_the_evaluator_reports_none(aws: dict[str, Any]) -> None:
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    registry.register(make_card("v1"), b"onnx")
    registry.promote("v1", reason="first", actor="t", expected=None)
    result = evaluate_once(settings_for(aws["topic"])).to_dict()
    assert (result["state"], result["action"], result["champion"]) == ("none", "none", "v1")


def test_the_rollout_state_is_published_as_a_metric_for_the_dashboard(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    canary(champion_requests=50, candidate_requests=5, candidate_errors=1)
    for name, value in {
        "MLSYS_REGISTRY_URI": f"s3://{BUCKET}",
        "MLSYS_MODEL_NAME": "m",
        "MLSYS_LOG_URI": f"dynamodb://{TABLE}",
        "MLSYS_ALARM_TOPIC_ARN": aws["topic"],
        "MLSYS_ROLLOUT_MIN_REQUESTS": "20",
    }.items():
        monkeypatch.setenv(name, value)
    result = handle_rollout_evaluate({}, None)
    assert (result["state"], result["action"]) == ("canary", "pending")
    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line
    ]
    values = {
        name: doc[name]
        for doc in documents
        for name in ("RolloutState", "RolloutCandidateRequests", "RolloutCandidateErrors")
        if name in doc
    }
    assert values == {
        "RolloutState": [1.0],
        "RolloutCandidateRequests": [5.0],
        "RolloutCandidateErrors": [1.0],
    }
    assert {doc["ModelName"] for doc in documents} == {"m"}


def published(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]


def test_no_rollout_state_is_published_while_nothing_rolls_out_and_0_once_at_the_end(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    registry.register(make_card("v1"), b"onnx")
    registry.promote("v1", reason="first", actor="t", expected=None)
    for name, value in {
        "MLSYS_REGISTRY_URI": f"s3://{BUCKET}",
        "MLSYS_MODEL_NAME": "m",
        "MLSYS_LOG_URI": f"dynamodb://{TABLE}",
        "MLSYS_ROLLOUT_MIN_REQUESTS": "20",
        "MLSYS_ROLLOUT_MIN_BAKE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    # Idle: every 5 minutes, nothing to publish (no metric billed for an idle deployment).
    assert handle_rollout_evaluate({}, None)["state"] == "none"
    assert published(capsys) == []
    # A canary that completes on this run: RolloutState 0, once.
    pointer = registry.require_champion()
    registry.register(make_card("v2"), b"onnx")
    start_rollout(
        registry, "v2", mode="canary", fraction=0.2, reason="t", actor="t", expected=pointer
    )
    log = open_event_log(f"dynamodb://{TABLE}")
    log.append_many(
        [
            Event(type="prediction", model_version=v, data={"latency_ms": 3.0})
            for v in ["v1", "v2"] * 40
        ]
    )
    assert handle_rollout_evaluate({}, None)["action"] == "complete"
    states = [doc["RolloutState"] for doc in published(capsys) if "RolloutState" in doc]
    assert states == [[0.0]]
    assert handle_rollout_evaluate({}, None)["state"] == "none"
    assert published(capsys) == []
