"""Serving: functions, the autoscaled live alias, the REST API and the log-ingest path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.model_store import BUCKET_LOGICAL_ID
from infra.serving import DEAD_LETTER_QUEUE_LOGICAL_ID
from infra.system_log import TABLE_LOGICAL_ID
from tests.infra.conftest import ROOT, VARIANT_STACK, Assembly
from tests.infra.templates import (
    actions,
    logical_id,
    mentions,
    of_type,
    one,
    resources,
    role_statements,
    routes,
)

PREDICT = [("POST", "/stream"), ("POST", "/batch"), ("POST", "/feedback")]
ADMIN = [
    ("GET", "/log"),
    ("DELETE", "/log"),
    ("GET", "/emptyLog"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
]


def function(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    found = logical_id(template, "AWS::Lambda::Function", f"Serving{name}Function")
    return found, template["Resources"][found]["Properties"]


def test_routes_and_their_authorisation(main_template: dict[str, Any]) -> None:
    found = routes(main_template)
    assert sorted(found) == sorted(PREDICT + ADMIN)
    live = logical_id(main_template, "AWS::Lambda::Alias", "ServingPredictLive")
    admin, _ = function(main_template, "Admin")
    for route in PREDICT:
        method = found[route]
        assert (method["AuthorizationType"], method["ApiKeyRequired"]) == ("NONE", True)
        assert mentions(method["Integration"]["Uri"], live), route
    for route in ADMIN:
        method = found[route]
        assert method["AuthorizationType"] == "AWS_IAM", route
        assert mentions(method["Integration"]["Uri"], admin), route


def test_predict_routes_can_require_iam_instead_of_an_api_key(variant: Assembly) -> None:
    template = variant.templates[VARIANT_STACK]
    found = routes(template)
    for route in PREDICT:
        assert found[route]["AuthorizationType"] == "AWS_IAM"
        assert not found[route].get("ApiKeyRequired", False)
    assert of_type(template, "AWS::ApiGateway::UsagePlan") == {}
    assert of_type(template, "AWS::ApiGateway::ApiKey") == {}


def test_stage_throttles_traces_and_writes_access_logs(
    main_template: dict[str, Any], main: Template
) -> None:
    main.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": [
                Match.object_like(
                    {"HttpMethod": "*", "ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}
                )
            ]
        },
    )
    stage = one(main_template, "AWS::ApiGateway::Stage")[1]["Properties"]
    assert stage["StageName"] == "dev"
    assert stage["TracingEnabled"] is True
    (settings,) = stage["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (100, 200)
    assert settings["DataTraceEnabled"] is False
    log_group = logical_id(main_template, "AWS::Logs::LogGroup", "ServingApiAccessLogs")
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": [log_group, "Arn"]}


def test_usage_plan_applies_context_rate_burst_and_quota_to_the_key(
    main_template: dict[str, Any],
) -> None:
    plan_id, plan = one(main_template, "AWS::ApiGateway::UsagePlan")
    assert plan["Properties"]["Throttle"] == {"BurstLimit": 200, "RateLimit": 100}
    assert plan["Properties"]["Quota"] == {"Limit": 100000, "Period": "DAY"}
    key_id, _ = one(main_template, "AWS::ApiGateway::ApiKey")
    link = one(main_template, "AWS::ApiGateway::UsagePlanKey")[1]["Properties"]
    assert (link["UsagePlanId"], link["KeyId"]) == ({"Ref": plan_id}, {"Ref": key_id})


def test_prediction_bodies_are_validated_against_json_schema_models(
    main_template: dict[str, Any],
) -> None:
    found = routes(main_template)
    validator_id, validator = one(main_template, "AWS::ApiGateway::RequestValidator")
    assert validator["Properties"]["ValidateRequestBody"] is True
    schemas = {
        name: model["Properties"]["Schema"]
        for name, model in of_type(main_template, "AWS::ApiGateway::Model").items()
    }
    for route in PREDICT:
        method = found[route]
        assert method["RequestValidatorId"] == {"Ref": validator_id}
        schema = schemas[method["RequestModels"]["application/json"]["Ref"]]
        assert schema["required"] == ["data"]
    batch = schemas[found[("POST", "/batch")]["RequestModels"]["application/json"]["Ref"]]
    assert batch["properties"]["data"]["type"] == "array"
    log_parameters = found[("GET", "/log")]["RequestParameters"]
    assert sorted(log_parameters) == [
        f"method.request.querystring.{name}" for name in ("limit", "next", "since", "type")
    ]


def test_gateway_errors_use_the_api_error_shape(main_template: dict[str, Any]) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in of_type(main_template, "AWS::ApiGateway::GatewayResponse").values()
    }
    for response_type in ("BAD_REQUEST_BODY", "THROTTLED", "QUOTA_EXCEEDED", "DEFAULT_5XX"):
        template = responses[response_type]["ResponseTemplates"]["application/json"]
        rendered = template.replace("$context.error.messageString", '"message"')
        assert set(json.loads(rendered)["error"]) == {"code", "message", "details"}
    assert responses["THROTTLED"]["StatusCode"] == "429"


def makefile_lambda_python() -> str:
    match = re.search(r"^LAMBDA_PYTHON \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    ("name", "handler", "delivery"),
    [
        ("Predict", "lambda_inference.entrypoints.handle_predict", "stdout"),
        ("Admin", "lambda_inference.entrypoints.handle_admin", "sync"),
        ("LogIngest", "lambda_inference.entrypoints.handle_log_ingest", "sync"),
    ],
)
def test_functions_run_the_bundle_on_arm64_with_the_contract_environment(
    main_template: dict[str, Any], name: str, handler: str, delivery: str
) -> None:
    _, properties = function(main_template, name)
    assert properties["Handler"] == handler
    assert properties["Architectures"] == ["arm64"]
    # The bundle's wheels are built for the Makefile's Python; the runtime must match.
    assert properties["Runtime"] == f"python{makefile_lambda_python()}"
    if name != "LogIngest":  # behind API Gateway, whose integration timeout is 29 s
        assert properties["Timeout"] < 29
    environment = properties["Environment"]["Variables"]
    assert environment["MLSYS_LOG_DELIVERY"] == delivery
    assert environment["MLSYS_REGISTRY_URI"] == {
        "Fn::Join": ["", ["s3://", {"Ref": BUCKET_LOGICAL_ID}]]
    }
    assert environment["MLSYS_LOG_URI"] == {
        "Fn::Join": ["", ["dynamodb://", {"Ref": TABLE_LOGICAL_ID}]]
    }
    assert environment["MLSYS_MODEL_NAME"] == "default"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "mlsys"


def test_all_functions_share_one_code_asset(main_template: dict[str, Any]) -> None:
    keys = {
        json.dumps(f["Properties"]["Code"], sort_keys=True)
        for f in of_type(main_template, "AWS::Lambda::Function").values()
    }
    assert len(keys) == 1


def test_predict_memory_timeout_reserved_concurrency_and_tracing(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    _, predict = function(main_template, "Predict")
    assert (predict["MemorySize"], predict["Timeout"]) == (1024, 15)
    # A fresh account (quota 10, 100 always unreserved) cannot reserve any: off by default.
    assert "ReservedConcurrentExecutions" not in predict
    assert predict["TracingConfig"] == {"Mode": "Active"}
    _, capped = function(variant.templates[VARIANT_STACK], "Predict")
    assert capped["ReservedConcurrentExecutions"] == 20


def test_no_function_reserves_concurrency_by_default(main_template: dict[str, Any]) -> None:
    # Reserving even 1 fails on a fresh account ("decreases account's
    # UnreservedConcurrentExecution below its minimum value"), whichever function asks.
    reserving = [
        name
        for name, resource in of_type(main_template, "AWS::Lambda::Function").items()
        if "ReservedConcurrentExecutions" in resource["Properties"]
    ]
    assert reserving == []


def test_predict_events_log_sampled_inputs_by_default(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    _, predict = function(main_template, "Predict")
    environment = predict["Environment"]["Variables"]
    assert (environment["MLSYS_LOG_INPUTS"], environment["MLSYS_LOG_INPUTS_SAMPLE_RATE"]) == (
        "sampled",
        "0.05",
    )
    _, prod = function(variant.templates[VARIANT_STACK], "Predict")
    assert prod["Environment"]["Variables"]["MLSYS_LOG_INPUTS"] == "digest"


def test_api_is_named_after_its_stage_and_passes_gzip_bodies_intact(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    api = one(main_template, "AWS::ApiGateway::RestApi")[1]["Properties"]
    assert api["Name"] == "mlsys-dev"  # the ApiName dimension of its metrics
    assert one(variant.templates[VARIANT_STACK], "AWS::ApiGateway::RestApi")[1]["Properties"][
        "Name"
    ] == ("mlsys-prod")
    # Gzip bodies reach the handler base64-encoded, byte for byte ...
    assert api["BinaryMediaTypes"] == ["application/gzip"]
    # ... while JSON bodies are still validated against the models by API Gateway.
    for route in PREDICT:
        method = routes(main_template)[route]
        assert set(method["RequestModels"]) == {"application/json"}
        assert "RequestValidatorId" in method


def test_live_alias_has_provisioned_concurrency_scaled_on_utilisation(
    variant: Assembly,
) -> None:
    main_template = variant.templates[VARIANT_STACK]
    main = Template.from_json(main_template)
    main.resource_count_is("AWS::Lambda::Alias", 1)
    main.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
                    },
                    "TargetValue": 0.7,
                }
            ),
        },
    )
    alias_id, alias = one(main_template, "AWS::Lambda::Alias")
    predict, _ = function(main_template, "Predict")
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": predict}
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
        "ProvisionedConcurrentExecutions": 2
    }
    target_id, target = one(main_template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (2, 10)
    assert mentions(target["Properties"]["ResourceId"], alias_id)
    policy = one(main_template, "AWS::ApplicationAutoScaling::ScalingPolicy")[1]["Properties"]
    assert policy["ScalingTargetId"] == {"Ref": target_id}
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
    }
    assert tracking["TargetValue"] == 0.7


def test_zero_provisioned_concurrency_by_default_means_no_warm_pool_and_no_scaling(
    main_template: dict[str, Any],
) -> None:
    # Provisioned concurrency must also leave 100 unreserved: a fresh account has no room.
    template = main_template
    _, alias = one(template, "AWS::Lambda::Alias")
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget") == {}


def test_predict_log_events_are_shipped_to_the_ingest_function(
    main_template: dict[str, Any],
) -> None:
    subscription = one(main_template, "AWS::Logs::SubscriptionFilter")[1]["Properties"]
    ingest, _ = function(main_template, "LogIngest")
    predict_logs = logical_id(main_template, "AWS::Logs::LogGroup", "ServingPredictLogs")
    assert subscription["FilterPattern"] == '{ $.mlsys_event.type = "*" }'
    assert subscription["LogGroupName"] == {"Ref": predict_logs}
    assert subscription["DestinationArn"] == {"Fn::GetAtt": [ingest, "Arn"]}
    _, predict = function(main_template, "Predict")
    assert predict["LoggingConfig"]["LogGroup"] == {"Ref": predict_logs}


def test_log_batches_that_still_fail_after_retries_land_in_the_dead_letter_queue(
    main_template: dict[str, Any], main: Template
) -> None:
    ingest, _ = function(main_template, "LogIngest")
    queue = DEAD_LETTER_QUEUE_LOGICAL_ID
    # Only the asynchronously invoked ingest function has an async-invoke config.
    config = one(main_template, "AWS::Lambda::EventInvokeConfig")[1]["Properties"]
    assert config["FunctionName"] == {"Ref": ingest}
    assert config["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": [queue, "Arn"]}
    }
    assert "OnSuccess" not in config["DestinationConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 6 * 3600
    # Encrypted at rest, kept for SQS's maximum of 14 days.
    main.resource_count_is("AWS::SQS::Queue", 1)
    main.has_resource_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 86400}
    )
    assert main_template["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    # ... and reachable over TLS only.
    policy = one(main_template, "AWS::SQS::QueuePolicy")[1]["Properties"]
    assert policy["Queues"] == [{"Ref": queue}]
    assert any(
        s["Effect"] == "Deny"
        and s["Action"] == "sqs:*"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["PolicyDocument"]["Statement"]
    )
    # The ingest role may send to this queue and nothing else in SQS.
    role = logical_id(main_template, "AWS::IAM::Role", "ServingLogIngestRole")
    sends = [s for s in role_statements(main_template, role) if "sqs:SendMessage" in actions(s)]
    assert [resources(s) for s in sends] == [[{"Fn::GetAtt": [queue, "Arn"]}]]
    assert main_template["Outputs"]["LogIngestDeadLetterQueueUrl"]["Value"] == {"Ref": queue}


def granted(template: dict[str, Any], role_prefix: str) -> set[str]:
    role = logical_id(template, "AWS::IAM::Role", role_prefix)
    return {a for s in role_statements(template, role) for a in actions(s)}


def test_each_function_gets_only_what_its_routes_need(main_template: dict[str, Any]) -> None:
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    xray = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert granted(main_template, "ServingPredictRole") == {
        "s3:GetObject",
        "s3:ListBucket",
        *logs,
        *xray,
    }
    assert granted(main_template, "ServingAdminRole") == {
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        *logs,
        *xray,
    }
    assert granted(main_template, "ServingLogIngestRole") == {
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        # The on-failure destination: Lambda sends failed batches with the function's role.
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        *logs,
    }
    predict = logical_id(main_template, "AWS::IAM::Role", "ServingPredictRole")
    (read,) = [s for s in role_statements(main_template, predict) if s["Action"] == "s3:GetObject"]
    assert resources(read) == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [BUCKET_LOGICAL_ID, "Arn"]}, "/models/*"]]}
    ]


def test_the_api_exposes_exactly_the_route_table(main: Template) -> None:
    """A route added to (or dropped from) the handler's table alone must fail here:
    the synthesized API Gateway resources and methods are the table, both ways."""
    from lambda_inference.routes import ENTRY_POINTS, ROUTES  # noqa: PLC0415

    resources = main.find_resources("AWS::ApiGateway::Resource")
    paths = {key: "/" + value["Properties"]["PathPart"] for key, value in resources.items()}
    synthesized = {
        (method["Properties"]["HttpMethod"], paths[method["Properties"]["ResourceId"]["Ref"]])
        for method in main.find_resources("AWS::ApiGateway::Method").values()
    }
    declared = {(route.method, route.path) for route in ROUTES}
    assert synthesized - declared == set(), "routes on API Gateway but not in the table"
    assert declared - synthesized == set(), "routes in the table but not on API Gateway"
    handlers = {
        value["Properties"]["Handler"]
        for value in main.find_resources("AWS::Lambda::Function").values()
        if "Handler" in value["Properties"]
    }
    assert set(ENTRY_POINTS.values()) <= handlers


def test_every_function_in_every_stack_starts_in_the_one_entry_points_module(
    assembly: Assembly, variant: Assembly
) -> None:
    import lambda_inference.entrypoints as entrypoints  # noqa: PLC0415
    from lambda_inference.routes import ENTRYPOINTS_MODULE  # noqa: PLC0415

    handlers = {
        resource["Properties"]["Handler"]
        for built in (assembly, variant)
        for template in built.templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function" and "Handler" in resource["Properties"]
    }
    assert len(handlers) == 5  # predict, admin, log ingest, monitor, rollout evaluator
    for handler in handlers:
        module, _, function = handler.rpartition(".")
        assert module == ENTRYPOINTS_MODULE
        assert callable(getattr(entrypoints, function))
