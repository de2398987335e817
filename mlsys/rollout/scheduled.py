"""The scheduled rollout evaluator's run on AWS (EventBridge, every few minutes).

Runs the same evaluate step as ``mlsys models rollout evaluate``
(:func:`mlsys.rollout.evaluation.evaluate_rollout`): traffic evidence from the serving
functions' CloudWatch metrics (``MLSYS_ROLLOUT_EVIDENCE=metrics``, what the deployed
function is configured with: :mod:`mlsys.rollout.traffic`), live quality from bounded reads
of the system log in DynamoDB; it notifies the alarm topic (``MLSYS_ALARM_TOPIC_ARN``) when
it completes or aborts a rollout. :func:`rollout_metrics` gives the values the dashboard
graphs; the Lambda entry point (:func:`lambda_inference.entrypoints.handle_rollout_evaluate`)
publishes them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlsys import names
from mlsys.eventlog import open_event_log_for
from mlsys.registry import ModelRegistry
from mlsys.rollout.evaluation import Evaluation, evaluate_rollout
from mlsys.rollout.policy import RolloutPolicy
from mlsys.rollout.quality import feedback_live_quality
from mlsys.rollout.traffic import traffic_source_for
from mlsys.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

STATE_VALUES = {"none": 0, "canary": 1, "shadow": 2}
"""``RolloutState`` metric values (a dashboard graph cannot show strings)."""
ACTOR = "rollout evaluator"


def rollout_metrics(evaluation: Evaluation) -> dict[str, float]:
    """What to publish after ``evaluation``, by metric name; nothing when there was no rollout.

    While a rollout runs: ``RolloutState`` (1 canary, 2 shadow) and the candidate's traffic.
    On the run that ends it: ``RolloutState`` 0, once. With no rollout nothing is published,
    so an idle deployment pays for no metric (a rollout ended by hand shows as missing data
    from then on, which the dashboard widget reads as none).
    """
    if evaluation.before is None or evaluation.before.rollout is None:
        return {}
    after = evaluation.after.rollout if evaluation.after is not None else None
    state = after.mode if after is not None else "none"
    values: dict[str, float] = {names.METRIC_ROLLOUT_STATE: STATE_VALUES[state]}
    evidence = evaluation.evidence
    if evidence is not None:
        values[names.METRIC_ROLLOUT_CANDIDATE_REQUESTS] = evidence.candidate.requests
        values[names.METRIC_ROLLOUT_CANDIDATE_ERRORS] = evidence.candidate.errors
    return values


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
    cloudwatch_client: CloudWatchClient | None = None,
    sns_client: Any = None,
) -> Evaluation:
    """One evaluation with injectable clients (tests pass moto-backed ones)."""
    registry = ModelRegistry.open(
        settings.registry_uri, model_name=settings.model_name, s3_client=s3_client
    )
    log = open_event_log_for(settings, client=dynamodb_client)
    evaluation = evaluate_rollout(
        registry,
        log,
        policy=RolloutPolicy.from_settings(settings),
        actor=ACTOR,
        live_quality=feedback_live_quality(registry),
        traffic=traffic_source_for(settings, log, cloudwatch_client=cloudwatch_client),
    )
    if evaluation.applied and settings.alarm_topic_arn:
        if sns_client is None:
            import boto3  # noqa: PLC0415 - only when there is something to say

            sns_client = boto3.client("sns")
        notify(evaluation, topic_arn=settings.alarm_topic_arn, client=sns_client)
    return evaluation
