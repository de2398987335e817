"""The app: two stacks, environment-agnostic by default, with the outputs CI reads."""

from __future__ import annotations

import json
from typing import Any

from infra.deploy_access import deploy_access_policy_name
from tests.infra.conftest import CI_STACK, MAIN_STACK, MINIMAL_STACK, VARIANT_STACK, Assembly
from tests.infra.templates import of_type

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


def test_the_ci_stack_attaches_the_policy_the_system_stack_writes(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    for synthesized, stage in ((assembly, "dev"), (variant, "prod"), (minimal, "sandbox")):
        main, ci = (synthesized.templates[f"mlsys-{stage}{suffix}"] for suffix in ("", "-ci"))
        (policy,) = of_type(main, "AWS::IAM::ManagedPolicy").values()
        name = policy["Properties"]["ManagedPolicyName"]
        assert name == deploy_access_policy_name(stage) == f"mlsys-{stage}-deploy-access"
        (role,) = of_type(ci, "AWS::IAM::Role").values()
        (attached,) = role["Properties"]["ManagedPolicyArns"]
        assert json.dumps(attached).rstrip('"]}').endswith(f":policy/{name}")


def test_nothing_is_resolved_at_deploy_time_that_the_bootstrap_deploy_role_cannot_read(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    # `cdk deploy` creates change sets as cdk-<qualifier>-deploy-role, whose default policy
    # reads only /cdk-bootstrap/<qualifier>/version: an SSM-typed parameter or an SSM
    # dynamic reference would fail with "AccessDenied. User doesn't have permission to call
    # ssm:GetParameters" (aws/aws-cdk#20959). infra/deploy_access.py explains the choice.
    for synthesized in (assembly, variant, minimal):
        for name, template in synthesized.templates.items():
            parameters = template.get("Parameters", {})
            ssm_typed = {
                key: p["Default"] for key, p in parameters.items() if "SSM" in str(p["Type"])
            }
            assert ssm_typed == {"BootstrapVersion": "/cdk-bootstrap/hnb659fds/version"}, name
            assert "{{resolve:" not in json.dumps(template), name
            plain = {k for k, p in parameters.items() if p["Type"] == "String"}
            assert plain <= {"TrainingImageTag"}, name


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
