"""Monitoring: alarms on the serving and training paths and one dashboard.

The dashboard's model-level widgets read the handlers' EMF metrics in the ``mlsys``
namespace (see the team contract): ``Records``/``Latency``/``PredictionValue`` with
dimensions ``service`` + ``ModelVersion``, ``PredictedClass`` with ``Class`` too, and the
training job's ``TrainingRuns``/``Promotions``/``GuardrailFailures``/scores.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.common import METRICS_NAMESPACE
from infra.config import MonitoringConfig
from infra.serving import Serving
from infra.training import Training
from mlsys import names

FIVE_MINUTES = Duration.minutes(5)


def metric_search(
    expression: str, statistic: str, period: Duration, label: str = ""
) -> cloudwatch.SearchExpression:
    """A SEARCH over the mlsys namespace: one line per dimension value (model version).

    ``expression`` starts with a schema such as ``{mlsys,ModelVersion,service}``, which
    matches metrics with exactly those dimensions.
    """
    return cloudwatch.SearchExpression(
        expression=f"SEARCH('{expression}', '{statistic}', {int(period.to_seconds())})",
        label=label,
        period=period,
    )


class Monitoring(Construct):
    """Alarms (all notify the alarm topic) and the service dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MonitoringConfig,
        topic: sns.ITopic,
        serving: Serving,
        training: Training,
        table: dynamodb.ITable,
        provisioned_concurrency: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._action = actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        requests, p99 = self._api_alarms(serving, config=config)
        self._function_alarms(serving, provisioned_concurrency=provisioned_concurrency)
        self._log_and_training_alarms(serving, training=training, table=table)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.days(1))
        self._add_widgets(serving=serving, training=training, requests=requests, p99=p99)

    def _api_alarms(
        self, serving: Serving, *, config: MonitoringConfig
    ) -> tuple[cloudwatch.IMetric, cloudwatch.IMetric]:
        """5XX rate and p99 latency of the API stage; returns (requests, p99) for graphs."""
        stage = serving.api.deployment_stage

        requests = stage.metric_count(period=FIVE_MINUTES, statistic="Sum")
        server_errors = stage.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        # FILL: API Gateway publishes nothing for a period without requests, and a math
        # expression over a missing datapoint yields no value, so the alarm would never see
        # errors in a period whose counts are partly missing. Same for the table below.
        error_rate = cloudwatch.MathExpression(
            expression=("IF(FILL(requests, 0) > 0, 100 * FILL(errors, 0) / FILL(requests, 0), 0)"),
            using_metrics={"errors": server_errors, "requests": requests},
            label="5XX rate (%)",
            period=FIVE_MINUTES,
        )
        self._alarm(
            "Api5xxRate",
            error_rate,
            threshold=1,
            description="More than 1% of API requests failed with 5XX in 10 of 15 minutes.",
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )
        p99 = stage.metric_latency(period=FIVE_MINUTES, statistic="p99")
        self._alarm(
            "ApiLatencyP99",
            p99,
            threshold=config.latency_p99_ms,
            description=f"API p99 latency above {config.latency_p99_ms} ms for 15 minutes.",
            evaluation_periods=3,
        )
        return requests, p99

    def _function_alarms(self, serving: Serving, *, provisioned_concurrency: bool) -> None:
        functions: dict[str, lambda_.IFunction] = {
            "Predict": serving.predict.function,
            "Admin": serving.admin.function,
            "LogIngest": serving.ingest.function,
        }
        for name, function in functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description=f"The {name} function raised (handlers map expected errors to "
                "HTTP codes, so any invocation error is a bug or a crash).",
            )
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description=f"The {name} function was throttled (reserved concurrency or "
                "account limit reached).",
            )
        if provisioned_concurrency:
            self._alarm(
                "ProvisionedConcurrencySpillover",
                serving.live.metric(
                    "ProvisionedConcurrencySpilloverInvocations",
                    period=FIVE_MINUTES,
                    statistic="Sum",
                ),
                threshold=1,
                description="Requests overflowed the provisioned pool of the live alias (cold "
                "starts); raise provisioned_concurrency_max if this persists.",
                evaluation_periods=3,
                datapoints_to_alarm=2,
            )

    def _log_and_training_alarms(
        self, serving: Serving, *, training: Training, table: dynamodb.ITable
    ) -> None:
        self._alarm(
            "LogIngestDeadLetters",
            serving.ingest_dead_letters.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            threshold=1,
            description="Batches of system-log events failed ingestion after Lambda's "
            "retries and wait in the log-ingest DLQ (kept 14 days); fix the cause, then "
            "redrive them (see Serving._ingest_dead_letter_queue in infra/serving.py).",
        )
        # DynamoDB publishes throttle events only when there are some: without FILL the sum
        # had a value only when reads and writes throttled in the same period.
        throttled = cloudwatch.MathExpression(
            expression="FILL(reads, 0) + FILL(writes, 0)",
            using_metrics={
                "reads": table.metric("ReadThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
                "writes": table.metric("WriteThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
            },
            label="throttled requests",
            period=FIVE_MINUTES,
        )
        self._alarm(
            "SystemLogThrottles",
            throttled,
            threshold=1,
            description="DynamoDB throttled system-log reads or writes.",
        )
        # The failure rule already mails the job id and reason; this alarm makes a failed
        # run visible on the dashboard and in the alarm list without a second e-mail.
        self.alarms["TrainingJobFailed"] = cloudwatch.Alarm(
            self,
            "TrainingJobFailed",
            metric=training.metric_failed_jobs(),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="A training job failed in the last hour (champion unchanged).",
        )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm

    def _add_widgets(
        self,
        *,
        serving: Serving,
        training: Training,
        requests: cloudwatch.IMetric,
        p99: cloudwatch.IMetric,
    ) -> None:
        stage = serving.api.deployment_stage
        version = names.DIMENSION_MODEL_VERSION
        inference = f'{{{METRICS_NAMESPACE},{version},service}} service="{names.INFERENCE_SERVICE}"'
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Requests",
                left=[
                    requests,
                    stage.metric_client_error(period=FIVE_MINUTES, statistic="Sum"),
                    stage.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[stage.metric_latency(period=FIVE_MINUTES, statistic="p50"), p99],
                right=[
                    metric_search(
                        f'{inference} MetricName="{names.METRIC_LATENCY}"', "p99", FIVE_MINUTES
                    )
                ],
                width=8,
            ),
            self._errors_widget(serving),
        )
        self._model_row(serving, inference=inference)
        self._ingest_row(serving)
        self._training_row(training)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24
            )
        )

    def _errors_widget(self, serving: Serving) -> cloudwatch.GraphWidget:
        """Invocation errors per function; handler error codes per model version."""
        version = names.DIMENSION_MODEL_VERSION
        return cloudwatch.GraphWidget(
            title="Errors",
            left=[
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum")
                for function in (
                    serving.predict.function,
                    serving.admin.function,
                    serving.ingest.function,
                )
            ],
            right=[
                # Errors carry ModelVersion only when a model was involved.
                metric_search(
                    f'{{{METRICS_NAMESPACE},{dimensions}}} MetricName="{names.METRIC_ERRORS}"',
                    "Sum",
                    FIVE_MINUTES,
                )
                for dimensions in (
                    f"{names.DIMENSION_ERROR_CODE},service",
                    f"{names.DIMENSION_ERROR_CODE},{version},service",
                )
            ],
            width=8,
        )

    def _model_row(self, serving: Serving, *, inference: str) -> None:
        """Concurrency of the predict function and predictions per model version."""
        predict = serving.predict.function
        version = names.DIMENSION_MODEL_VERSION
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Concurrency (predict)",
                left=[
                    predict.metric("ConcurrentExecutions", statistic="Maximum"),
                    serving.live.metric("ProvisionedConcurrentExecutions", statistic="Maximum"),
                    serving.live.metric(
                        "ProvisionedConcurrencySpilloverInvocations", statistic="Sum"
                    ),
                ],
                right=[
                    serving.live.metric("ProvisionedConcurrencyUtilization", statistic="Maximum")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Predictions per model version",
                left=[
                    metric_search(
                        f'{inference} MetricName="{names.METRIC_RECORDS}"', "Sum", FIVE_MINUTES
                    )
                ],
                stacked=True,
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Prediction distribution per model version (p10/p50/p90)",
                left=[
                    metric_search(
                        f'{inference} MetricName="{names.METRIC_PREDICTION_VALUE}"',
                        stat,
                        FIVE_MINUTES,
                        stat,
                    )
                    for stat in ("p10", "p50", "p90")
                ],
                right=[
                    metric_search(
                        f"{{{METRICS_NAMESPACE},Class,{version},service}} "
                        f'service="{names.INFERENCE_SERVICE}" '
                        f'MetricName="{names.METRIC_PREDICTED_CLASS}"',
                        "Sum",
                        FIVE_MINUTES,
                    )
                ],
                width=8,
            ),
        )

    def _ingest_row(self, serving: Serving) -> None:
        ingest = serving.ingest.function
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="System-log ingest",
                left=[
                    ingest.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
                    ingest.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                    # Lambda could not even hand a failed batch to the DLQ (lost events).
                    ingest.metric(
                        "DestinationDeliveryFailures", period=FIVE_MINUTES, statistic="Sum"
                    ),
                ],
                right=[
                    serving.ingest_dead_letters.metric_approximate_number_of_messages_visible(
                        period=FIVE_MINUTES, statistic="Maximum", label="Batches in the DLQ"
                    )
                ],
                width=24,
            )
        )

    def _training_row(self, training: Training) -> None:
        day = Duration.days(1)
        training_schema = f'{{{METRICS_NAMESPACE},service}} service="{names.TRAINING_SERVICE}"'
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Training outcomes",
                left=[
                    metric_search(f'{training_schema} MetricName="{name}"', "Sum", day, name)
                    for name in (
                        names.METRIC_TRAINING_RUNS,
                        names.METRIC_PROMOTIONS,
                        names.METRIC_GUARDRAIL_FAILURES,
                    )
                ],
                right=[training.metric_failed_jobs()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Challenger vs champion score",
                left=[
                    metric_search(f'{training_schema} MetricName="{name}"', "Maximum", day, name)
                    for name in (names.METRIC_CHALLENGER_SCORE, names.METRIC_CHAMPION_SCORE)
                ],
                width=12,
            ),
        )
