"""Code deploys of the predict function: CodeDeploy shifts the live alias (canary by
default) and rolls back on alarms that watch the new version only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import config_from_context
from infra.stacks import build_app
from lambda_inference.observability import count_server_error
from tests.infra.conftest import ROOT, TEST_REPOSITORY, VARIANT_STACK, Assembly
from tests.infra.templates import logical_id, of_type, one


def test_the_live_alias_is_shifted_by_a_canary_deployment_group_with_alarms(
    main_template: dict[str, Any], main: Template
) -> None:
    main.has_resource_properties(
        "AWS::CodeDeploy::DeploymentGroup",
        {
            "DeploymentConfigName": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
            "AlarmConfiguration": {"Enabled": True, "Alarms": Match.any_value()},
            "AutoRollbackConfiguration": {
                "Enabled": True,
                "Events": Match.array_with(["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]),
            },
        },
    )
    group_id, group = one(main_template, "AWS::CodeDeploy::DeploymentGroup")
    alias_id, alias = one(main_template, "AWS::Lambda::Alias")
    # CloudFormation hands every change of the alias to this group.
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {"Ref": group_id}
    assert update["ApplicationName"] == group["Properties"]["ApplicationName"]
    alarms = {a["Name"]["Ref"] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    assert alarms == {
        logical_id(main_template, "AWS::CloudWatch::Alarm", "PredictDeploymentNewVersionErrors"),
        logical_id(main_template, "AWS::CloudWatch::Alarm", "PredictDeploymentNewVersionLatency"),
        logical_id(main_template, "AWS::CloudWatch::Alarm", "PredictDeploymentNewVersionServer"),
    }
    del alias_id


def test_rollback_alarms_watch_the_new_version_through_the_alias(
    main_template: dict[str, Any],
) -> None:
    function = logical_id(main_template, "AWS::Lambda::Function", "ServingPredictFunction")
    version = one(main_template, "AWS::Lambda::Version")[0]
    for prefix, metric in (("NewVersionErrors", "Errors"), ("NewVersionLatencyP99", "Duration")):
        name = logical_id(main_template, "AWS::CloudWatch::Alarm", f"PredictDeployment{prefix}")
        alarm = main_template["Resources"][name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Period"]) == (
            "AWS/Lambda",
            metric,
            60,
        )
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions["FunctionName"] == {"Ref": function}
        assert dimensions["ExecutedVersion"] == {"Fn::GetAtt": [version, "Version"]}
        assert json.dumps(dimensions["Resource"]).endswith(':live"]]}')
    latency = main_template["Resources"][
        logical_id(main_template, "AWS::CloudWatch::Alarm", "PredictDeploymentNewVersionLatency")
    ]["Properties"]
    assert (latency["ExtendedStatistic"], latency["Threshold"]) == ("p99", 1000)


def test_a_release_that_answers_5xx_is_rolled_back_by_its_own_server_errors(
    main_template: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The handler turns failures into JSON responses, so Lambda's Errors stay at zero for a
    # release that fails every request: the alarm counts the 5xx the new version answered,
    # in the metric the handler emits (same namespace, name and dimensions).
    function = logical_id(main_template, "AWS::Lambda::Function", "ServingPredictFunction")
    version = one(main_template, "AWS::Lambda::Version")[0]
    name = logical_id(main_template, "AWS::CloudWatch::Alarm", "PredictDeploymentNewVersionServer")
    alarm = main_template["Resources"][name]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {
        "service": "inference",
        "FunctionName": {"Ref": function},
        "FunctionVersion": {"Fn::GetAtt": [version, "Version"]},
    }
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 60, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"

    class Executed:
        function_name = "mlsys-dev-ServingPredictFunction"
        function_version = "12"

    count_server_error(Executed())
    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (directive,) = emitted["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == alarm["Namespace"]
    assert [m["Name"] for m in directive["Metrics"]] == [alarm["MetricName"]]
    assert set(directive["Dimensions"][0]) == set(dimensions)
    assert emitted["FunctionVersion"] == "12"
    assert emitted["service"] == dimensions["service"]


def test_an_autoscaled_warm_pool_deploys_all_at_once(variant: Assembly) -> None:
    # While a canary or linear shift weights the alias, Lambda refuses every change of its
    # provisioned concurrency: autoscaling would fail on each step. So an autoscaled pool
    # comes with all-at-once deploys (infra/config.py refuses the other combinations).
    template = variant.templates[VARIANT_STACK]
    alias_id, alias = one(template, "AWS::Lambda::Alias")
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
        "ProvisionedConcurrentExecutions": 2
    }
    (target,) = of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert f'"{alias_id}"' in json.dumps(target["Properties"]["ResourceId"])
    group = one(template, "AWS::CodeDeploy::DeploymentGroup")[1]["Properties"]
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"


def test_a_canary_keeps_a_fixed_warm_pool_that_nothing_scales() -> None:
    from aws_cdk import App  # noqa: PLC0415 - starts jsii

    import app as cdk_app  # noqa: PLC0415

    context = {**cdk_app.cdk_json_context(), "github_repository": TEST_REPOSITORY,
               "provisioned_concurrency_min": 3, "provisioned_concurrency_max": 3}  # fmt: skip
    config = config_from_context(context)
    assert config.serving.deployment == "LambdaCanary10Percent5Minutes"
    app = App(context={**context, "aws:cdk:disable-asset-staging": True})
    system, _ = build_app(app, config=config, bundle_dir=ROOT / config.serving.lambda_bundle_dir)
    template = Template.from_stack(system).to_json()
    _, alias = one(template, "AWS::Lambda::Alias")
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
        "ProvisionedConcurrentExecutions": 3
    }
    assert of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget") == {}
    assert of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy") == {}
    group = one(template, "AWS::CodeDeploy::DeploymentGroup")[1]["Properties"]
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
