"""Scoring files on AWS: an object uploaded under ``score/`` is scored by an AWS Batch job.

S3 -> EventBridge -> SubmitJob on the training job queue, with the training image running
``mlsys predict --data s3://<bucket>/score/<key>``: the job writes
``scores/<key>.parquet`` (the upload convention of :func:`lambda_inference.scoring.scores_uri_for`)
and appends a ``scoring`` event to the system log. A scoring job that ends FAILED notifies
the alarm topic and sets its own alarm, as a failed training job does.

The job reads ``score/`` and the registry and writes only ``scores/`` and the log: it never
touches ``data/`` or the registry's pointers.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Size
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.common import acknowledge
from infra.config import TrainingConfig
from infra.model_store import MODELS_PREFIX, ModelStore
from infra.system_log import SystemLog
from infra.training import (
    DATA_PARAMETER,
    DATA_SUFFIXES,
    Training,
    job_failure_rule,
    rule_triggers,
)
from mlsys import names

SCORING_COMMAND = "predict"
"""The job's subcommand; the failure rules tell scoring jobs from training jobs by it."""
SCORING_MEMORY_MIB = 4096
"""``mlsys predict`` reads and writes in chunks: it stays under 2 GB whatever the file
size (``make bench``), so the job reserves less than a training run."""
SCORING_TIMEOUT = Duration.hours(6)


class Scoring(Construct):
    """The scoring job definition, its role, the ``score/`` trigger and failure alerts."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: TrainingConfig,
        training: Training,
        model_store: ModelStore,
        system_log: SystemLog,
        model_name: str,
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        alarm: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.job_role = self._job_role(model_store, system_log)
        container = batch.EcsEc2ContainerDefinition(
            self,
            "Container",
            image=training.image,
            cpu=config.job_vcpus,
            memory=Size.mebibytes(SCORING_MEMORY_MIB),
            # `python -m mlsys predict`; with no --out, s3://B/score/K is scored to
            # s3://B/scores/K.parquet. --json: the job log holds the result as one line.
            command=[SCORING_COMMAND, "--json", "--data", f"Ref::{DATA_PARAMETER}"],
            environment={
                names.REGISTRY_URI: model_store.registry_uri,
                names.MODEL_NAME: model_name,
                names.LOG_URI: system_log.uri,
                names.LOG_RETENTION_DAYS: str(log_retention_days),
                "AWS_DEFAULT_REGION": Aws.REGION,
            },
            job_role=self.job_role,
            logging=ecs.LogDriver.aws_logs(stream_prefix="scoring", log_group=training.job_logs),
        )
        self.job_definition = batch.EcsJobDefinition(
            self,
            "JobDefinition",
            container=container,
            timeout=SCORING_TIMEOUT,
            retry_attempts=3,
            retry_strategies=[
                # As for training: retry a reclaimed Spot instance, not a failing file.
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.NON_ZERO_EXIT_CODE),
            ],
            propagate_tags=True,
        )
        self._acknowledge_execution_role(container)
        self.upload_rule = self._on_upload(training, model_store)
        self.failure_rule = self._notify_failures(training, alarm_topic)
        # Like TrainingJobFailed: the rule mails the job id and reason; the alarm shows the
        # failure in the alarm list (left out with minimal_idle_cost, as every alarm is).
        self.failed_alarm = self._failed_alarm() if alarm else None

    def _failed_alarm(self) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            "JobFailed",
            metric=self.metric_failed_jobs(),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="A scoring job failed in the last hour (no scores written).",
        )

    def _job_role(self, model_store: ModelStore, system_log: SystemLog) -> iam.Role:
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="mlsys scoring job: read score/ and models/, write scores/ and the log",
        )
        score, scores = names.SCORE_PREFIX, names.SCORES_PREFIX
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadFilesToScore",
                actions=["s3:GetObject"],
                resources=[model_store.bucket.arn_for_objects(f"{score}*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteScores",
                # Multipart uploads of large outputs need the abort and list-parts actions.
                actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[model_store.bucket.arn_for_objects(f"{scores}*")],
            )
        )
        for statement in model_store.read_models_statements():
            role.add_to_policy(statement)
        role.add_to_policy(system_log.write_statement())
        model_store.acknowledge_prefix_access(
            role.node.find_child("DefaultPolicy"), score, scores, MODELS_PREFIX
        )
        return role

    def _acknowledge_execution_role(self, container: batch.EcsEc2ContainerDefinition) -> None:
        if container.execution_role is not None:
            acknowledge(
                container.execution_role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken (needed to pull the training image) supports no "
                "resource-level permissions; image pulls are scoped to the repository.",
            )

    def _on_upload(self, training: Training, model_store: ModelStore) -> events.Rule:
        key = events.EventField.from_path("$.detail.object.key")
        bucket = model_store.bucket.bucket_name
        return events.Rule(
            self,
            "OnUpload",
            description="score a CSV or Parquet file uploaded under score/",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket]},
                    "object": {
                        "key": [
                            {"wildcard": f"{names.SCORE_PREFIX}*{suffix}"}
                            for suffix in DATA_SUFFIXES
                        ]
                    },
                },
            ),
            targets=[
                targets.BatchJob(
                    training.job_queue.job_queue_arn,
                    training.job_queue,
                    self.job_definition.job_definition_arn,
                    self.job_definition,
                    job_name="mlsys-score",
                    event=events.RuleTargetInput.from_object(
                        {"Parameters": {DATA_PARAMETER: f"s3://{bucket}/{key}"}}
                    ),
                    retry_attempts=3,
                    max_event_age=Duration.hours(2),
                )
            ],
        )

    def _notify_failures(self, training: Training, topic: sns.ITopic) -> events.Rule:
        job_id = events.EventField.from_path("$.detail.jobId")
        reason = events.EventField.from_path("$.detail.statusReason")
        data = events.EventField.from_path(f"$.detail.parameters.{DATA_PARAMETER}")
        return job_failure_rule(
            self,
            "FailureRule",
            description="notify the alarm topic when a scoring job fails",
            job_queue=training.job_queue,
            command=SCORING_COMMAND,
            message=f"mlsys scoring job {job_id} failed on {data}: {reason}. "
            "No scores were written for that file.",
            topic=topic,
        )

    def metric_failed_jobs(self) -> cloudwatch.Metric:
        """Failed scoring jobs, counted by how often the failure rule fired."""
        return rule_triggers(self.failure_rule)
