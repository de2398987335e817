"""CI access: GitHub's OIDC provider and the deploy role GitHub Actions assumes.

The role trusts exactly one repository and branch, and can do what the deploy workflow
does and nothing else: assume the CDK bootstrap roles (``cdk deploy``), push the training
image, submit, watch and (on timeout) terminate a training job, list the bucket's
``data/`` prefix (a first deploy trains on the bundled data set while it is empty), read
the stack outputs, read the API key and call the SigV4 admin routes for the smoke test.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.common import acknowledge
from infra.config import CiConfig
from infra.model_store import DATA_PREFIX

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")


class CiAccess(Construct):
    """OIDC provider (or an existing one) and the branch-restricted deploy role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: CiConfig,
        app_stack_name: str,
        repository: ecr.IRepository,
        job_queue: batch.IJobQueue,
        bucket: s3.IBucket,
        api_key: apigw.IApiKey | None,
        smoke_test_routes: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._app_stack_name = app_stack_name
        self.role = self._deploy_role(config)
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[
                    f"arn:{partition}:iam::{account}:role/"
                    f"cdk-{config.cdk_qualifier}-{name}-role-{account}-{region}"
                    for name in BOOTSTRAP_ROLES
                ],
            )
        )
        repository.grant_push(self.role)
        self._grant_training(job_queue=job_queue, bucket=bucket)
        self._grant_smoke_test(
            app_stack_name=app_stack_name, api_key=api_key, smoke_test_routes=smoke_test_routes
        )
        self._acknowledge()

    def _deploy_role(self, config: CiConfig) -> iam.Role:
        if config.github_oidc_provider_arn:
            provider_arn = config.github_oidc_provider_arn
        else:
            # One provider per account and URL: pass github_oidc_provider_arn if it exists.
            provider = iam.OidcProviderNative(
                self, "GitHubOidc", url=GITHUB_OIDC_URL, client_ids=["sts.amazonaws.com"]
            )
            provider_arn = provider.oidc_provider_arn
        subject = f"repo:{config.github_repository}:ref:refs/heads/{config.github_branch}"
        return iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions deploy role for {subject}",
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": subject,
                    }
                },
            ),
        )

    def _grant_training(self, *, job_queue: batch.IJobQueue, bucket: s3.IBucket) -> None:
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SubmitTrainingJobs",
                actions=["batch:SubmitJob"],
                resources=[
                    job_queue.job_queue_arn,
                    # Every deploy registers a new revision, so its ARN is not stable.
                    f"arn:{partition}:batch:{region}:{account}:job-definition/*",
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WatchTrainingJobs",
                actions=["batch:DescribeJobs"],
                resources=["*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TerminateTimedOutTrainingJobs",
                actions=["batch:TerminateJob"],
                # Job ids are generated at submission, so no narrower ARN exists up front.
                resources=[f"arn:{partition}:batch:{region}:{account}:job/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="FindTrainingData",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{DATA_PREFIX}*"]}},
            )
        )

    def _grant_smoke_test(
        self, *, app_stack_name: str, api_key: apigw.IApiKey | None, smoke_test_routes: list[str]
    ) -> None:
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStackOutputs",
                actions=["cloudformation:DescribeStacks"],
                # Pseudo-parameters, not format_arn: the ARN (and so the cdk-nag finding
                # acknowledged below) must read the same whether or not an env is pinned.
                resources=[
                    f"arn:{partition}:cloudformation:{region}:{account}:stack/{app_stack_name}/*"
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SmokeTestAdminRoutes",
                actions=["execute-api:Invoke"],
                resources=smoke_test_routes,
            )
        )
        if api_key is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadSmokeTestApiKey",
                    actions=["apigateway:GET"],
                    resources=[f"arn:{partition}:apigateway:{region}::/apikeys/{api_key.key_id}"],
                )
            )

    def _acknowledge(self) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and batch:DescribeJobs support no resource-level "
            "permissions; both are read-only or token-only.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:"
            "<AWS::AccountId>:job-definition/*]",
            "Each deploy registers a new job-definition revision; SubmitJob is still limited "
            "to the mlsys job queue, which only runs mlsys images.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:"
            "<AWS::AccountId>:job/*]",
            "batch:TerminateJob only: a job's id is generated when the workflow submits it, "
            "and the workflow stops only the job it started when that job times out.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:"
            f"<AWS::AccountId>:stack/{self._app_stack_name}/*]",
            "A stack ARN ends in a generated id; DescribeStacks (read outputs) is limited to "
            "the mlsys stack by name.",
        )
