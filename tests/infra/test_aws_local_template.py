"""`make aws-local-test` runs a template derived from the synthesized one: these tests pin
the derivation on the real synthesis (which function is which, what is rewritten, what
stays), without Docker or SAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.aws_local import template
from scripts.aws_local.template import Names, TemplateError
from tests.infra.templates import of_type, routes

LOCAL = Names(
    refs={
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "ModelStoreBucket": "local-bucket",
        "SystemLogTable": "local-table",
    },
    attributes={},
)


def local_names(main_template: dict[str, Any]) -> Names:
    """LOCAL plus the alarm topic, whose logical ID carries a hash."""
    (topic,) = of_type(main_template, "AWS::SNS::Topic")
    return Names(
        refs={**LOCAL.refs, topic: "arn:aws:sns:us-east-1:123456789012:local-topic"},
        attributes={},
    )


def derived(main_template: dict[str, Any]) -> dict[str, Any]:
    wiring = template.find_wiring(main_template)
    evaluator, _ = wiring.evaluator
    return template.derive_sam_template(
        main_template,
        local_names=local_names(main_template),
        code_dir="/bundles/x86_64",
        architecture="x86_64",
        environment={"AWS_ENDPOINT_URL": "http://172.17.0.1:5000"},
        overrides={evaluator: {"MLSYS_ROLLOUT_MIN_BAKE_SECONDS": "0"}},
    )


def integration_target(method: dict[str, Any]) -> str:
    """The logical ID an API method's Lambda integration URI names."""
    parts = method["Integration"]["Uri"]["Fn::Join"][1]
    (target,) = [p for p in parts if isinstance(p, dict) and ("Ref" in p or "Fn::GetAtt" in p)
                 and p.get("Ref") not in ("AWS::Partition", "AWS::Region")]  # fmt: skip
    return str(target.get("Ref") or target["Fn::GetAtt"][0])


def test_wiring_is_found_from_the_stack_not_from_names(main_template: dict[str, Any]) -> None:
    wiring = template.find_wiring(main_template)
    functions = of_type(main_template, "AWS::Lambda::Function")
    aliases = of_type(main_template, "AWS::Lambda::Alias")
    (subscription,) = of_type(main_template, "AWS::Logs::SubscriptionFilter").values()
    # predict: the function behind POST /stream's alias, and the one whose log is subscribed
    alias = integration_target(routes(main_template)[("POST", "/stream")])
    assert aliases[alias]["Properties"]["FunctionName"] == {"Ref": wiring.predict}
    assert subscription["Properties"]["DestinationArn"] == {"Fn::GetAtt": [wiring.ingest, "Arn"]}
    assert wiring.filter_pattern == subscription["Properties"]["FilterPattern"]
    assert integration_target(routes(main_template)[("GET", "/log")]) != wiring.predict
    monitor, monitor_rule = wiring.monitor
    evaluator, evaluator_rule = wiring.evaluator
    rules = of_type(main_template, "AWS::Events::Rule")
    assert rules[monitor_rule]["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    assert rules[evaluator_rule]["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert {wiring.predict, wiring.ingest, monitor, evaluator} <= set(functions)
    assert len({wiring.predict, wiring.ingest, monitor, evaluator}) == 4


def test_functions_keep_their_handlers_and_run_the_local_bundle(
    main_template: dict[str, Any],
) -> None:
    local = derived(main_template)
    synthesized = of_type(main_template, "AWS::Lambda::Function")
    functions = of_type(local, "AWS::Lambda::Function")
    assert set(functions) == set(synthesized)
    for logical_id, function in functions.items():
        properties = function["Properties"]
        original = synthesized[logical_id]["Properties"]
        for key in ("Handler", "Runtime", "MemorySize", "Timeout"):
            assert properties[key] == original[key], (logical_id, key)
        assert original["Architectures"] == ["arm64"]
        assert properties["Architectures"] == ["x86_64"]
        assert properties["Code"] == "/bundles/x86_64"
        assert "Metadata" not in function  # SAM would swap Code back to the arm64 asset
        variables = properties["Environment"]["Variables"]
        assert all(isinstance(value, str) for value in variables.values()), logical_id
        assert variables["AWS_ENDPOINT_URL"] == "http://172.17.0.1:5000"
        assert variables["MLSYS_REGISTRY_URI"] == "s3://local-bucket"
        assert variables["MLSYS_LOG_URI"] == "dynamodb://local-table"
        unchanged = {k: v for k, v in original["Environment"]["Variables"].items()
                     if isinstance(v, str)}  # fmt: skip
        assert unchanged.items() <= variables.items()
    evaluator, _ = template.find_wiring(main_template).evaluator
    evaluator_variables = functions[evaluator]["Properties"]["Environment"]["Variables"]
    assert evaluator_variables["MLSYS_ROLLOUT_MIN_BAKE_SECONDS"] == "0"
    assert evaluator_variables["MLSYS_ALARM_TOPIC_ARN"].endswith(":local-topic")


def test_the_api_keeps_every_route_on_functions_and_its_binary_media_types(
    main_template: dict[str, Any],
) -> None:
    local = derived(main_template)
    functions = set(of_type(local, "AWS::Lambda::Function"))
    synthesized_routes = routes(main_template)
    local_routes = routes(local)
    assert set(local_routes) == set(synthesized_routes)
    for route, method in local_routes.items():
        assert integration_target(method) in functions, route
    wiring = template.find_wiring(main_template)
    assert integration_target(local_routes[("POST", "/stream")]) == wiring.predict
    (api,) = of_type(local, "AWS::ApiGateway::RestApi").values()
    media = api["Properties"]["BinaryMediaTypes"]
    assert media == ["application/gzip"]
    assert api["Properties"]["Body"]["x-amazon-apigateway-binary-media-types"] == media
    assert api["Properties"]["Body"]["paths"] == {}  # routes come from the Method resources
    kept = {resource["Type"] for resource in local["Resources"].values()}
    assert kept == {
        "AWS::Lambda::Function",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Resource",
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::Stage",
    }
    json.dumps(local)  # plain JSON for SAM


def test_stateful_references_are_what_must_exist_locally(main_template: dict[str, Any]) -> None:
    wiring = template.find_wiring(main_template)
    found = template.stateful_references(main_template, wiring)
    assert sorted(found.values()) == [
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::SNS::Topic",
    ]
    assert {"ModelStoreBucket", "SystemLogTable"} <= set(found)


def test_an_unknown_reference_is_refused_by_name() -> None:
    names = Names(refs={"A": "a"}, attributes={"Fn.Arn": "arn:fn"})
    value = {"Fn::Join": ["/", [{"Ref": "A"}, {"Fn::GetAtt": ["Fn", "Arn"]}]]}
    assert names.resolve(value, where="x") == "a/arn:fn"
    assert names.resolve({"Fn::Sub": "${A}-${Fn.Arn}"}, where="x") == "a-arn:fn"
    with pytest.raises(TemplateError, match=r"predict Environment: Missing has no local value"):
        names.resolve({"Ref": "Missing"}, where="predict Environment")
    with pytest.raises(TemplateError, match="Fn::If is not resolved"):
        names.resolve({"Fn::If": ["C", "a", "b"]}, where="x")
