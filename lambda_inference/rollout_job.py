"""The scheduled rollout evaluator (EventBridge, every few minutes; see infra/rollout.py).

Runs the same evaluate step as ``mlsys models rollout evaluate``
(:func:`mlsys.rollout_control.evaluate_rollout`) against the system log in DynamoDB,
publishes the rollout state as CloudWatch metrics for the dashboard, and notifies the
alarm topic (``MLSYS_ALARM_TOPIC_ARN``) when it completes or aborts a rollout.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlsys import names
from mlsys.eventlog import open_event_log_for
from mlsys.registry import ModelRegistry
from mlsys.rollout_control import Evaluation, evaluate_rollout
from mlsys.rollout_quality import feedback_live_quality
from mlsys.settings import Settings, load_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = Logger(service=names.ROLLOUT_SERVICE)
STATE_VALUES = {"none": 0, "canary": 1, "shadow": 2}
"""``RolloutState`` metric values (a dashboard graph cannot show strings)."""
ACTOR = "rollout evaluator"


def emit_metrics(evaluation: Evaluation, *, model_name: str) -> None:
    """``RolloutState`` (0 none, 1 canary, 2 shadow) and the candidate's traffic share."""
    state = evaluation.to_dict()["state"]
    values: dict[str, float] = {names.METRIC_ROLLOUT_STATE: STATE_VALUES.get(state, 0)}
    evidence = evaluation.evidence
    if evidence is not None:
        values[names.METRIC_ROLLOUT_CANDIDATE_REQUESTS] = evidence.candidate.requests
        values[names.METRIC_ROLLOUT_CANDIDATE_ERRORS] = evidence.candidate.errors
    for name, value in values.items():
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            namespace=names.METRICS_NAMESPACE,
            default_dimensions={
                "service": names.ROLLOUT_SERVICE,
                names.DIMENSION_MODEL_NAME: model_name,
            },
        ):
            pass


def notify(evaluation: Evaluation, *, topic_arn: str, client: Any) -> None:
    verdict = evaluation.verdict
    assert verdict is not None
    state = evaluation.to_dict()
    client.publish(
        TopicArn=topic_arn,
        Subject=f"mlsys rollout {verdict.action}: {state['candidate']}"[:100],
        Message=json.dumps(
            {
                "action": verdict.action,
                "reason": verdict.reason,
                "champion_before": state["champion"],
                "candidate": state["candidate"],
                "champion_now": state["now"]["champion"],
                "evidence": state["evidence"],
            },
            indent=2,
            default=str,
        ),
    )


def evaluate_once(
    settings: Settings,
    *,
    s3_client: S3Client | None = None,
    dynamodb_client: DynamoDBClient | None = None,
    sns_client: Any = None,
    metrics: bool = True,
) -> dict[str, Any]:
    """One evaluation with injectable clients (tests pass moto-backed ones)."""
    registry = ModelRegistry.open(
        settings.registry_uri, model_name=settings.model_name, s3_client=s3_client
    )
    log = open_event_log_for(settings, client=dynamodb_client)
    evaluation = evaluate_rollout(
        registry,
        log,
        policy=settings.rollout_policy(),
        actor=ACTOR,
        live_quality=feedback_live_quality(registry),
    )
    if metrics:
        emit_metrics(evaluation, model_name=settings.model_name)
    result = evaluation.to_dict()
    if evaluation.applied and settings.alarm_topic_arn:
        if sns_client is None:
            import boto3  # noqa: PLC0415 - only when there is something to say

            sns_client = boto3.client("sns")
        notify(evaluation, topic_arn=settings.alarm_topic_arn, client=sns_client)
    logger.info("rollout evaluated", extra={"rollout": result})
    return result


def handle_rollout_evaluate(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge target; the returned state ends up in the function's log."""
    return evaluate_once(load_settings())
