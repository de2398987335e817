"""The scheduled model monitor: drift and live-quality metrics, alarms, the HTML report,
and (optionally) retraining when an alarm fires.

An EventBridge schedule (``monitor_schedule``, hourly by default) invokes a function
from the shared Lambda bundle (``lambda_inference.entrypoints.handle_monitor``). It
streams the last ``monitor_window_minutes`` of the system-log table, publishes
``FeatureDrift``, ``PredictionDrift`` and ``LiveQuality`` to CloudWatch, writes the
report under ``reports/`` in the model-store bucket and appends a ``monitor`` event.
Alarms watch the champion's series (dimension ``ModelName`` only, so they survive
promotions); with ``monitor_retrain_on_alarm`` a drift or quality alarm submits a
training job through the same Batch target as the training schedule.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.common import METRICS_NAMESPACE, acknowledge
from infra.config import ModelMonitorConfig
from infra.model_store import MODELS_PREFIX, ModelStore
from infra.serving import InferenceFunction, lambda_code
from infra.system_log import SystemLog
from infra.training import Training
from lambda_inference.routes import MONITOR_ENTRY_POINT
from mlsys import names

REPORTS_PREFIX = "reports/"
MEMORY_MB = 1024
"""Measured: a 1,000,000-event window peaks well below this (see `make bench`)."""
TIMEOUT = Duration.minutes(15)
"""Lambda's maximum; a 1,000,000-event window takes a fraction of it (see docs/operations.md)."""


class ModelMonitor(Construct):
    """The monitor function, its schedule, alarms, dashboard widgets and retraining trigger."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ModelMonitorConfig,
        bundle_dir: Path,
        model_store: ModelStore,
        system_log: SystemLog,
        training: Training,
        topic: sns.ITopic,
        dashboard: cloudwatch.Dashboard,
        model_name: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model_name = model_name
        self.monitor = self._function(
            bundle_dir=bundle_dir,
            model_store=model_store,
            system_log=system_log,
            log_retention_days=log_retention_days,
        )
        self._grant(model_store, system_log)
        self.reports_uri = f"s3://{model_store.bucket.bucket_name}/{REPORTS_PREFIX.rstrip('/')}"
        self.schedule = self._schedule(config) if config.schedule else None
        self.alarms = self._alarms(config, topic)
        if config.retrain_on_alarm:
            self.retrain_rule: events.Rule | None = self._retrain(training)
        else:
            self.retrain_rule = None
        self._widgets(dashboard, config)

    def _function(
        self,
        *,
        bundle_dir: Path,
        model_store: ModelStore,
        system_log: SystemLog,
        log_retention_days: int,
    ) -> InferenceFunction:
        return InferenceFunction(
            self,
            "Monitor",
            code=lambda_code(bundle_dir),
            handler=MONITOR_ENTRY_POINT,
            description="mlsys model monitor: drift, live quality, report",
            environment={
                names.REGISTRY_URI: model_store.registry_uri,
                names.MODEL_NAME: self.model_name,
                names.LOG_URI: system_log.uri,
                names.LOG_RETENTION_DAYS: str(log_retention_days),
                names.POWERTOOLS_SERVICE_NAME: names.MONITOR_SERVICE,
            },
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT,
            log_retention_days=log_retention_days,
            tracing=False,
            # No reserved concurrency: a fresh account (quota 10) cannot reserve any, and
            # an hourly schedule with a 15-minute timeout never overlaps itself anyway.
        )

    def _schedule(self, config: ModelMonitorConfig) -> events.Rule:
        return events.Rule(
            self,
            "Schedule",
            description="run the model monitor over the last window of the system log",
            schedule=events.Schedule.expression(config.schedule),
            targets=[
                targets.LambdaFunction(
                    self.monitor.function,
                    event=events.RuleTargetInput.from_object(
                        {
                            "window_minutes": config.window_minutes,
                            "lookback_minutes": config.lookback_minutes,
                            "threshold": config.drift_threshold,
                            "reports_uri": self.reports_uri,
                        }
                    ),
                    retry_attempts=0,  # the next run covers the same ground
                )
            ],
        )

    def _grant(self, model_store: ModelStore, system_log: SystemLog) -> None:
        self.monitor.add_statements(
            *model_store.read_models_statements(),
            system_log.read_write_statement(),
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject"],
                resources=[model_store.bucket.arn_for_objects(f"{REPORTS_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="PublishMonitorMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            ),
        )
        model_store.acknowledge_prefix_access(self.monitor.policy, MODELS_PREFIX, REPORTS_PREFIX)
        acknowledge(
            self.monitor.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource-level permissions; the statement "
            "is limited to the mlsys namespace by condition.",
        )

    def metric(self, name: str, *, statistic: str, period: Duration) -> cloudwatch.Metric:
        """The champion's series of a monitor metric (dimension ModelName only)."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={names.DIMENSION_MODEL_NAME: self.model_name},
            statistic=statistic,
            period=period,
        )

    def _alarms(self, config: ModelMonitorConfig, topic: sns.ITopic) -> dict[str, cloudwatch.Alarm]:
        period = Duration.minutes(config.window_minutes)
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        specs = {
            "FeatureDrift": (
                self.metric(names.METRIC_FEATURE_DRIFT, statistic="Maximum", period=period),
                config.drift_threshold,
                above,
                f"a feature's PSI against the champion's training baseline is above "
                f"{config.drift_threshold:g} (docs/operations.md: feature drift)",
            ),
            "PredictionDrift": (
                self.metric(names.METRIC_PREDICTION_DRIFT, statistic="Maximum", period=period),
                config.drift_threshold,
                above,
                f"the champion's prediction distribution PSI is above {config.drift_threshold:g} "
                "(docs/operations.md: prediction drift)",
            ),
            "LiveQuality": (
                self.metric(names.METRIC_LIVE_QUALITY, statistic="Minimum", period=period),
                config.quality_floor,
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                f"the champion's live metric from feedback is below {config.quality_floor:g} "
                "(docs/operations.md: live quality)",
            ),
            "MonitorErrors": (
                self.monitor.function.metric_errors(period=Duration.hours(1), statistic="Sum"),
                1,
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                "the model monitor function failed (docs/operations.md: monitor errors)",
            ),
        }
        alarms: dict[str, cloudwatch.Alarm] = {}
        for name, (metric, threshold, comparison, description) in specs.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=1,
                # No run, or too few records to judge: not a breach.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"mlsys: {description}",
            )
            alarm.add_alarm_action(actions.SnsAction(topic))
            alarm.add_ok_action(actions.SnsAction(topic))
            alarms[name] = alarm
        return alarms

    def _retrain(self, training: Training) -> events.Rule:
        watched = ("FeatureDrift", "PredictionDrift", "LiveQuality")
        return events.Rule(
            self,
            "RetrainOnAlarm",
            description="a drift or live-quality alarm submits a training job on the newest data",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[self.alarms[name].alarm_arn for name in watched],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[training.submit_job("mlsys-monitor-retrain")],
        )

    def _widgets(self, dashboard: cloudwatch.Dashboard, config: ModelMonitorConfig) -> None:
        period = Duration.minutes(config.window_minutes)
        per_feature = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{METRICS_NAMESPACE},Feature,ModelName,ModelVersion}} "
                f'MetricName="FeatureDrift" ModelName="{self.model_name}"\', \'Maximum\', '
                f"{int(period.to_seconds())})"
            ),
            label="",
            period=period,
        )
        threshold = cloudwatch.HorizontalAnnotation(
            value=config.drift_threshold, label="drift threshold"
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Feature drift (PSI per feature and version)",
                left=[per_feature],
                left_annotations=[threshold],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Champion: largest feature PSI, prediction PSI",
                left=[
                    self.metric(names.METRIC_FEATURE_DRIFT, statistic="Maximum", period=period),
                    self.metric(names.METRIC_PREDICTION_DRIFT, statistic="Maximum", period=period),
                ],
                left_annotations=[threshold],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Champion: live quality (from feedback)",
                left=[self.metric(names.METRIC_LIVE_QUALITY, statistic="Minimum", period=period)],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=config.quality_floor, label="quality floor"
                    )
                ],
                width=6,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "**Model monitor reports**: "
                    f"`{self.reports_uri}/{self.model_name}/latest.html` "
                    "(one file per run beside it; `mlsys monitor --html` renders the same "
                    "report locally)."
                ),
                width=24,
                height=2,
            )
        )
