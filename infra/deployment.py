"""Code deploys of the predict function: CodeDeploy shifts the ``live`` alias to each new
version (canary by default) and rolls it back when an alarm on that version fires.

How it fits together: every deploy that changes the function's code or configuration
publishes a new version; CloudFormation hands the alias update to CodeDeploy (the alias's
``CodeDeployLambdaAliasUpdate`` update policy), which routes a share of traffic to the new
version, watches the alarms below and then shifts the rest -- or routes everything back
to the old version and fails the deployment, which fails the CloudFormation update (and so
the deploy workflow). Provisioned concurrency stays on the alias: Lambda splits it across
the two versions by their routing weights during the shift. Lambda refuses any change of it
while the alias is weighted, so a canary or linear deployment comes with a fixed pool or
none, and an autoscaled pool with all-at-once deployments (infra/config.py enforces it).

The alarms watch the new version only, so errors of the old version (still serving 90 %)
cannot roll back a good release: Lambda publishes alias invocations with the
``ExecutedVersion`` dimension (invocation errors: crashes, timeouts, and the p99
duration), and the handlers publish ``ServerErrors`` by ``FunctionVersion`` for every 5xx
response (lambda_inference/observability.py). The second is what sees a release that fails
every request: the handlers turn failures into JSON responses, so those invocations succeed
as far as Lambda's ``Errors`` metric is concerned.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.common import METRICS_NAMESPACE, acknowledge
from mlsys import names

DEPLOYMENT_CONFIGS: dict[str, codedeploy.ILambdaDeploymentConfig] = {
    "LambdaCanary10Percent5Minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "LambdaCanary10Percent10Minutes": (
        codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_10_MINUTES
    ),
    "LambdaCanary10Percent15Minutes": (
        codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_15_MINUTES
    ),
    "LambdaCanary10Percent30Minutes": (
        codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_30_MINUTES
    ),
    "LambdaLinear10PercentEvery1Minute": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE
    ),
    "LambdaLinear10PercentEvery2Minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_2_MINUTES
    ),
    "LambdaLinear10PercentEvery3Minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_3_MINUTES
    ),
    "LambdaLinear10PercentEvery10Minutes": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_10_MINUTES
    ),
    "LambdaAllAtOnce": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}
ONE_MINUTE = Duration.minutes(1)


class PredictDeployment(Construct):
    """The deployment group of the ``live`` alias and its three rollback alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: lambda_.Alias,
        function: lambda_.IFunction,
        version: lambda_.IVersion,
        deployment: str,
        latency_p99_ms: int,
    ) -> None:
        super().__init__(scope, construct_id)
        dimensions = {
            "FunctionName": function.function_name,
            "Resource": f"{function.function_name}:{alias.alias_name}",
            "ExecutedVersion": version.version,
        }
        self.alarms = self._rollback_alarms(dimensions, latency_p99_ms=latency_p99_ms)
        self.alarms["NewVersionServerErrors"] = self._server_errors_alarm(
            function=function, version=version
        )
        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Group",
            alias=alias,
            deployment_config=DEPLOYMENT_CONFIGS[deployment],
            alarms=list(self.alarms.values()),
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        acknowledge(
            self.group.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's service role for Lambda deployments: the AWS-maintained policy "
            "only lets it read alarms and update the aliases it shifts.",
        )

    def _server_errors_alarm(
        self, *, function: lambda_.IFunction, version: lambda_.IVersion
    ) -> cloudwatch.Alarm:
        """Any 5xx response of the version being deployed (the handlers' metric)."""
        return self._any_in_a_minute(
            "NewVersionServerErrors",
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=names.METRIC_SERVER_ERRORS,
                dimensions_map={
                    "service": names.INFERENCE_SERVICE,
                    names.DIMENSION_FUNCTION_NAME: function.function_name,
                    names.DIMENSION_FUNCTION_VERSION: version.version,
                },
                statistic="Sum",
                period=ONE_MINUTE,
            ),
            "The predict version being deployed answered a request with a 5xx; CodeDeploy "
            "rolls the live alias back to the previous version.",
        )

    def _any_in_a_minute(
        self, alarm_id: str, metric: cloudwatch.Metric, description: str
    ) -> cloudwatch.Alarm:
        """Fires on one count in a one-minute period: a canary of a low-traffic stage may
        see only a few requests of the new version."""
        return cloudwatch.Alarm(
            self,
            alarm_id,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _rollback_alarms(
        self, dimensions: dict[str, str], *, latency_p99_ms: int
    ) -> dict[str, cloudwatch.Alarm]:
        """Errors and p99 duration of the version being deployed (one-minute periods, so
        they can fire within a five-minute canary)."""
        return {
            "NewVersionErrors": self._any_in_a_minute(
                "NewVersionErrors",
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name="Errors",
                    dimensions_map=dimensions,
                    statistic="Sum",
                    period=ONE_MINUTE,
                ),
                "The predict version being deployed raised; CodeDeploy rolls the live alias "
                "back to the previous version.",
            ),
            "NewVersionLatencyP99": cloudwatch.Alarm(
                self,
                "NewVersionLatencyP99",
                metric=cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name="Duration",
                    dimensions_map=dimensions,
                    statistic="p99",
                    period=ONE_MINUTE,
                ),
                threshold=latency_p99_ms,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"The predict version being deployed has a p99 duration "
                f"above {latency_p99_ms} ms for 2 minutes; CodeDeploy rolls it back.",
            ),
        }
