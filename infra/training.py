"""Training: AWS Batch on EC2 running the training image, and what starts it.

Triggers: an EventBridge schedule and every new CSV/Parquet object under ``data/`` (S3 ->
EventBridge -> SubmitJob with the object's URI). A job that ends FAILED notifies the
alarm topic.

The job definition's image tag is the stack parameter ``TrainingImageTag``: the deploy
workflow passes the tag it has just pushed (``cdk deploy --parameters
mlsys-<stage>:TrainingImageTag=<sha>``), and a hand-run ``cdk deploy`` without it keeps
the value of the last deploy (the CDK CLI reuses a stack's previous parameter values), so
no deploy points the job at a tag that was never pushed. A plain String parameter, not an
SSM one: nothing is read at deploy time, which the default bootstrap deploy role could not
do (infra/deploy_access.py).
"""

from __future__ import annotations

from aws_cdk import Aws, CfnParameter, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.alerts import TopicTarget
from infra.common import METRICS_NAMESPACE, acknowledge, retention
from infra.config import TrainingConfig
from infra.model_store import DATA_PREFIX, MODELS_PREFIX, ModelStore
from infra.system_log import SystemLog
from mlsys import names

DATA_PARAMETER = "data"
TRAINING_COMMAND = "train"
"""The job's subcommand; the failure rules tell training jobs from scoring jobs by it."""
IMAGE_TAG_PARAMETER = "TrainingImageTag"
"""The stack parameter (logical ID) holding the deployed training image tag."""
FIRST_IMAGE_TAG = "bootstrap"
"""The tag before any image was pushed: a new stack's first deploy creates the repository
the image is then pushed to (README, *Deploying to AWS*)."""
ECR_TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
"""Object keys that start a training run (training_job/data.py reads these formats);
folder placeholders and other files under data/ do not."""
TRAINING_AZS = 2
"""Two AZs give Spot capacity a choice of pools without adding cost (no NAT gateways)."""


class TrainingNetwork(Construct):
    """A VPC for the Batch instances that costs nothing while idle.

    Why no NAT gateway: a NAT gateway bills by the hour (~USD 33/month per AZ) whether
    or not anything trains, and interface endpoints for ECR, CloudWatch Logs and STS
    cost about as much. Training instances instead sit in public subnets with a public
    IPv4 address and a security group that admits no inbound traffic at all, so they
    can reach ECR, CloudWatch and Batch but nothing can reach them. S3 and DynamoDB, the
    bulk of the traffic (training data and models), go through gateway endpoints, which
    are free and keep that data off the internet. Instances exist only while a job runs
    (min vCPUs 0), so the address charge is per training hour.
    """

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=TRAINING_AZS,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="training", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                )
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(
                    self,
                    "FlowLogs",
                    retention=retention(log_retention_days),
                    removal_policy=RemovalPolicy.DESTROY,
                )
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=self.vpc,
            description="mlsys training instances: no inbound traffic, outbound HTTPS only",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs (ECR, Batch, CloudWatch, S3)"
        )


class Training(Construct):
    """Managed EC2 compute environment, job queue, job definition and triggers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: TrainingConfig,
        model_store: ModelStore,
        system_log: SystemLog,
        model_name: str,
        alarm_topic: sns.ITopic,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        network = TrainingNetwork(self, "Network", log_retention_days=log_retention_days)

        self.compute_environment = self._compute_environment(config, network)
        self.job_queue = batch.JobQueue(
            self,
            "JobQueue",
            compute_environments=[
                batch.OrderedComputeEnvironment(
                    compute_environment=self.compute_environment, order=1
                )
            ],
        )
        self.job_role = self._job_role(model_store, system_log)
        self.image = self._image(config.image_tag, model_store=model_store)
        self.job_logs = self._job_logs(log_retention_days)
        container = batch.EcsEc2ContainerDefinition(
            self,
            "Container",
            image=self.image,
            cpu=config.job_vcpus,
            memory=Size.mebibytes(config.job_memory_mib),
            # The image's entrypoint is `python -m mlsys`; Batch substitutes the data URI
            # per submission (default: newest object under data/). --emf: the job's stdout
            # is CloudWatch Logs, which turns the printed EMF lines into metrics.
            command=[TRAINING_COMMAND, "--emf", "--data", f"Ref::{DATA_PARAMETER}"],
            environment=_job_environment(
                config,
                model_store=model_store,
                system_log=system_log,
                model_name=model_name,
                log_retention_days=log_retention_days,
            ),
            job_role=self.job_role,
            logging=ecs.LogDriver.aws_logs(stream_prefix="training", log_group=self.job_logs),
        )
        self.job_definition = self._job_definition(
            container, config=config, model_store=model_store
        )
        self._add_triggers(config=config, model_store=model_store)
        self.failure_rule = self._notify_failures(alarm_topic)

    def _compute_environment(
        self, config: TrainingConfig, network: TrainingNetwork
    ) -> batch.ManagedEc2EcsComputeEnvironment:
        compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "ComputeEnvironment",
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[network.security_group],
            instance_types=[ec2.InstanceType(name) for name in config.instance_types],
            use_optimal_instance_classes=False,
            minv_cpus=0,
            maxv_cpus=config.max_vcpus,
            spot=config.spot,
            allocation_strategy=(
                batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                if config.spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
            ),
            launch_template=self._launch_template(),
            # Pinned to Amazon Linux 2023 (Batch's default is still AL2, end of life).
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023)],
            update_to_latest_image_version=True,
        )
        self._pin_launch_template_version(compute_environment)
        if compute_environment.instance_role is not None:
            acknowledge(
                compute_environment.instance_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonEC2ContainerServiceforEC2Role]",
                "The ECS agent on Batch-managed instances needs exactly this AWS-maintained "
                "policy, which AWS updates with new agent APIs; the job itself runs with the "
                "separate least-privilege job role.",
            )
        return compute_environment

    def _image(self, pinned_tag: str, *, model_store: ModelStore) -> ecs.EcrImage:
        """The repository's image at ``pinned_tag`` (context ``training_image_tag``), or else
        at the ``TrainingImageTag`` stack parameter."""
        self.image_tag_parameter: CfnParameter | None = None
        if pinned_tag:
            return ecs.ContainerImage.from_ecr_repository(model_store.repository, pinned_tag)
        self.image_tag_parameter = CfnParameter(
            Stack.of(self),
            IMAGE_TAG_PARAMETER,
            type="String",
            default=FIRST_IMAGE_TAG,
            allowed_pattern=ECR_TAG_PATTERN,
            description="Training image tag in the stack's ECR repository; the deploy "
            "workflow passes the tag it pushed, a deploy without it keeps the previous one.",
        )
        tag = self.image_tag_parameter.value_as_string
        return ecs.ContainerImage.from_ecr_repository(model_store.repository, tag)

    def _launch_template(self) -> ec2.LaunchTemplate:
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            # IMDSv2 with one hop: containers cannot borrow the instance's role.
            require_imdsv2=True,
            http_put_response_hop_limit=1,
        )
        return self.launch_template

    def _pin_launch_template_version(
        self, compute_environment: batch.ManagedEc2EcsComputeEnvironment
    ) -> None:
        """Reference the launch template's current version, not ``$Latest``.

        Batch resolves ``$Latest`` once, when the compute environment is created, so a
        later template change would never reach new instances; a concrete version number
        changes the compute environment's properties and Batch rolls it out.
        """
        resource = compute_environment.node.default_child
        assert isinstance(resource, batch.CfnComputeEnvironment)
        resource.add_property_override(
            "ComputeResources.LaunchTemplate.Version",
            self.launch_template.latest_version_number,
        )

    def _job_logs(self, log_retention_days: int) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "JobLogs",
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )

    def _job_role(self, model_store: ModelStore, system_log: SystemLog) -> iam.Role:
        job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="mlsys training job: read data/, read/write models/, write the log",
        )
        for statement in model_store.training_statements():
            job_role.add_to_policy(statement)
        job_role.add_to_policy(system_log.write_statement())
        # No cloudwatch:PutMetricData: the job prints its metrics as EMF lines, which
        # CloudWatch Logs turns into metrics from the job's log group.
        self._acknowledge_job_role(job_role, model_store)
        return job_role

    def _job_definition(
        self,
        container: batch.EcsEc2ContainerDefinition,
        *,
        config: TrainingConfig,
        model_store: ModelStore,
    ) -> batch.EcsJobDefinition:
        if container.execution_role is not None:
            acknowledge(
                container.execution_role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken (needed to pull the training image) supports no "
                "resource-level permissions; image pulls are scoped to the repository.",
            )
        return batch.EcsJobDefinition(
            self,
            "JobDefinition",
            container=container,
            parameters={DATA_PARAMETER: model_store.data_uri},
            timeout=Duration.minutes(config.timeout_minutes),
            retry_attempts=3,
            retry_strategies=[
                # A reclaimed Spot instance is worth retrying; a failing run is not (bad
                # data fails the same way twice, and the champion is untouched either way).
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.NON_ZERO_EXIT_CODE),
            ],
            propagate_tags=True,
        )

    def _submit_job(self, job_name: str, event: events.RuleTargetInput | None) -> targets.BatchJob:
        return targets.BatchJob(
            self.job_queue.job_queue_arn,
            self.job_queue,
            self.job_definition.job_definition_arn,
            self.job_definition,
            job_name=job_name,
            event=event,
            retry_attempts=3,
            max_event_age=Duration.hours(2),
        )

    def submit_job(self, job_name: str) -> targets.BatchJob:
        """An EventBridge target that trains on the newest data, as the schedule does."""
        return self._submit_job(job_name, None)

    def _add_triggers(self, *, config: TrainingConfig, model_store: ModelStore) -> None:
        if config.schedule:
            events.Rule(
                self,
                "Schedule",
                description="scheduled retraining on the newest object under data/",
                schedule=events.Schedule.expression(config.schedule),
                targets=[self._submit_job("mlsys-scheduled", None)],
            )
        if config.on_upload:
            key = events.EventField.from_path("$.detail.object.key")
            events.Rule(
                self,
                "OnUpload",
                description="retrain when a CSV or Parquet file lands under data/",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail={
                        "bucket": {"name": [model_store.bucket.bucket_name]},
                        # Any depth under data/, these suffixes only (case-sensitive).
                        "object": {
                            "key": [
                                {"wildcard": f"{DATA_PREFIX}*{suffix}"} for suffix in DATA_SUFFIXES
                            ]
                        },
                    },
                ),
                targets=[
                    self._submit_job(
                        "mlsys-on-upload",
                        # EventBridge passes "Parameters" to SubmitJob; they fill Ref::data.
                        events.RuleTargetInput.from_object(
                            {
                                "Parameters": {
                                    DATA_PARAMETER: f"s3://{model_store.bucket.bucket_name}/{key}"
                                }
                            }
                        ),
                    )
                ],
            )

    def _notify_failures(self, topic: sns.ITopic) -> events.Rule:
        job_id = events.EventField.from_path("$.detail.jobId")
        reason = events.EventField.from_path("$.detail.statusReason")
        return job_failure_rule(
            self,
            "JobFailed",
            description="notify the alarm topic when a training job fails",
            job_queue=self.job_queue,
            # The queue also runs scoring jobs (infra/scoring.py), which alert apart.
            command=TRAINING_COMMAND,
            message=f"mlsys training job {job_id} failed: {reason}. "
            "The champion model is unchanged.",
            topic=topic,
        )

    def metric_failed_jobs(self) -> cloudwatch.Metric:
        """Failed training jobs, counted by how often the failure rule fired."""
        return rule_triggers(self.failure_rule)

    def _acknowledge_job_role(self, job_role: iam.Role, model_store: ModelStore) -> None:
        policy = job_role.node.find_child("DefaultPolicy")
        model_store.acknowledge_prefix_access(policy, DATA_PREFIX, MODELS_PREFIX)


def _job_environment(
    config: TrainingConfig,
    *,
    model_store: ModelStore,
    system_log: SystemLog,
    model_name: str,
    log_retention_days: int,
) -> dict[str, str]:
    """The training container's ``MLSYS_*`` settings."""
    return {
        names.REGISTRY_URI: model_store.registry_uri,
        names.MODEL_NAME: model_name,
        names.LOG_URI: system_log.uri,
        # The TTL of the events the job writes to the system log.
        names.LOG_RETENTION_DAYS: str(log_retention_days),
        names.POWERTOOLS_SERVICE_NAME: names.TRAINING_SERVICE,
        names.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        "AWS_DEFAULT_REGION": Aws.REGION,
        # The training knobs the context sets (search budget, policy, rollout, target...).
        **config.job_settings,
    }


def job_failure_rule(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    job_queue: batch.IJobQueue,
    command: str,
    message: str,
    topic: sns.ITopic,
) -> events.Rule:
    """An EventBridge rule that sends ``message`` to ``topic`` when a job of ``job_queue``
    whose container command starts with ``command`` fails (training and scoring share the
    queue, so the command tells their failures apart)."""
    return events.Rule(
        scope,
        construct_id,
        description=description,
        event_pattern=events.EventPattern(
            source=["aws.batch"],
            detail_type=["Batch Job State Change"],
            detail={
                "status": ["FAILED"],
                "jobQueue": [job_queue.job_queue_arn],
                "container": {"command": [command]},
            },
        ),
        targets=[TopicTarget(topic, message=events.RuleTargetInput.from_text(message))],
    )


def rule_triggers(rule: events.Rule) -> cloudwatch.Metric:
    """How often ``rule`` fired, per hour (what the failed-job alarms watch)."""
    return cloudwatch.Metric(
        namespace="AWS/Events",
        metric_name="TriggeredRules",
        dimensions_map={"RuleName": rule.rule_name},
        statistic="Sum",
        period=Duration.hours(1),
    )
