"""CI access: GitHub OIDC and a deploy role limited to one stage's GitHub environment and
to that stage's resources, with no CloudFormation export between the stacks."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from tests.infra.conftest import MINIMAL_CI_STACK, VARIANT_CI_STACK, VARIANT_STACK, Assembly
from tests.infra.templates import actions, of_type, one, resources, role_statements

SUBJECT = "repo:mlsys-example/mlsys:environment:dev"


def test_oidc_provider_trusts_github_for_sts_and_outlives_the_stack(
    ci: Template, ci_template: dict[str, Any], assembly: Assembly
) -> None:
    ci.resource_count_is("AWS::IAM::OIDCProvider", 1)
    ci.has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {
            "Url": "https://token.actions.githubusercontent.com",
            "ClientIdList": ["sts.amazonaws.com"],
        },
    )
    # Another stage or project in the account may trust it too.
    assert one(ci_template, "AWS::IAM::OIDCProvider")[1]["DeletionPolicy"] == "Retain"
    # Synthesis says what happens when the account already has one, and what to set.
    (info,) = [i for i in assembly.infos if "GitHubOidc" in i]
    assert "already exists" in info
    assert "-c github_oidc_provider=existing" in info


def trust(template: dict[str, Any]) -> dict[str, Any]:
    role = one(template, "AWS::IAM::Role")[1]["Properties"]
    # The one managed policy: the stage's access, written by the system stack.
    (attached,) = role["ManagedPolicyArns"]
    assert (
        json.dumps(attached)
        .rstrip('"]}')
        .endswith(f":policy/mlsys-{stage_of(template)}-deploy-access")
    )
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    return dict(statement)


def test_deploy_role_is_assumable_only_from_the_stages_github_environment(
    ci_template: dict[str, Any], variant: Assembly
) -> None:
    provider = one(ci_template, "AWS::IAM::OIDCProvider")[0]
    statement = trust(ci_template)
    assert statement["Principal"] == {"Federated": {"Ref": provider}}
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUBJECT,
        }
    }
    # Each stage's role trusts its own environment only: a dev job cannot assume prod's.
    prod = trust(variant.templates[VARIANT_CI_STACK])["Condition"]["StringEquals"]
    assert prod["token.actions.githubusercontent.com:sub"] == (
        "repo:mlsys-example/mlsys:environment:prod"
    )


def test_an_existing_provider_is_reused_by_arn_or_by_this_accounts_name(
    variant: Assembly, minimal: Assembly
) -> None:
    template = variant.templates[VARIANT_CI_STACK]
    assert of_type(template, "AWS::IAM::OIDCProvider") == {}
    assert trust(template)["Principal"]["Federated"] == (
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    )
    template = minimal.templates[MINIMAL_CI_STACK]
    assert of_type(template, "AWS::IAM::OIDCProvider") == {}
    federated = json.dumps(trust(template)["Principal"]["Federated"])
    assert '{"Ref": "AWS::AccountId"}' in federated
    assert federated.endswith(':oidc-provider/token.actions.githubusercontent.com"]]}')
    assert not [i for i in minimal.infos if "GitHubOidc" in i]


def stage_of(template: dict[str, Any]) -> str:
    return str(template["Description"]).split("(")[1].split(")")[0]


def stage_access(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the system stack's policy for the stage's deploy role."""
    (policy,) = of_type(template, "AWS::IAM::ManagedPolicy").values()
    properties = policy["Properties"]
    assert properties["ManagedPolicyName"] == f"mlsys-{stage_of(template)}-deploy-access"
    return list(properties["PolicyDocument"]["Statement"])


def invoke_paths(template: dict[str, Any], stage: str) -> list[str]:
    (invoke,) = [s for s in stage_access(template) if s["Action"] == "execute-api:Invoke"]
    (api,) = of_type(template, "AWS::ApiGateway::RestApi")
    for resource in invoke["Resource"]:
        # This stage's API itself, not a wildcard over the account's APIs.
        assert {"Ref": api} in resource["Fn::Join"][1]
    return sorted(json.dumps(r).split(f'"/{stage}/')[1].split('"')[0] for r in invoke["Resource"])


def test_smoke_test_may_call_read_only_routes_and_iam_predict_routes(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    # Never DELETE /log or GET /emptyLog: a smoke test must not empty the log.
    assert invoke_paths(main_template, "dev") == ["GET/health", "GET/log", "GET/openapi.json"]
    # With predict_auth=iam the smoke test signs its predictions too.
    assert invoke_paths(variant.templates[VARIANT_STACK], "prod") == [
        "GET/health",
        "GET/log",
        "GET/openapi.json",
        "POST/batch",
        "POST/stream",
    ]


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return role_statements(template, one(template, "AWS::IAM::Role")[0])


def test_deploy_role_can_do_what_the_workflow_does_and_no_more(
    ci_template: dict[str, Any], variant: Assembly
) -> None:
    granted = {a for s in statements(ci_template) for a in actions(s)}
    assert granted == {
        "sts:AssumeRole",
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:CompleteLayerUpload",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
        "batch:SubmitJob",
        "batch:DescribeJobs",
        "batch:TerminateJob",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "apigateway:GET",
    }
    # With IAM on the predict routes there is no API key to read.
    prod = {a for s in statements(variant.templates[VARIANT_CI_STACK]) for a in actions(s)}
    assert prod == granted - {"apigateway:GET"}
    (assume,) = [s for s in statements(ci_template) if s["Action"] == "sts:AssumeRole"]
    roles = sorted(json.dumps(r) for r in assume["Resource"])
    assert len(roles) == 4
    for name, rendered in zip(
        ("deploy", "file-publishing", "image-publishing", "lookup"), roles, strict=True
    ):
        assert f":role/cdk-hnb659fds-{name}-role-" in rendered


def test_submit_push_and_key_reads_are_limited_to_resources_tagged_with_the_stage(
    ci_template: dict[str, Any],
) -> None:
    stage_only = {"StringEquals": {"aws:ResourceTag/mlsys:stage": "dev"}}
    submits = [s for s in statements(ci_template) if "batch:SubmitJob" in actions(s)]
    # Queue and definition each need the tag; "*:*" forces a revision, whose tags Batch checks.
    assert sorted(json.dumps(resources(s)).split(":batch:")[1] for s in submits) == [
        '", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":job-definition/*:*"]]}]',
        '", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":job-queue/*"]]}]',
    ]
    for statement in submits:
        assert actions(statement) == ["batch:SubmitJob"]
        assert statement["Condition"] == stage_only
    for action in ("ecr:PutImage", "apigateway:GET"):
        (statement,) = [s for s in statements(ci_template) if action in actions(s)]
        assert statement["Condition"] == stage_only, action


def test_the_role_reads_and_writes_no_parameter_and_nothing_is_resolved_at_deploy(
    ci_template: dict[str, Any],
) -> None:
    # The system stack writes the statements naming its API and bucket; nothing crosses
    # the stacks as a value (infra/deploy_access.py).
    assert not [s for s in statements(ci_template) if any("ssm:" in a for a in actions(s))]
    assert set(ci_template.get("Parameters", {})) == {"BootstrapVersion"}


def test_deploy_role_can_terminate_only_batch_jobs_and_list_only_the_data_prefix(
    ci_template: dict[str, Any], main_template: dict[str, Any]
) -> None:
    (terminate,) = [s for s in statements(ci_template) if "batch:TerminateJob" in actions(s)]
    assert actions(terminate) == ["batch:TerminateJob"]
    assert "Condition" not in terminate
    assert json.dumps(terminate["Resource"]).endswith(':job/*"]]}')
    assert ":batch:" in json.dumps(terminate["Resource"])

    (listing,) = [s for s in stage_access(main_template) if "s3:ListBucket" in actions(s)]
    assert actions(listing) == ["s3:ListBucket"]
    # The model-store bucket itself, not a wildcard.
    assert listing["Resource"] == {"Fn::GetAtt": ["ModelStoreBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["data/*"]}}
    assert {a for s in stage_access(main_template) for a in actions(s)} == {
        "execute-api:Invoke",
        "s3:ListBucket",
    }
