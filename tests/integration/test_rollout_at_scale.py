"""The deployed rollout evaluator at 100M requests a day (moto: S3, DynamoDB, CloudWatch, SNS).

An hour-long canary at 10% of 100M requests/day is ~4.2M requests. The evaluator judges it
from the serving functions' per-version metrics over the whole bake: one GetMetricData
call whatever the traffic, bounded memory, and the decision the traffic deserves.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlsys.registry import ModelRegistry, Rollout, iso, utc_now
from mlsys.rollout.scheduled import evaluate_once
from mlsys.settings import Settings, load_settings
from tests.cloudwatch_support import VersionTraffic, percentiles_in_moto, publish_traffic
from tests.inference_support import create_log_table, fake_aws_credentials
from tests.unit.test_registry_store import make_card

BUCKET, TABLE = "mlsys-scale-models", "mlsys-scale-log"
PER_DAY = 100_000_000
PER_MINUTE = PER_DAY // (24 * 60)  # 69,444
FRACTION = 0.1
BAKE_MINUTES = 60


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_aws_credentials(monkeypatch)
    with mock_aws(), percentiles_in_moto():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        create_log_table(boto3.client("dynamodb"), TABLE)
        clients = {
            "s3": boto3.client("s3"),
            "dynamodb": boto3.client("dynamodb"),
            "cloudwatch": boto3.client("cloudwatch"),
        }
        calls: Counter[str] = Counter()
        for client in clients.values():
            client.meta.events.register(
                "before-call", lambda model, **_: calls.update([model.name])
            )
        yield {**clients, "calls": calls}


def settings() -> Settings:
    return load_settings(
        {
            "MLSYS_REGISTRY_URI": f"s3://{BUCKET}",
            "MLSYS_MODEL_NAME": "m",
            "MLSYS_LOG_URI": f"dynamodb://{TABLE}",
            "MLSYS_ROLLOUT_EVIDENCE": "metrics",
        }
    )


def canary_started(minutes_ago: int) -> datetime:
    """A 10% canary of v2 next to champion v1 that began ``minutes_ago``."""
    registry = ModelRegistry.open(f"s3://{BUCKET}", model_name="m")
    for version in ("v1", "v2"):
        registry.register(make_card(version), b"onnx")
    first = registry.promote("v1", reason="first", actor="t", expected=None)
    started = utc_now() - timedelta(minutes=minutes_ago)
    rollout = Rollout(mode="canary", candidate="v2", started=iso(started), fraction=FRACTION)
    registry.set_rollout(rollout, reason="t", actor="t", expected=first)
    return started.replace(second=0, microsecond=0) + timedelta(minutes=1)


def traffic(version: str, share: float, **health: float) -> VersionTraffic:
    return VersionTraffic(
        version=version,
        requests_per_minute=round(PER_MINUTE * share),
        error_rate=health.get("error_rate", 0.001),
        p50_ms=health.get("p50_ms", 4.0),
        p99_ms=health.get("p99_ms", 9.0),
    )


def run(aws: dict[str, Any], candidate: VersionTraffic) -> tuple[dict[str, Any], int]:
    """Publish an hour of traffic, evaluate once; the result and the evaluation's peak memory."""
    first_minute = canary_started(minutes_ago=BAKE_MINUTES)
    champion = traffic("v1", 1 - FRACTION)
    publish_traffic(
        aws["cloudwatch"],
        start=first_minute,
        minutes=BAKE_MINUTES - 1,
        versions=[champion, candidate],
    )
    aws["calls"].clear()
    tracemalloc.start()
    try:
        evaluation = evaluate_once(
            settings(),
            s3_client=aws["s3"],
            dynamodb_client=aws["dynamodb"],
            cloudwatch_client=aws["cloudwatch"],
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return evaluation.to_dict(), peak


def test_a_healthy_canary_at_100m_requests_a_day_completes_with_one_metrics_call(
    aws: dict[str, Any],
) -> None:
    result, peak = run(aws, traffic("v2", FRACTION))
    evidence = result["evidence"]
    minutes = BAKE_MINUTES - 1
    # The whole bake counted: 59 minutes of 6,944 candidate and 62,500 champion requests.
    assert evidence["candidate"]["requests"] + evidence["candidate"]["errors"] == 6_944 * minutes
    assert evidence["champion"]["requests"] + evidence["champion"]["errors"] == 62_500 * minutes
    assert evidence["candidate"]["error_rate"] == pytest.approx(0.001, abs=1e-4)
    assert evidence["champion"]["error_rate"] == pytest.approx(0.001, abs=1e-4)
    assert (evidence["source"], evidence["api_calls"]) == ("metrics", 1)
    assert (result["action"], result["applied"]) == ("complete", True)
    # Reads: one GetMetricData; the live-quality join finds no feedback (8 shard queries, and
    # one for the names of the models in the log: the join reads every model's feedback).
    assert aws["calls"]["GetMetricData"] == 1
    assert aws["calls"]["Query"] == 9  # no feedback, no more reads
    assert aws["calls"]["GetItem"] <= 1  # the log's clear marker
    assert peak < 16 * 1024 * 1024


def test_a_canary_that_fails_5_percent_of_requests_is_aborted(aws: dict[str, Any]) -> None:
    result, _ = run(aws, traffic("v2", FRACTION, error_rate=0.05))
    assert (result["action"], result["applied"]) == ("abort", True)
    assert "error rate 5.00% vs champion 0.10%" in result["verdict"]["reason"]
    assert result["now"]["champion"] == "v1"


def test_a_canary_three_times_slower_at_p99_is_aborted(aws: dict[str, Any]) -> None:
    result, _ = run(aws, traffic("v2", FRACTION, p99_ms=27.0))
    assert (result["action"], result["applied"]) == ("abort", True)
    assert result["verdict"]["breaches"][0].startswith("p99 latency")
    assert (
        result["evidence"]["candidate"]["p99_latency_ms"]
        > 2 * (result["evidence"]["champion"]["p99_latency_ms"])
    )
