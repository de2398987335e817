"""Serving: the inference functions, their autoscaled ``live`` alias, the REST API and
the asynchronous log-ingestion path (predict function's log group -> ingest function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as lambda_destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as log_destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from infra.common import acknowledge, pin_logical_id, retention
from infra.config import ServingConfig
from infra.model_store import MODELS_PREFIX, ModelStore
from infra.system_log import SystemLog
from lambda_inference.routes import (
    ENTRY_POINTS,
    LOG_INGEST_ENTRY_POINT,
    LOG_QUERY_PARAMETERS,
    ROUTES,
    Route,
    routes_for,
)
from mlsys import names

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""Must match LAMBDA_PYTHON in the Makefile: the bundle's wheels are built for it."""

EVENT_FILTER_PATTERN = '{ $.mlsys_event.type = "*" }'
"""Selects the JSON event lines the predict function prints (MLSYS_LOG_DELIVERY=stdout)."""


GZIP_MEDIA_TYPES = ("application/gzip",)
"""Request bodies API Gateway passes on base64-encoded, byte for byte. A gzip-compressed
JSON body is sent as ``Content-Type: application/gzip``: as ``application/json`` API
Gateway would validate the compressed bytes against the JSON schema model (and refuse
them) or hand them to the function as mangled text. Plain JSON bodies keep their model
validation; gzip bodies are validated by the handler after decompression (same schema
errors, naming the field)."""

INGEST_RETRY_ATTEMPTS = 2
"""Lambda's own retries of a failed ingest batch (the maximum) before it goes to the DLQ."""
INGEST_MAX_EVENT_AGE = Duration.hours(6)
"""How long a batch may wait in Lambda's async queue (the maximum): throttled ingest
invocations are retried for this long before the batch goes to the DLQ."""
DEAD_LETTER_RETENTION = Duration.days(14)
"""SQS's maximum: two weeks to notice the alarm and redrive."""
DEAD_LETTER_QUEUE_LOGICAL_ID = "LogIngestDeadLetterQueue"


def _route_list(auth: Literal["predict", "admin"]) -> str:
    """``POST /stream, POST /batch``: a function's description, from the route table."""
    return ", ".join(f"{route.method} {route.path}" for route in routes_for(auth))


# API Gateway validates only the envelope; the handlers validate each record against the
# champion's feature schema (which changes with the model) and name the offending field.
STREAM_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="StreamRequest",
    type=apigw.JsonSchemaType.OBJECT,
    required=["data"],
    properties={"data": apigw.JsonSchema(description="one record")},
)
BATCH_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="BatchRequest",
    type=apigw.JsonSchemaType.OBJECT,
    required=["data"],
    properties={
        "data": apigw.JsonSchema(type=apigw.JsonSchemaType.ARRAY, description="records"),
    },
)

# Gateway-generated errors in the same shape as the handlers' errors.
_GATEWAY_ERRORS = {
    apigw.ResponseType.BAD_REQUEST_BODY: ("400", "invalid_request"),
    apigw.ResponseType.THROTTLED: ("429", "throttled"),
    apigw.ResponseType.QUOTA_EXCEEDED: ("429", "quota_exceeded"),
    apigw.ResponseType.REQUEST_TOO_LARGE: ("413", "payload_too_large"),
    apigw.ResponseType.INVALID_API_KEY: ("403", "invalid_api_key"),
    apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN: ("403", "missing_authentication"),
    apigw.ResponseType.ACCESS_DENIED: ("403", "access_denied"),
    apigw.ResponseType.DEFAULT_4_XX: (None, "client_error"),
    apigw.ResponseType.DEFAULT_5_XX: (None, "gateway_error"),
}


class LambdaBundleMissingError(FileNotFoundError):
    """The code asset has not been built."""


def lambda_code(bundle_dir: Path) -> lambda_.Code:
    """The shared code asset; built for arm64 by ``make lambda-package`` (no Docker)."""
    if not (bundle_dir / "lambda_inference").is_dir():
        raise LambdaBundleMissingError(
            f"Lambda bundle not found at {bundle_dir}: run `make lambda-package` first "
            "(it installs the arm64 wheels and copies mlsys/ and lambda_inference/)."
        )
    return lambda_.Code.from_asset(str(bundle_dir))


class InferenceFunction(Construct):
    """One function with its own log group and a role that can only write to it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        description: str,
        environment: dict[str, str],
        memory_mb: int,
        timeout: Duration,
        log_retention_days: int,
        tracing: bool,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"mlsys {construct_id} function",
        )
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every group): this group only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=handler,
            description=description,
            environment=environment,
            memory_size=memory_mb,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            reserved_concurrent_executions=reserved_concurrency,
        )
        if tracing:
            acknowledge(
                self.policy,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
                "permissions; this is the statement Lambda active tracing requires.",
            )

    @property
    def policy(self) -> IConstruct:
        """The role's inline policy (where its statements, and their findings, live)."""
        return self.role.node.find_child("DefaultPolicy")

    def add_statements(self, *statements: iam.PolicyStatement) -> None:
        for statement in statements:
            self.role.add_to_policy(statement)


class Serving(Construct):
    """Predict/admin/ingest functions, the ``live`` alias and the REST API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServingConfig,
        bundle_dir: Path,
        model_store: ModelStore,
        system_log: SystemLog,
        model_name: str,
        stage_name: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage_name = stage_name
        code = lambda_code(bundle_dir)
        common_env = {
            names.REGISTRY_URI: model_store.registry_uri,
            names.MODEL_NAME: model_name,
            names.LOG_URI: system_log.uri,
            names.LOG_RETENTION_DAYS: str(log_retention_days),
            names.POWERTOOLS_METRICS_NAMESPACE: names.METRICS_NAMESPACE,
        }
        self.predict = self._predict_function(
            code=code,
            environment=common_env,
            config=config,
            model_store=model_store,
            log_retention_days=log_retention_days,
        )

        self.admin = self._admin_function(
            code=code,
            environment=common_env,
            config=config,
            model_store=model_store,
            system_log=system_log,
            log_retention_days=log_retention_days,
        )

        self.ingest = self._ingest_function(
            code=code,
            environment=common_env,
            system_log=system_log,
            log_retention_days=log_retention_days,
        )
        self.ingest_dead_letters = self._ingest_dead_letter_queue()
        self.subscription = logs.SubscriptionFilter(
            self,
            "PredictEvents",
            log_group=self.predict.log_group,
            destination=log_destinations.LambdaDestination(self.ingest.function),
            filter_pattern=logs.FilterPattern.literal(EVENT_FILTER_PATTERN),
        )

        self.live = self._live_alias(config)
        self.api, self.api_key = self._rest_api(config, stage_name, log_retention_days)

    def _predict_function(
        self,
        *,
        code: lambda_.Code,
        environment: dict[str, str],
        config: ServingConfig,
        model_store: ModelStore,
        log_retention_days: int,
    ) -> InferenceFunction:
        predict = InferenceFunction(
            self,
            "Predict",
            code=code,
            handler=ENTRY_POINTS["predict"],
            description="mlsys " + _route_list("predict"),
            # Events go to stdout and reach DynamoDB through the subscription below, so a
            # prediction never waits on a log write.
            environment={
                **environment,
                names.LOG_DELIVERY: "stdout",
                # What a prediction event keeps of its inputs (README: "Costs at a glance").
                names.LOG_INPUTS: config.log_inputs,
                names.LOG_INPUTS_SAMPLE_RATE: str(config.log_inputs_sample_rate),
                names.POWERTOOLS_SERVICE_NAME: names.INFERENCE_SERVICE,
            },
            memory_mb=config.lambda_memory_mb,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            log_retention_days=log_retention_days,
            tracing=True,
            reserved_concurrency=config.reserved_concurrency,
        )
        predict.add_statements(*model_store.read_models_statements())
        model_store.acknowledge_prefix_access(predict.policy, MODELS_PREFIX)
        return predict

    def _admin_function(
        self,
        *,
        code: lambda_.Code,
        environment: dict[str, str],
        config: ServingConfig,
        model_store: ModelStore,
        system_log: SystemLog,
        log_retention_days: int,
    ) -> InferenceFunction:
        function = InferenceFunction(
            self,
            "Admin",
            code=code,
            handler=ENTRY_POINTS["admin"],
            description="mlsys " + _route_list("admin"),
            environment={
                **environment,
                names.LOG_DELIVERY: "sync",
                names.POWERTOOLS_SERVICE_NAME: names.INFERENCE_SERVICE,
            },
            memory_mb=config.lambda_memory_mb,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            log_retention_days=log_retention_days,
            tracing=True,
        )
        function.add_statements(
            *model_store.read_models_statements(), system_log.read_write_statement()
        )
        model_store.acknowledge_prefix_access(function.policy, MODELS_PREFIX)
        return function

    def _ingest_function(
        self,
        *,
        code: lambda_.Code,
        environment: dict[str, str],
        system_log: SystemLog,
        log_retention_days: int,
    ) -> InferenceFunction:
        function = InferenceFunction(
            self,
            "LogIngest",
            code=code,
            handler=LOG_INGEST_ENTRY_POINT,
            description="mlsys: CloudWatch Logs subscription -> system-log table",
            environment={
                **environment,
                names.LOG_DELIVERY: "sync",
                names.POWERTOOLS_SERVICE_NAME: names.LOG_INGEST_SERVICE,
            },
            memory_mb=256,
            timeout=Duration.seconds(60),
            log_retention_days=log_retention_days,
            tracing=False,
        )
        function.add_statements(system_log.write_statement())
        return function

    def _ingest_dead_letter_queue(self) -> sqs.Queue:
        """Where a batch of log events goes once Lambda has given up on it.

        The subscription invokes the ingest function asynchronously; without an
        on-failure destination a batch that still fails after the retries (table
        throttled or unavailable for hours, a bug) would be dropped.

        Redrive: each message is a Lambda *invocation record*, not the bare event; the
        original CloudWatch Logs payload is its ``requestPayload`` (``{"awslogs":
        {"data": ...}}``). Re-invoke the ingest function with that payload, e.g.
        ``aws lambda invoke --function-name <ingest> --invocation-type Event
        --cli-binary-format raw-in-base64-out --payload "$(jq -c .requestPayload
        <<<"$body")" /dev/null``, then delete the message. Re-ingesting is idempotent
        (mlsys/eventlog/dynamodb.py): the item key is ``sk`` = the event id printed by
        the predict function and ``pk`` = type + CRC32(id) % MLSYS_LOG_SHARDS, so a
        batch that was partly written overwrites the same items instead of duplicating
        them -- as long as MLSYS_LOG_SHARDS has not changed in between. Events older
        than a ``DELETE /log`` cut-off stay hidden after the redrive, as intended; the
        TTL (``expires_at``) of a redriven event counts from the redrive.
        """
        queue = sqs.Queue(
            self,
            "LogIngestDeadLetters",
            # Log events may carry request inputs (MLSYS_LOG_INPUTS); SQS-managed SSE
            # needs no key policy for Lambda to write with.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        # Holds events not yet in the table: a refactor must not replace (empty) it.
        pin_logical_id(queue, DEAD_LETTER_QUEUE_LOGICAL_ID)
        self.ingest.function.configure_async_invoke(
            on_failure=lambda_destinations.SqsDestination(queue),
            retry_attempts=INGEST_RETRY_ATTEMPTS,
            max_event_age=INGEST_MAX_EVENT_AGE,
        )
        acknowledge(
            queue.node.find_child("Resource"),
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the log-ingest function "
            "(an async-invoke on-failure destination, which cdk-nag does not recognise).",
        )
        return queue

    def _live_alias(self, config: ServingConfig) -> lambda_.Alias:
        provisioned = config.provisioned_concurrency_min
        alias = lambda_.Alias(
            self,
            "PredictLive",
            alias_name="live",
            version=self.predict.function.current_version,
            provisioned_concurrent_executions=provisioned or None,
        )
        # max == min is a fixed pool: nothing scales, so a canary's weighted alias is never
        # asked to change it (infra/config.py allows autoscaling with all-at-once deploys).
        if provisioned and config.provisioned_concurrency_max > provisioned:
            # Target tracking keeps utilisation of the warm pool near the target; traffic
            # beyond it spills over to on-demand containers (alarmed in Monitoring).
            scaling = alias.add_auto_scaling(
                min_capacity=provisioned, max_capacity=config.provisioned_concurrency_max
            )
            scaling.scale_on_utilization(
                utilization_target=config.provisioned_utilization_target,
                scale_in_cooldown=Duration.minutes(5),
                scale_out_cooldown=Duration.minutes(1),
            )
        return alias

    def _rest_api(
        self, config: ServingConfig, stage_name: str, log_retention_days: int
    ) -> tuple[apigw.RestApi, apigw.IApiKey | None]:
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        api = apigw.RestApi(
            self,
            "Api",
            # Not a physical name (API names need not be unique): it is the ApiName
            # dimension of the API's metrics and what the console lists.
            rest_api_name=f"mlsys-{stage_name}",
            description=f"mlsys inference API ({stage_name})",
            binary_media_types=list(GZIP_MEDIA_TYPES),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logging needs the account-wide API Gateway logging role. It is
            # shared by every REST API in the account/region, so removing this stack
            # must not delete it from under the others.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                throttling_rate_limit=config.throttle_rate,
                throttling_burst_limit=config.throttle_burst,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request bodies may hold personal data; never copy them into logs.
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        self._gateway_responses(api)
        use_key = config.predict_auth == "api-key"
        self._add_routes(api, use_key=use_key)
        return api, self._usage_plan(api, config) if use_key else None

    @staticmethod
    def _gateway_responses(api: apigw.RestApi) -> None:
        """Gateway-generated errors in the handlers' JSON shape, and the API's nag findings."""
        for response_type, (status, code) in _GATEWAY_ERRORS.items():
            api.add_gateway_response(
                f"{code}-{response_type.response_type}",
                type=response_type,
                status_code=status,
                templates={
                    "application/json": (
                        f'{{"error": {{"code": "{code}", '
                        '"message": $context.error.messageString, "details": null}}'
                    )
                },
            )
        acknowledge(
            api.node.find_child("CloudWatchRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role must carry this AWS-maintained policy "
            "(it is what execution logging, required by APIG6, writes with).",
        )
        acknowledge(
            api.deployment_stage,
            "AwsSolutions-APIG3",
            "No WAF web ACL (USD 5+/month idle): predict routes need an API key or SigV4, "
            "admin routes SigV4, and stage plus usage-plan throttling cap abuse.",
        )

    def _add_routes(self, api: apigw.RestApi, *, use_key: bool) -> None:
        """One API Gateway method per row of the route table, on its auth class's function."""
        validator = api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        predict_integration = apigw.LambdaIntegration(self.live)
        admin_integration = apigw.LambdaIntegration(self.admin.function)

        resources: dict[str, apigw.Resource] = {}

        def resource(path: str) -> apigw.Resource:
            if path not in resources:
                resources[path] = api.root.add_resource(path)
            return resources[path]

        for route in ROUTES:
            added = resource(route.resource).add_method(
                route.method,
                predict_integration if route.auth == "predict" else admin_integration,
                **self._method_options(api, route, validator=validator, use_key=use_key),
            )
            self._acknowledge_method(added, api_key=use_key and route.auth == "predict")

    @staticmethod
    def _usage_plan(api: apigw.RestApi, config: ServingConfig) -> apigw.IApiKey:
        plan = api.add_usage_plan(
            "UsagePlan",
            description="mlsys predict routes",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate, burst_limit=config.throttle_burst
            ),
            quota=apigw.QuotaSettings(limit=config.quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_stage(stage=api.deployment_stage)
        api_key = api.add_api_key("DefaultKey", description="mlsys default client key")
        plan.add_api_key(api_key)
        return api_key

    @staticmethod
    def _method_options(
        api: apigw.RestApi, route: Route, *, validator: apigw.RequestValidator, use_key: bool
    ) -> dict[str, Any]:
        """Authorisation and request validation of one route, by its auth class."""
        if route.auth == "predict":
            schema = BATCH_SCHEMA if route.path == "/batch" else STREAM_SCHEMA
            model = api.add_model(
                f"{route.handler.capitalize()}Request",
                content_type="application/json",
                schema=schema,
            )
            return {
                "authorization_type": (
                    apigw.AuthorizationType.NONE if use_key else apigw.AuthorizationType.IAM
                ),
                "api_key_required": use_key,
                "request_validator": validator,
                "request_models": {"application/json": model},
            }
        parameters = (
            {f"method.request.querystring.{name}": False for name in LOG_QUERY_PARAMETERS}
            if (route.method, route.path) == ("GET", "/log")
            else None
        )
        return {
            "authorization_type": apigw.AuthorizationType.IAM,
            "request_parameters": parameters,
            "request_validator": validator if parameters else None,
        }

    @staticmethod
    def _acknowledge_method(method: apigw.Method, *, api_key: bool) -> None:
        acknowledge(
            method,
            "AwsSolutions-COG4",
            "Machine-to-machine API: callers authenticate with SigV4 (IAM) or an API key "
            "with a usage plan; there are no end users for a Cognito user pool.",
        )
        if api_key:
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "Predict routes are authorised by API key + usage plan (context "
                "predict_auth=api-key) so non-AWS clients can call them; set "
                "predict_auth=iam to require SigV4 instead.",
            )


def smoke_test_routes(*, predict_auth: str) -> list[tuple[str, str]]:
    """(method, resource path) a deploy smoke test may call with SigV4: the read-only admin
    routes, plus the predict routes when they take IAM rather than an API key."""
    allowed = [
        route
        for route in routes_for("admin")
        if route.method == "GET" and route.path != "/emptyLog"
    ]
    if predict_auth == "iam":
        # Not /feedback: a smoke test has no ground truth to send.
        allowed.extend(r for r in routes_for("predict") if r.path != "/feedback")
    return [(route.method, route.resource) for route in allowed]
