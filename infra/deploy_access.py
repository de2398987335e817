"""What a stage's deploy role may do to this stage's API and bucket, owned by the system stack.

The CI stack (``mlsys-<stage>-ci``) creates the role GitHub Actions assumes; the smoke test
and the training-job runner also need this stage's REST API id and bucket name, which only
the system stack knows. Neither a CloudFormation export (it would lock the system stack)
nor a value resolved at deploy time (see below) carries them across: the system stack
writes the statements itself, into a customer managed policy with a name derived from
the stage (:func:`deploy_access_policy_name`), and the CI stack attaches that policy to
its role by name. When the system stack replaces its API, the policy follows at once.

Why not an SSM parameter: an ``AWS::SSM::Parameter::Value<...>`` template parameter is
resolved when the change set is created, with the caller's credentials. ``cdk deploy``
calls CloudFormation as the bootstrap deploy role (``cdk-<qualifier>-deploy-role``), whose
default policy reads only ``/cdk-bootstrap/<qualifier>/version``: the change set fails with
"AccessDenied. User doesn't have permission to call ssm:GetParameters" (aws/aws-cdk#20959,
aws-samples/aws-cross-account-cicd-pipeline#38). The execution policy given to
CloudFormation cannot help, since the execution role is not the caller. So no template of
this app resolves anything but the bootstrap version at deploy time (tests/infra pins it).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.aws_apigateway import RestApi
from constructs import Construct

from infra.model_store import DATA_PREFIX


def deploy_access_policy_name(stage: str) -> str:
    """The managed policy's name: the contract between the two stacks of a stage.

    Starts with ``mlsys-`` like every IAM name the stacks create, which is what the
    scoped CloudFormation execution policy allows.
    """
    return f"mlsys-{stage}-deploy-access"


class DeployAccess(Construct):
    """The managed policy the CI stack's deploy role attaches: SigV4 calls to the smoke
    test's routes of this stage's API, and listing ``data/`` of this stage's bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        api: RestApi,
        bucket: s3.IBucket,
        smoke_test_routes: list[tuple[str, str]],
    ) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            managed_policy_name=deploy_access_policy_name(stage),
            description=f"mlsys ({stage}): what the stage's GitHub deploy role may call",
            statements=[
                iam.PolicyStatement(
                    sid="SmokeTestRoutes",
                    actions=["execute-api:Invoke"],
                    resources=[
                        api.arn_for_execute_api(method, f"/{path}", stage)
                        for method, path in smoke_test_routes
                    ],
                ),
                iam.PolicyStatement(
                    sid="FindTrainingData",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{DATA_PREFIX}*"]}},
                ),
            ],
        )
