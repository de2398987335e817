"""The rollout evaluator: a scheduled function that completes or aborts staged rollouts.

Every ``schedule_minutes`` an EventBridge rule invokes
``lambda_inference.entrypoints.handle_rollout_evaluate``, which reads the champion
pointer (with its rollout) from the model store, the rollout's requests, errors and p99
latency per model version from the serving functions' CloudWatch metrics over the whole
bake (``GetMetricData``; :mod:`mlsys.rollout.traffic`), live quality from bounded reads of
the system log table, applies the pure policy (:func:`mlsys.rollout.policy.decide_rollout`), and
on complete/abort rewrites the pointer with compare-and-swap and notifies the alarm
topic. Serving picks the change up on its next model refresh; nothing is redeployed.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.common import METRICS_NAMESPACE, acknowledge
from infra.model_store import MODELS_PREFIX, ModelStore
from infra.serving import InferenceFunction, lambda_code
from infra.system_log import SystemLog
from lambda_inference.routes import ROLLOUT_EVALUATOR_ENTRY_POINT
from mlsys import names

DEFAULT_SCHEDULE_MINUTES = 5


class RolloutEvaluator(Construct):
    """Scheduled evaluate step, its permissions and its dashboard widgets."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle_dir: Path,
        model_store: ModelStore,
        system_log: SystemLog,
        topic: sns.ITopic,
        topic_key: kms.IKey | None,
        model_name: str,
        log_retention_days: int,
        schedule_minutes: int = DEFAULT_SCHEDULE_MINUTES,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model_name = model_name
        self.evaluator = InferenceFunction(
            self,
            "Evaluate",
            code=lambda_code(bundle_dir),
            handler=ROLLOUT_EVALUATOR_ENTRY_POINT,
            description="mlsys rollout evaluator: complete or abort canary/shadow rollouts",
            environment={
                names.REGISTRY_URI: model_store.registry_uri,
                names.MODEL_NAME: model_name,
                names.LOG_URI: system_log.uri,
                names.LOG_RETENTION_DAYS: str(log_retention_days),
                names.ALARM_TOPIC_ARN: topic.topic_arn,
                # Error rate and latency from metrics: one API call per run at any traffic.
                names.ROLLOUT_EVIDENCE: "metrics",
                names.POWERTOOLS_SERVICE_NAME: names.ROLLOUT_SERVICE,
                names.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
            },
            memory_mb=512,
            timeout=Duration.minutes(2),
            log_retention_days=log_retention_days,
            tracing=False,
            # No reserved concurrency (a fresh account cannot reserve any): a 5-minute
            # schedule with a 2-minute timeout does not overlap itself, and an overlapping
            # writer would lose the registry's compare-and-swap, never corrupt the state.
        )
        self.function = self.evaluator.function
        self._grant(model_store=model_store, system_log=system_log, topic=topic, key=topic_key)
        self.rule = events.Rule(
            self,
            "Schedule",
            description="evaluate the current model rollout (complete, abort or wait)",
            schedule=events.Schedule.rate(Duration.minutes(schedule_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

    def _grant(
        self,
        *,
        model_store: ModelStore,
        system_log: SystemLog,
        topic: sns.ITopic,
        key: kms.IKey | None,
    ) -> None:
        """Read/write ``models/`` (the pointer), query the log, read the serving metrics,
        publish to the alarm topic."""
        self.evaluator.add_statements(
            iam.PolicyStatement(
                sid="ReadWriteChampionPointer",
                # Conditional PutObject of champion.json and history entries; reads of
                # cards to check the candidate exists.
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[model_store.bucket.arn_for_objects(f"{MODELS_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="ListModels",
                actions=["s3:ListBucket"],
                resources=[model_store.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{MODELS_PREFIX}*"]}},
            ),
            system_log.read_write_statement(),
            iam.PolicyStatement(
                sid="NotifyAlarmTopic", actions=["sns:Publish"], resources=[topic.topic_arn]
            ),
            iam.PolicyStatement(
                sid="ReadServingMetrics",
                # GetMetricData supports no resource-level permissions or namespace
                # condition (the service authorization reference lists none): "*" it is.
                actions=["cloudwatch:GetMetricData"],
                resources=["*"],
            ),
        )
        if key is not None:
            # The topic is KMS-encrypted: publishing encrypts with its one key.
            self.evaluator.add_statements(
                iam.PolicyStatement(
                    sid="UseAlarmTopicKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                )
            )
        model_store.acknowledge_prefix_access(self.evaluator.policy, MODELS_PREFIX)
        acknowledge(
            self.evaluator.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:GetMetricData supports no resource-level permissions or namespace "
            "condition; it reads metrics only.",
        )

    def metric(self, name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={
                names.DIMENSION_MODEL_NAME: self.model_name,
                "service": names.ROLLOUT_SERVICE,
            },
            statistic=statistic,
            period=Duration.minutes(5),
        )

    def widgets(self) -> list[cloudwatch.IWidget]:
        """Rollout state for the service dashboard."""
        return [
            cloudwatch.SingleValueWidget(
                title="Rollout state (0 none, 1 canary, 2 shadow)",
                metrics=[self.metric(names.METRIC_ROLLOUT_STATE)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Rollout candidate traffic",
                left=[
                    self.metric(names.METRIC_ROLLOUT_CANDIDATE_REQUESTS),
                    self.metric(names.METRIC_ROLLOUT_CANDIDATE_ERRORS),
                ],
                right=[self.metric(names.METRIC_ROLLOUT_STATE)],
                width=16,
            ),
        ]
