"""CI access: GitHub's OIDC provider and the deploy role GitHub Actions assumes.

The role trusts one repository's GitHub *environment* named after the stage
(``repo:ORG/REPO:environment:<stage>``), so only a workflow job that runs in that
environment -- behind its protection rules -- can assume it, and the dev environment's
jobs cannot assume the prod role. It can do what the deploy workflow does and nothing
else: assume the CDK bootstrap roles (``cdk deploy``), push the training image, submit,
watch and (on timeout) terminate a training job, list the bucket's ``data/`` prefix, read
the stack's outputs and events, read the API key and call the SigV4 routes for the smoke
test.

No ``Fn::ImportValue``: this stack is deployed by an administrator, the system stack by
the workflow, and an export would lock the system stack (CloudFormation refuses to drop
or replace an exported value while another stack imports it). Instead the role matches
the resources it pushes to and submits with by their ``mlsys:stage`` tag, and attaches
the managed policy the system stack writes for its API and bucket
(:mod:`infra.deploy_access`), by its name. Nothing is resolved at deploy time: the default
bootstrap deploy role could not read it (infra/deploy_access.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.common import STAGE_TAG, acknowledge
from infra.config import CiConfig
from infra.deploy_access import deploy_access_policy_name

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
OIDC_PROVIDER_EXISTS_HINT = (
    "this stack creates the account's GitHub OIDC provider ({url}). An account holds one: "
    "if another stage or project already created it, CloudFormation fails with "
    "'Provider with url {url} already exists'; deploy with -c github_oidc_provider=existing "
    "(or set it in cdk.json) to reuse it. The provider is retained when this stack is "
    "deleted, so other stages keep working."
)


def oidc_subject(repository: str, stage: str) -> str:
    """The token subject GitHub issues to a job running in environment ``stage``."""
    return f"repo:{repository}:environment:{stage}"


class CiAccess(Construct):
    """OIDC provider (or an existing one) and the stage's environment-restricted deploy role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: CiConfig,
        stage: str,
        app_stack_name: str,
        api_key: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._app_stack_name = app_stack_name
        subject = oidc_subject(config.github_repository, stage)
        self.role = iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions deploy role for {subject}",
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                self._provider_arn(config.github_oidc_provider),
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": subject,
                    }
                },
            ),
        )
        self._tagged = {"StringEquals": {f"aws:ResourceTag/{STAGE_TAG}": stage}}
        # The smoke test's routes and the data/ listing, written by the system stack.
        self.role.add_managed_policy(
            iam.ManagedPolicy.from_managed_policy_name(
                self, "StageAccess", deploy_access_policy_name(stage)
            )
        )
        self._allow_deploy(cdk_qualifier=config.cdk_qualifier)
        self._allow_training()
        if api_key:
            self._add(
                "ReadSmokeTestApiKey",
                ["apigateway:GET"],
                [f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/apikeys/*"],
                self._tagged,
            )
        self._acknowledge(api_key=api_key)

    def _allow_deploy(self, *, cdk_qualifier: str) -> None:
        """cdk deploy, the image push, the stack's outputs and events."""
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        self._add(
            "AssumeCdkBootstrapRoles",
            ["sts:AssumeRole"],
            [
                f"arn:{partition}:iam::{account}:role/"
                f"cdk-{cdk_qualifier}-{name}-role-{account}-{region}"
                for name in BOOTSTRAP_ROLES
            ],
        )
        self._add("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"])
        self._add(
            "PushTrainingImage",
            list(ECR_PUSH_ACTIONS),
            [f"arn:{partition}:ecr:{region}:{account}:repository/*"],
            self._tagged,
        )
        # Pseudo-parameters, not format_arn: the ARN (and so the cdk-nag finding
        # acknowledged below) must read the same whether or not an env is pinned.
        self._add(
            "ReadStackOutputsAndEvents",
            ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents"],
            [f"arn:{partition}:cloudformation:{region}:{account}:stack/{self._app_stack_name}/*"],
        )

    def _allow_training(self) -> None:
        """Submit with the stage's queue and definition, watch, stop (the data/ listing is
        in the system stack's policy)."""
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        # Batch evaluates each resource type's tags separately; "*:*" requires a revision
        # in the submitted definition, without which its tags would not be evaluated.
        self._add(
            "SubmitToStageQueue",
            ["batch:SubmitJob"],
            [f"arn:{partition}:batch:{region}:{account}:job-queue/*"],
            self._tagged,
        )
        self._add(
            "SubmitStageJobDefinition",
            ["batch:SubmitJob"],
            [f"arn:{partition}:batch:{region}:{account}:job-definition/*:*"],
            self._tagged,
        )
        self._add("WatchTrainingJobs", ["batch:DescribeJobs"], ["*"])
        # Job ids are generated at submission, so no narrower ARN exists up front.
        self._add(
            "TerminateTimedOutTrainingJobs",
            ["batch:TerminateJob"],
            [f"arn:{partition}:batch:{region}:{account}:job/*"],
        )

    def _provider_arn(self, provider: str) -> str:
        if provider == "existing":
            return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:oidc-provider/{GITHUB_OIDC_HOST}"
        if provider != "create":
            return provider
        created = iam.OidcProviderNative(
            self, "GitHubOidc", url=GITHUB_OIDC_URL, client_ids=["sts.amazonaws.com"]
        )
        # Other stages and projects in the account trust the same provider.
        created.apply_removal_policy(RemovalPolicy.RETAIN)
        Annotations.of(created).add_info(OIDC_PROVIDER_EXISTS_HINT.format(url=GITHUB_OIDC_URL))
        return created.oidc_provider_arn

    def _add(
        self,
        sid: str,
        actions: list[str],
        resources: list[str],
        conditions: Mapping[str, object] | None = None,
    ) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=actions,
                resources=resources,
                conditions=dict(conditions) if conditions else None,
            )
        )

    def _acknowledge(self, *, api_key: bool) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        prefix = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:"
        findings = {
            "*]": "ecr:GetAuthorizationToken and batch:DescribeJobs support no resource-level "
            "permissions; both are read-only or token-only.",
            "ecr:<AWS::Region>:<AWS::AccountId>:repository/*]": "Image pushes are limited "
            f"to repositories tagged {STAGE_TAG}=<this stage> (aws:ResourceTag condition); "
            "the repository's generated name is not known to this stack.",
            "batch:<AWS::Region>:<AWS::AccountId>:job-queue/*]": "SubmitJob is limited to "
            f"job queues tagged {STAGE_TAG}=<this stage> (aws:ResourceTag condition).",
            "batch:<AWS::Region>:<AWS::AccountId>:job-definition/*:*]": "SubmitJob is limited "
            f"to job definitions tagged {STAGE_TAG}=<this stage>; every deploy registers a "
            "new revision, so the ARN cannot be fixed.",
            "batch:<AWS::Region>:<AWS::AccountId>:job/*]": "batch:TerminateJob only: a job's "
            "id is generated when the workflow submits it, and the workflow stops only the "
            "job it started when that job times out.",
            "cloudformation:<AWS::Region>:<AWS::AccountId>:stack/"
            f"{self._app_stack_name}/*]": "A stack ARN ends in a generated id; "
            "DescribeStacks/DescribeStackEvents are limited to the mlsys stack by name.",
        }
        if api_key:
            findings["apigateway:<AWS::Region>::/apikeys/*]"] = (
                f"Reading a key is limited to API keys tagged {STAGE_TAG}=<this stage> "
                "(aws:ResourceTag condition): the smoke test needs the stage's key value."
            )
        for finding, reason in findings.items():
            rule = "AwsSolutions-IAM5[Resource::*]" if finding == "*]" else prefix + finding
            acknowledge(policy, rule, reason)
