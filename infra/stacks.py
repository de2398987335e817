"""Stacks only compose constructs; all behaviour lives in the constructs."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Environment, Fn, Stack, Tags
from constructs import Construct

from infra.alerts import Alerts
from infra.ci_access import CiAccess
from infra.common import STAGE_TAG
from infra.config import AppConfig
from infra.deploy_access import DeployAccess
from infra.deployment import PredictDeployment
from infra.model_monitor import ModelMonitor
from infra.model_store import ModelStore
from infra.monitoring import Monitoring
from infra.rollout import RolloutEvaluator
from infra.scoring import Scoring
from infra.serving import Serving, smoke_test_routes
from infra.system_log import SystemLog
from infra.training import TRAINING_AZS, Training


class MlsysStack(Stack):
    """Everything the running system needs: storage, training, serving, monitoring."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        bundle_dir: Path,
        env: Environment | None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"mlsys ({config.stage}): model store, training, serving, monitoring",
        )
        minimal = config.monitoring.minimal
        self.model_store = ModelStore(self, "ModelStore")
        self.system_log = SystemLog(self, "SystemLog")
        self.alerts = Alerts(
            self, "Alerts", email=config.monitoring.alarm_email, encrypted=not minimal
        )
        self.training = Training(
            self,
            "Training",
            config=config.training,
            model_store=self.model_store,
            system_log=self.system_log,
            model_name=config.model_name,
            alarm_topic=self.alerts.topic,
            log_retention_days=config.log_retention_days,
        )
        self.scoring = self._scoring(config)
        self.serving = Serving(
            self,
            "Serving",
            config=config.serving,
            bundle_dir=bundle_dir,
            model_store=self.model_store,
            system_log=self.system_log,
            model_name=config.model_name,
            stage_name=config.stage,
            log_retention_days=config.log_retention_days,
        )
        self.deployment = PredictDeployment(
            self,
            "PredictDeployment",
            alias=self.serving.live,
            function=self.serving.predict.function,
            version=self.serving.predict.function.current_version,
            deployment=config.serving.deployment,
            latency_p99_ms=config.monitoring.latency_p99_ms,
        )
        # minimal_idle_cost: no dashboard, alarms or hourly model monitor (only the
        # rollback alarms of PredictDeployment).
        self.monitoring = None if minimal else self._monitoring(config)
        self.model_monitor = None if minimal else self._add_model_monitor(config, bundle_dir)
        self.rollout = self._rollout_evaluator(config=config, bundle_dir=bundle_dir)
        self._share_with_ci_stack(config)
        self._outputs()

    def _scoring(self, config: AppConfig) -> Scoring:
        """Files uploaded under score/ scored by Batch jobs on the training queue."""
        return Scoring(
            self,
            "Scoring",
            config=config.training,
            training=self.training,
            model_store=self.model_store,
            system_log=self.system_log,
            model_name=config.model_name,
            alarm_topic=self.alerts.topic,
            log_retention_days=config.log_retention_days,
            alarm=not config.monitoring.minimal,
        )

    def _monitoring(self, config: AppConfig) -> Monitoring:
        return Monitoring(
            self,
            "Monitoring",
            config=config.monitoring,
            topic=self.alerts.topic,
            serving=self.serving,
            training=self.training,
            table=self.system_log.table,
            provisioned_concurrency=config.serving.provisioned_concurrency_min > 0,
        )

    def _share_with_ci_stack(self, config: AppConfig) -> None:
        """What the stage's deploy role (mlsys-<stage>-ci) may act on: found by tag, or
        granted by this stack's managed policy, which that stack attaches by name. No
        export, and nothing resolved at deploy time (infra/deploy_access.py says why)."""
        stage = config.stage
        for resource in (
            self.model_store.repository,
            self.training.job_queue,
            self.training.job_definition,
            *([self.serving.api_key] if self.serving.api_key is not None else []),
        ):
            Tags.of(resource).add(STAGE_TAG, stage)
        self.deploy_access = DeployAccess(
            self,
            "DeployAccess",
            stage=stage,
            api=self.serving.api,
            bucket=self.model_store.bucket,
            smoke_test_routes=smoke_test_routes(predict_auth=config.serving.predict_auth),
        )

    def _add_model_monitor(self, config: AppConfig, bundle_dir: Path) -> ModelMonitor:
        assert self.monitoring is not None  # the monitor's widgets go on its dashboard
        return ModelMonitor(
            self,
            "ModelMonitor",
            config=config.model_monitor,
            bundle_dir=bundle_dir,
            model_store=self.model_store,
            system_log=self.system_log,
            training=self.training,
            topic=self.alerts.topic,
            dashboard=self.monitoring.dashboard,
            model_name=config.model_name,
            log_retention_days=config.log_retention_days,
        )

    def _rollout_evaluator(self, *, config: AppConfig, bundle_dir: Path) -> RolloutEvaluator:
        """The scheduled evaluate step of staged rollouts, with its dashboard row."""
        evaluator = RolloutEvaluator(
            self,
            "Rollout",
            bundle_dir=bundle_dir,
            model_store=self.model_store,
            system_log=self.system_log,
            topic=self.alerts.topic,
            topic_key=self.alerts.key,
            model_name=config.model_name,
            log_retention_days=config.log_retention_days,
        )
        if self.monitoring is not None:
            self.monitoring.dashboard.add_widgets(*evaluator.widgets())
        return evaluator

    def _outputs(self) -> None:
        outputs: dict[str, str] = {
            "ApiUrl": self.serving.api.url,
            "ModelStoreBucket": self.model_store.bucket.bucket_name,
            "SystemLogTable": self.system_log.table.table_name,
            "TrainingJobQueue": self.training.job_queue.job_queue_arn,
            "TrainingJobDefinition": self.training.job_definition.job_definition_arn,
            "TrainingImageRepositoryUri": self.model_store.repository.repository_uri,
            "AlarmTopic": self.alerts.topic.topic_arn,
            # Failed system-log batches wait here for a redrive (see infra/serving.py).
            "LogIngestDeadLetterQueueUrl": self.serving.ingest_dead_letters.queue_url,
            "PredictDeploymentGroup": self.deployment.group.deployment_group_name,
        }
        if self.monitoring is not None:
            outputs["DashboardName"] = self.monitoring.dashboard.dashboard_name
        if self.model_monitor is not None:
            outputs["MonitorReports"] = self.model_monitor.reports_uri
        if self.serving.api_key is not None:
            outputs["ApiKeyId"] = self.serving.api_key.key_id
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    @property
    def availability_zones(self) -> list[str]:
        """The region's first two AZs, resolved by CloudFormation at deploy time.

        Without this override, a stack pinned to an account/region looks its AZs up
        with an AWS call during synth; synthesis must stay offline.
        """
        return [Fn.select(index, Fn.get_azs()) for index in range(TRAINING_AZS)]


class CiAccessStack(Stack):
    """GitHub OIDC and the deploy role, separate so it can be deployed once by an admin."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        app_stack_name: str,
        env: Environment | None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"mlsys ({config.stage}): GitHub Actions OIDC deploy role",
        )
        self.ci_access = CiAccess(
            self,
            "CiAccess",
            config=config.ci,
            stage=config.stage,
            app_stack_name=app_stack_name,
            api_key=config.serving.predict_auth == "api-key",
        )
        CfnOutput(self, "DeployRoleArn", value=self.ci_access.role.role_arn)


def build_app(scope: Construct, *, config: AppConfig, bundle_dir: Path) -> list[Stack]:
    """Add the mlsys stacks for ``config`` to ``scope`` (an App)."""
    env = (
        Environment(account=config.account or None, region=config.region or None)
        if config.account or config.region
        else None
    )
    app_stack = MlsysStack(
        scope, f"mlsys-{config.stage}", config=config, bundle_dir=bundle_dir, env=env
    )
    ci_stack = CiAccessStack(
        scope,
        f"mlsys-{config.stage}-ci",
        config=config,
        app_stack_name=app_stack.stack_name,
        env=env,
    )
    # Deploy order only (`cdk deploy --all`): the CI stack attaches the managed policy the
    # system stack creates, by name. No value crosses the stacks, so nothing locks either.
    ci_stack.add_stack_dependency(app_stack)
    return [app_stack, ci_stack]
