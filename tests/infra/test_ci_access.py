"""CI access: GitHub OIDC and a deploy role limited to one repository and branch."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from tests.infra.conftest import VARIANT_CI_STACK, Assembly
from tests.infra.templates import actions, of_type, one, resources, role_statements

SUBJECT = "repo:owner/repo:ref:refs/heads/main"


def test_oidc_provider_trusts_github_for_sts(ci: Template) -> None:
    ci.resource_count_is("AWS::IAM::OIDCProvider", 1)
    ci.has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {
            "Url": "https://token.actions.githubusercontent.com",
            "ClientIdList": ["sts.amazonaws.com"],
        },
    )


def test_deploy_role_is_assumable_only_from_the_configured_repository_and_branch(
    ci_template: dict[str, Any],
) -> None:
    provider = one(ci_template, "AWS::IAM::OIDCProvider")[0]
    role = one(ci_template, "AWS::IAM::Role")[1]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": {"Ref": provider}}
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUBJECT,
        }
    }
    assert "ManagedPolicyArns" not in role


def test_an_existing_provider_is_reused_instead_of_created(variant: Assembly) -> None:
    template = variant.templates[VARIANT_CI_STACK]
    assert of_type(template, "AWS::IAM::OIDCProvider") == {}
    role = one(template, "AWS::IAM::Role")[1]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"]["Federated"].endswith(
        ":oidc-provider/token.actions.githubusercontent.com"
    )


def invoke_paths(template: dict[str, Any], stage: str) -> list[str]:
    role = one(template, "AWS::IAM::Role")[0]
    (invoke,) = [s for s in role_statements(template, role) if s["Action"] == "execute-api:Invoke"]
    return sorted(json.dumps(r).split(f'"/{stage}/')[1].split('"')[0] for r in invoke["Resource"])


def test_smoke_test_may_call_read_only_routes_and_iam_predict_routes(
    ci_template: dict[str, Any], variant: Assembly
) -> None:
    # Never DELETE /log or GET /emptyLog: a smoke test must not empty the log.
    assert invoke_paths(ci_template, "dev") == ["GET/health", "GET/log", "GET/openapi.json"]
    # With predict_auth=iam the smoke test signs its predictions too.
    assert invoke_paths(variant.templates[VARIANT_CI_STACK], "prod") == [
        "GET/health",
        "GET/log",
        "GET/openapi.json",
        "POST/batch",
        "POST/stream",
    ]


def test_deploy_role_can_do_what_the_workflow_does_and_no_more(
    ci_template: dict[str, Any],
) -> None:
    role = one(ci_template, "AWS::IAM::Role")[0]
    statements = role_statements(ci_template, role)
    granted = {a for s in statements for a in actions(s)}
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
        "s3:ListBucket",
        "cloudformation:DescribeStacks",
        "execute-api:Invoke",
        "apigateway:GET",
    }
    (assume,) = [s for s in statements if s["Action"] == "sts:AssumeRole"]
    roles = sorted(json.dumps(r) for r in assume["Resource"])
    assert len(roles) == 4
    for name, rendered in zip(
        ("deploy", "file-publishing", "image-publishing", "lookup"), roles, strict=True
    ):
        assert f":role/cdk-hnb659fds-{name}-role-" in rendered


def test_deploy_role_can_terminate_only_batch_jobs_and_list_only_the_data_prefix(
    ci_template: dict[str, Any],
) -> None:
    role = one(ci_template, "AWS::IAM::Role")[0]
    statements = role_statements(ci_template, role)
    (terminate,) = [s for s in statements if "batch:TerminateJob" in actions(s)]
    assert actions(terminate) == ["batch:TerminateJob"]
    assert "Condition" not in terminate
    assert json.dumps(terminate["Resource"]).endswith(':job/*"]]}')
    assert ":batch:" in json.dumps(terminate["Resource"])

    (listing,) = [s for s in statements if "s3:ListBucket" in actions(s)]
    assert actions(listing) == ["s3:ListBucket"]
    # The model-store bucket itself (not a wildcard), and only keys under data/.
    (bucket,) = resources(listing)
    assert "ModelStoreBucket" in json.dumps(bucket)
    assert "*" not in json.dumps(bucket)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["data/*"]}}
