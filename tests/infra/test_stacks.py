"""The app: two stacks, environment-agnostic by default, with the outputs CI reads."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import CI_STACK, MAIN_STACK, MINIMAL_STACK, VARIANT_STACK, Assembly

# scripts/cdk_outputs.py (the deploy workflow) looks these up by name.
MAIN_OUTPUTS = {
    "ApiUrl",
    "ApiKeyId",
    "ModelStoreBucket",
    "SystemLogTable",
    "TrainingJobQueue",
    "TrainingJobDefinition",
    "TrainingImageRepositoryUri",
    "DashboardName",
    "MonitorReports",
    "AlarmTopic",
    "LogIngestDeadLetterQueueUrl",
    "PredictDeploymentGroup",
}


def manifest(assembly: Assembly) -> dict[str, dict[str, object]]:
    artifacts = json.loads((assembly.outdir / "manifest.json").read_text())["artifacts"]
    return {name: a for name, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}


def test_app_has_the_system_stack_and_the_ci_access_stack(assembly: Assembly) -> None:
    stacks = manifest(assembly)
    assert sorted(stacks) == [MAIN_STACK, CI_STACK]
    # The deploy role reads the SSM parameters the system stack publishes: deployed second.
    assert MAIN_STACK in stacks[CI_STACK]["dependencies"]  # type: ignore[operator]


def test_no_stack_exports_or_imports_a_value(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    # An export in use locks the exporting stack: the workflow could not drop or replace
    # the API key, the queue, ... (CloudFormation: "export ... cannot be deleted as it is in
    # use"). The stacks share values through stage tags and SSM parameters instead.
    for synthesized in (assembly, variant, minimal):
        for name, template in synthesized.templates.items():
            assert "Fn::ImportValue" not in json.dumps(template), name
            assert not [o for o in template.get("Outputs", {}).values() if "Export" in o], name


def test_the_system_stack_publishes_what_the_ci_stack_reads(assembly: Assembly) -> None:
    published = {
        p["Properties"]["Name"]
        for p in assembly.resources(MAIN_STACK, "AWS::SSM::Parameter").values()
    }
    read = {
        p["Default"]
        for name, p in assembly.templates[CI_STACK]["Parameters"].items()
        if name.startswith("SsmParameterValue")  # not CDK's BootstrapVersion
    }
    assert read == {"/mlsys/dev/api-id", "/mlsys/dev/model-store-bucket"}
    assert read <= published


def test_stacks_are_environment_agnostic_unless_context_pins_them(
    assembly: Assembly, variant: Assembly
) -> None:
    for artifact in manifest(assembly).values():
        assert artifact["environment"] == "aws://unknown-account/unknown-region"
    for artifact in manifest(variant).values():
        assert artifact["environment"] == "aws://123456789012/eu-west-1"


def named_outputs(template: dict[str, Any]) -> set[str]:
    """Outputs meant for people and CI, not RestApi's own URL."""
    return {name for name in template["Outputs"] if not name.startswith("ServingApiEndpoint")}


def test_outputs_name_what_users_and_ci_need(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    assert named_outputs(assembly.templates[MAIN_STACK]) == MAIN_OUTPUTS
    assert named_outputs(assembly.templates[CI_STACK]) == {"DeployRoleArn"}
    # With IAM on the predict routes there is no API key to output.
    assert named_outputs(variant.templates[VARIANT_STACK]) == MAIN_OUTPUTS - {"ApiKeyId"}
    # minimal_idle_cost has no dashboard and no (hourly) model monitor.
    assert named_outputs(minimal.templates[MINIMAL_STACK]) == MAIN_OUTPUTS - {
        "DashboardName",
        "MonitorReports",
    }
