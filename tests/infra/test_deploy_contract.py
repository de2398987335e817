"""What the deploy workflow (.github/workflows/deploy.yml) relies on in the synthesised app.

The workflow deploys the stack `mlsys-<stage>`, reads its outputs with
scripts/cdk_outputs.py and acts through the CI stack's deploy role; if a
construct renames an output or drops a permission, this fails here instead of
in the first real deploy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from scripts.cdk_outputs import OPTIONAL, REQUIRED
from tests.infra.conftest import (
    CI_STACK,
    MAIN_STACK,
    ROOT,
    VARIANT_CI_STACK,
    VARIANT_STACK,
    Assembly,
)
from tests.infra.templates import of_type


def test_the_workflow_deploys_the_stack_it_names() -> None:
    workflow = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert MAIN_STACK == "mlsys-dev"
    assert VARIANT_STACK == "mlsys-prod"
    assert 'cdk deploy "mlsys-$STAGE"' in workflow
    assert 'stack-output "mlsys-$STAGE"' in workflow


def test_every_output_the_workflow_reads_exists(assembly: Assembly, variant: Assembly) -> None:
    outputs = set(assembly.templates[MAIN_STACK]["Outputs"])
    assert set(REQUIRED.values()) | set(OPTIONAL.values()) <= outputs
    # IAM-authorised predict routes have no API key: the workflow signs instead.
    variant_outputs = set(variant.templates[VARIANT_STACK]["Outputs"])
    assert set(REQUIRED.values()) <= variant_outputs
    assert "ApiKeyId" not in variant_outputs
    assert "DeployRoleArn" in assembly.templates[CI_STACK]["Outputs"]
    assert "DeployRoleArn" in variant.templates[VARIANT_CI_STACK]["Outputs"]


def test_every_output_the_readme_names_exists(assembly: Assembly) -> None:
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("The outputs name everything") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", paragraph))
    outputs = set(assembly.templates[MAIN_STACK]["Outputs"]) | set(
        assembly.templates[CI_STACK]["Outputs"]
    )
    assert named, "the README should list the stack outputs"
    assert named <= outputs, f"README names outputs the app lacks: {sorted(named - outputs)}"


def _deploy_role_actions(ci_template: dict[str, Any], main_template: dict[str, Any]) -> set[str]:
    """Actions of the CI stack's inline policies and of the stage's managed policy (which
    the system stack writes and the role attaches by name)."""
    policies = [
        *of_type(ci_template, "AWS::IAM::Policy").values(),
        *of_type(main_template, "AWS::IAM::ManagedPolicy").values(),
    ]
    actions: set[str] = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Effect", "Allow") != "Allow":
                continue
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_deploy_role_can_do_each_step_of_the_workflow(assembly: Assembly) -> None:
    template = assembly.templates[CI_STACK]
    (role,) = of_type(template, "AWS::IAM::Role").values()
    trust = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    assert "sts:AssumeRoleWithWebIdentity" in trust
    assert "repo:mlsys-example/mlsys:environment:dev" in trust
    actions = _deploy_role_actions(template, assembly.templates[MAIN_STACK])
    needed = {
        "sts:AssumeRole",  # cdk deploy through the bootstrap roles
        "ecr:GetAuthorizationToken",  # docker login
        "ecr:PutImage",  # push the training image
        "cloudformation:DescribeStacks",  # find the repository before the deploy
        "batch:SubmitJob",  # train
        "batch:DescribeJobs",  # wait for it
        "apigateway:GET",  # read the API key's value for the smoke test
        "execute-api:Invoke",  # SigV4 GET /health, /openapi.json, /log
    }
    assert needed <= actions, f"deploy role lacks {sorted(needed - actions)}"


def test_every_alarm_has_a_runbook_entry(assembly: Assembly) -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    runbook = operations[operations.index("## Respond to alarms") :]
    alarms = of_type(assembly.templates[MAIN_STACK], "AWS::CloudWatch::Alarm")
    names = {
        re.sub(r"^(Monitoring|PredictDeployment)|[0-9A-F]{8}$", "", logical_id)
        for logical_id in alarms
    }
    assert len(names) >= 10
    missing = sorted(name for name in names if f"`{name}`" not in runbook)
    assert not missing, f"alarms without a row in docs/operations.md: {missing}"
