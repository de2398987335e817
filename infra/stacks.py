"""Stacks only compose constructs; all behaviour lives in the constructs."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Environment, Fn, Stack
from constructs import Construct

from infra.alerts import Alerts
from infra.ci_access import CiAccess
from infra.config import AppConfig
from infra.model_monitor import ModelMonitor
from infra.model_store import ModelStore
from infra.monitoring import Monitoring
from infra.serving import Serving
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
        self.model_store = ModelStore(self, "ModelStore")
        self.system_log = SystemLog(self, "SystemLog")
        self.alerts = Alerts(self, "Alerts", email=config.monitoring.alarm_email)
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
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config.monitoring,
            topic=self.alerts.topic,
            serving=self.serving,
            training=self.training,
            table=self.system_log.table,
            provisioned_concurrency=config.serving.provisioned_concurrency_min > 0,
        )
        self.model_monitor = self._add_model_monitor(config, bundle_dir)
        self._add_outputs()

    def _add_model_monitor(self, config: AppConfig, bundle_dir: Path) -> ModelMonitor:
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

    def _add_outputs(self) -> None:
        outputs: dict[str, str] = {
            "ApiUrl": self.serving.api.url,
            "ModelStoreBucket": self.model_store.bucket.bucket_name,
            "SystemLogTable": self.system_log.table.table_name,
            "TrainingJobQueue": self.training.job_queue.job_queue_arn,
            "TrainingJobDefinition": self.training.job_definition.job_definition_arn,
            "TrainingImageRepositoryUri": self.model_store.repository.repository_uri,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "MonitorReports": self.model_monitor.reports_uri,
            "AlarmTopic": self.alerts.topic.topic_arn,
            # Failed system-log batches wait here for a redrive (see infra/serving.py).
            "LogIngestDeadLetterQueueUrl": self.serving.ingest_dead_letters.queue_url,
        }
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
        app_stack: MlsysStack,
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
            app_stack_name=app_stack.stack_name,
            repository=app_stack.model_store.repository,
            job_queue=app_stack.training.job_queue,
            bucket=app_stack.model_store.bucket,
            api_key=app_stack.serving.api_key,
            smoke_test_routes=app_stack.serving.smoke_test_routes(),
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
        scope, f"mlsys-{config.stage}-ci", config=config, app_stack=app_stack, env=env
    )
    return [app_stack, ci_stack]
