"""The app: two stacks, environment-agnostic by default, with the outputs CI reads."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import CI_STACK, MAIN_STACK, VARIANT_STACK, Assembly

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
}


def manifest(assembly: Assembly) -> dict[str, dict[str, object]]:
    artifacts = json.loads((assembly.outdir / "manifest.json").read_text())["artifacts"]
    return {name: a for name, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}


def test_app_has_the_system_stack_and_the_ci_access_stack(assembly: Assembly) -> None:
    stacks = manifest(assembly)
    assert sorted(stacks) == [MAIN_STACK, CI_STACK]
    # The deploy role references the API, repository and queue, so it deploys second.
    assert MAIN_STACK in stacks[CI_STACK]["dependencies"]  # type: ignore[operator]


def test_stacks_are_environment_agnostic_unless_context_pins_them(
    assembly: Assembly, variant: Assembly
) -> None:
    for artifact in manifest(assembly).values():
        assert artifact["environment"] == "aws://unknown-account/unknown-region"
    for artifact in manifest(variant).values():
        assert artifact["environment"] == "aws://123456789012/eu-west-1"


def named_outputs(template: dict[str, Any]) -> set[str]:
    """Outputs meant for people and CI: not cross-stack exports, not RestApi's own URL."""
    return {
        name
        for name in template["Outputs"]
        if not name.startswith(("ExportsOutput", "ServingApiEndpoint"))
    }


def test_outputs_name_what_users_and_ci_need(assembly: Assembly, variant: Assembly) -> None:
    assert named_outputs(assembly.templates[MAIN_STACK]) == MAIN_OUTPUTS
    assert named_outputs(assembly.templates[CI_STACK]) == {"DeployRoleArn"}
    # With IAM on the predict routes there is no API key to output.
    assert named_outputs(variant.templates[VARIANT_STACK]) == MAIN_OUTPUTS - {"ApiKeyId"}
