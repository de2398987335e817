"""infra/cloudformation-execution-policy.json: what `cdk bootstrap
--cloudformation-execution-policies` should give CloudFormation instead of
AdministratorAccess. Every resource type the stacks synthesise must be creatable with it,
and IAM stays limited to the stacks' own roles, the GitHub OIDC provider and the AWS
managed policies the stacks attach."""

from __future__ import annotations

import fnmatch
import json

import pytest

from tests.infra.conftest import ROOT, Assembly

POLICY = json.loads((ROOT / "infra" / "cloudformation-execution-policy.json").read_text())
ROLE = "arn:aws:iam::123456789012:role/mlsys-dev-ServingPredictRole-AbC123"

# What CloudFormation calls to create each resource type, and on which resource (for the
# statements scoped by resource). A new type in the templates fails the test below until
# it is added here -- and, if needed, to the policy.
CREATE: dict[str, list[tuple[str, str]]] = {
    "AWS::ApiGateway::Account": [("apigateway:PATCH", "*"), ("iam:PassRole", ROLE)],
    "AWS::ApiGateway::ApiKey": [("apigateway:POST", "*")],
    "AWS::ApiGateway::Deployment": [("apigateway:POST", "*")],
    "AWS::ApiGateway::GatewayResponse": [("apigateway:PUT", "*")],
    "AWS::ApiGateway::Method": [("apigateway:PUT", "*")],
    "AWS::ApiGateway::Model": [("apigateway:POST", "*")],
    "AWS::ApiGateway::RequestValidator": [("apigateway:POST", "*")],
    "AWS::ApiGateway::Resource": [("apigateway:POST", "*")],
    "AWS::ApiGateway::RestApi": [("apigateway:POST", "*")],
    "AWS::ApiGateway::Stage": [("apigateway:POST", "*")],
    "AWS::ApiGateway::UsagePlan": [("apigateway:POST", "*")],
    "AWS::ApiGateway::UsagePlanKey": [("apigateway:POST", "*")],
    "AWS::ApplicationAutoScaling::ScalableTarget": [
        ("application-autoscaling:RegisterScalableTarget", "*"),
        ("lambda:PutProvisionedConcurrencyConfig", "*"),
    ],
    "AWS::ApplicationAutoScaling::ScalingPolicy": [
        ("application-autoscaling:PutScalingPolicy", "*"),
        ("cloudwatch:PutMetricAlarm", "*"),
    ],
    "AWS::Batch::ComputeEnvironment": [
        ("batch:CreateComputeEnvironment", "*"),
        ("iam:PassRole", ROLE),
        ("ec2:DescribeSubnets", "*"),
    ],
    "AWS::Batch::JobDefinition": [("batch:RegisterJobDefinition", "*"), ("iam:PassRole", ROLE)],
    "AWS::Batch::JobQueue": [("batch:CreateJobQueue", "*"), ("batch:TagResource", "*")],
    "AWS::CloudWatch::Alarm": [("cloudwatch:PutMetricAlarm", "*")],
    "AWS::CloudWatch::Dashboard": [("cloudwatch:PutDashboard", "*")],
    "AWS::CodeDeploy::Application": [("codedeploy:CreateApplication", "*")],
    "AWS::CodeDeploy::DeploymentGroup": [
        ("codedeploy:CreateDeploymentGroup", "*"),
        ("iam:PassRole", ROLE),
    ],
    "AWS::DynamoDB::Table": [("dynamodb:CreateTable", "*")],
    "AWS::EC2::FlowLog": [("ec2:CreateFlowLogs", "*"), ("iam:PassRole", ROLE)],
    "AWS::EC2::InternetGateway": [("ec2:CreateInternetGateway", "*")],
    "AWS::EC2::LaunchTemplate": [("ec2:CreateLaunchTemplate", "*")],
    "AWS::EC2::Route": [("ec2:CreateRoute", "*")],
    "AWS::EC2::RouteTable": [("ec2:CreateRouteTable", "*")],
    "AWS::EC2::SecurityGroup": [("ec2:CreateSecurityGroup", "*")],
    "AWS::EC2::Subnet": [("ec2:CreateSubnet", "*")],
    "AWS::EC2::SubnetRouteTableAssociation": [("ec2:AssociateRouteTable", "*")],
    "AWS::EC2::VPC": [("ec2:CreateVpc", "*")],
    "AWS::EC2::VPCEndpoint": [("ec2:CreateVpcEndpoint", "*")],
    "AWS::EC2::VPCGatewayAttachment": [("ec2:AttachInternetGateway", "*")],
    "AWS::ECR::Repository": [("ecr:CreateRepository", "*")],
    "AWS::Events::Rule": [("events:PutRule", "*"), ("events:PutTargets", "*")],
    "AWS::IAM::InstanceProfile": [
        (
            "iam:CreateInstanceProfile",
            "arn:aws:iam::123456789012:instance-profile/mlsys-dev-TrainingInstanceProfile-1",
        ),
        ("iam:AddRoleToInstanceProfile", ROLE),
    ],
    "AWS::IAM::OIDCProvider": [
        (
            "iam:CreateOpenIDConnectProvider",
            "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
        )
    ],
    "AWS::IAM::ManagedPolicy": [
        ("iam:CreatePolicy", "arn:aws:iam::123456789012:policy/mlsys-dev-deploy-access"),
        ("iam:CreatePolicyVersion", "arn:aws:iam::123456789012:policy/mlsys-dev-deploy-access"),
    ],
    "AWS::IAM::Policy": [("iam:PutRolePolicy", ROLE)],
    "AWS::IAM::Role": [("iam:CreateRole", ROLE), ("iam:TagRole", ROLE)],
    "AWS::KMS::Key": [("kms:CreateKey", "*"), ("kms:PutKeyPolicy", "*")],
    "AWS::Lambda::Alias": [("lambda:CreateAlias", "*")],
    "AWS::Lambda::EventInvokeConfig": [("lambda:PutFunctionEventInvokeConfig", "*")],
    "AWS::Lambda::Function": [("lambda:CreateFunction", "*"), ("iam:PassRole", ROLE)],
    "AWS::Lambda::Permission": [("lambda:AddPermission", "*")],
    "AWS::Lambda::Version": [("lambda:PublishVersion", "*")],
    "AWS::Logs::LogGroup": [("logs:CreateLogGroup", "*")],
    "AWS::Logs::SubscriptionFilter": [("logs:PutSubscriptionFilter", "*")],
    "AWS::S3::Bucket": [("s3:CreateBucket", "*")],
    "AWS::S3::BucketPolicy": [("s3:PutBucketPolicy", "*")],
    "AWS::SNS::Subscription": [("sns:Subscribe", "*")],
    "AWS::SNS::Topic": [("sns:CreateTopic", "*")],
    "AWS::SNS::TopicPolicy": [("sns:SetTopicAttributes", "*")],
    "AWS::SQS::Queue": [("sqs:CreateQueue", "*")],
    "AWS::SQS::QueuePolicy": [("sqs:SetQueueAttributes", "*")],
    "AWS::SSM::Parameter": [
        ("ssm:PutParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/mlsys/dev/api-id")
    ],
}


def allowed(action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """Whether an Allow statement of the policy matches (no Deny statements exist)."""
    for statement in POLICY["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        resources = statement["Resource"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        conditions = statement.get("Condition", {})
        if all(
            (context or {}).get(key) is not None
            and any(fnmatch.fnmatchcase(context[key], v) for v in values)
            for test in conditions.values()
            for key, values in test.items()
        ):
            return True
    return False


def resource_types(*assemblies: Assembly) -> set[str]:
    return {
        resource["Type"]
        for synthesized in assemblies
        for template in synthesized.templates.values()
        for resource in template["Resources"].values()
    }


def test_every_resource_type_of_every_configuration_can_be_created(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    types = resource_types(assembly, variant, minimal)
    unknown = sorted(types - set(CREATE))
    assert not unknown, f"add these resource types to CREATE (and the policy): {unknown}"
    refused = [
        (resource_type, action, resource)
        for resource_type in sorted(types)
        for action, resource in CREATE[resource_type]
        if not allowed(action, resource)
    ]
    assert refused == []


def test_the_managed_policies_the_stacks_attach_are_allowed_and_no_others(
    assembly: Assembly,
) -> None:
    attached = {
        json.dumps(arn)
        for template in assembly.templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for arn in resource["Properties"].get("ManagedPolicyArns", [])
    }
    aws_managed = {a.split(":iam::aws:")[1].strip('"]}') for a in attached if ":iam::aws:" in a}
    (own,) = [a for a in attached if ":iam::aws:" not in a]  # the stage's deploy access
    assert aws_managed
    for name in aws_managed:
        arn = f"arn:aws:iam::aws:{name}"
        assert allowed("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": arn}), arn
    name = own.strip('"]}').split(":policy/")[1]
    arn = f"arn:aws:iam::123456789012:policy/{name}"
    assert allowed("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": arn}), arn
    for other in ("arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::1:policy/admin"):
        assert not allowed("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": other})


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("iam:CreateRole", "arn:aws:iam::123456789012:role/someone-elses-role"),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole"),
        ("iam:CreateUser", "arn:aws:iam::123456789012:user/mlsys-dev-user"),
        ("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/admin"),
        ("iam:CreatePolicyVersion", "arn:aws:iam::123456789012:policy/someone-elses-policy"),
        ("iam:AttachUserPolicy", "arn:aws:iam::123456789012:user/admin"),
        ("organizations:LeaveOrganization", "*"),
        ("ssm:PutParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/other/app"),
        ("rds:CreateDBInstance", "*"),
    ],
)
def test_iam_and_other_services_stay_out_of_reach(action: str, resource: str) -> None:
    assert not allowed(action, resource)


def test_readme_shows_how_to_bootstrap_with_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "--cloudformation-execution-policies" in readme
    assert "infra/cloudformation-execution-policy.json" in readme
