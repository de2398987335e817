"""Model store: the S3 bucket holding training data and the model registry, and the
ECR repository holding the training image."""

from __future__ import annotations

from typing import cast

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from infra.common import acknowledge, pin_logical_id

DATA_PREFIX = "data/"
MODELS_PREFIX = "models/"

# Logical IDs of the stateful resources; tests pin them (a change would replace the bucket).
BUCKET_LOGICAL_ID = "ModelStoreBucket"
ACCESS_LOG_BUCKET_LOGICAL_ID = "ModelStoreAccessLogs"
REPOSITORY_LOGICAL_ID = "TrainingImageRepository"


class ModelStore(Construct):
    """Versioned, encrypted, TLS-only bucket (``data/`` + ``models/``) and the image repository."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        noncurrent_version_days: int = 90,
        images_to_keep: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = self._access_log_bucket()
        self.bucket = self._bucket(noncurrent_version_days)
        self.repository = self._repository(images_to_keep)

    def _access_log_bucket(self) -> s3.Bucket:
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        pin_logical_id(access_logs, ACCESS_LOG_BUCKET_LOGICAL_ID)
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This is the server-access-log destination itself; logging it to itself "
            "would loop and logging it elsewhere only moves the problem.",
        )
        return access_logs

    def _bucket(self, noncurrent_version_days: int) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="model-store/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    # Overwritten/deleted objects stay recoverable for a while, then go;
                    # model versions are immutable keys, so this only trims pointer history
                    # (champion.json rewrites) and replaced data files.
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        pin_logical_id(bucket, BUCKET_LOGICAL_ID)
        # New objects under data/ trigger retraining through EventBridge. Set on the
        # CloudFormation resource: the L2 `event_bridge_enabled` flag deploys a custom-
        # resource Lambda to do the same thing.
        cast(
            s3.CfnBucket, bucket.node.default_child
        ).notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        return bucket

    def _repository(self, images_to_keep: int) -> ecr.Repository:
        repository = ecr.Repository(
            self,
            "TrainingImages",
            image_scan_on_push=True,
            # CI pushes one tag per commit; immutability means a deployed job definition
            # always runs exactly the image it was deployed with.
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description="drop untagged layers left by failed pushes",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(1),
                    rule_priority=1,
                ),
                ecr.LifecycleRule(
                    description=f"keep the newest {images_to_keep} images",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=images_to_keep,
                    rule_priority=2,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        pin_logical_id(repository, REPOSITORY_LOGICAL_ID)
        return repository

    @property
    def registry_uri(self) -> str:
        """``MLSYS_REGISTRY_URI`` for every component: the bucket root."""
        return f"s3://{self.bucket.bucket_name}"

    @property
    def data_uri(self) -> str:
        """``--data`` for scheduled runs: the newest object under ``data/``."""
        return f"s3://{self.bucket.bucket_name}/{DATA_PREFIX}"

    def read_models_statements(self) -> list[iam.PolicyStatement]:
        """Read the registry: champion pointer, cards, model files (no wildcard actions)."""
        return [
            iam.PolicyStatement(
                sid="ReadModels",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{MODELS_PREFIX}*")],
            ),
            self._list_statement("ListModels", MODELS_PREFIX),
        ]

    def training_statements(self) -> list[iam.PolicyStatement]:
        """Read ``data/``, read and write ``models/`` (conditional writes need PutObject)."""
        return [
            iam.PolicyStatement(
                sid="ReadTrainingData",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{DATA_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="ReadWriteModels",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{MODELS_PREFIX}*")],
            ),
            self._list_statement("ListDataAndModels", DATA_PREFIX, MODELS_PREFIX),
        ]

    def acknowledge_prefix_access(self, policy: IConstruct, *prefixes: str) -> None:
        """Object ARNs under a prefix necessarily end in ``*``; say so once per policy."""
        for prefix in prefixes:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{BUCKET_LOGICAL_ID}.Arn>/{prefix}*]",
                f"Access is to the objects under {prefix} only (registry layout in "
                "mlsys/registry.py); actions are listed explicitly, no wildcard actions.",
            )

    def _list_statement(self, sid: str, *prefixes: str) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=sid,
            actions=["s3:ListBucket"],
            resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        )
