"""LocalStack plugins for ``make deploy-localstack`` on a host without downloads.

``dynamodb_moto``
    DynamoDB served by moto's backend, which LocalStack ships (its own provider runs
    DynamoDB Local, a Java program fetched on first use). ``PROVIDER_OVERRIDE_DYNAMODB=moto``.
``UnavailableRuntimeExecutorPlugin``
    A Lambda runtime executor that lets CloudFormation create functions (code, versions,
    aliases, permissions are LocalStack's own) and refuses to run them: the runtime images
    and the runtime-init binary LocalStack runs functions with cannot be downloaded here.
    ``LAMBDA_RUNTIME_EXECUTOR=unavailable``. `make aws-local-test` runs the functions instead.
``MOCKED``
    CloudFormation resource types whose service the community edition does not have (Batch,
    CodeDeploy, Application Auto Scaling) or does not model (launch templates, dashboards):
    "created" as a record with an ARN-shaped identifier and nothing behind it, so that the
    policies and rules naming them deploy. Without these, LocalStack would store the
    identifier ``unknown``, which IAM then refuses in a policy. The deploy report lists
    them as mocked.

Runs inside the LocalStack virtualenv only (scripts/deploy_localstack.sh installs it).
"""

from __future__ import annotations

import hashlib
from abc import ABC
from collections.abc import Callable
from typing import Any

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)
from localstack.services.plugins import Service, aws_provider

NOT_HERE = (
    "Lambda functions cannot run on this LocalStack host (no runtime image or runtime-init "
    "binary can be downloaded); `make aws-local-test` runs them in SAM's emulator"
)


class MotoDynamoDBProvider(DynamodbApi, ABC):
    """No operation of its own: the dispatcher sends each one to moto."""

    def accept_state_visitor(self, visitor: Any) -> None:
        from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

        visitor.visit(dynamodb_backends)


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    from localstack.services.moto import MotoFallbackDispatcher  # noqa: PLC0415

    return Service.for_provider(
        MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )


class UnavailableRuntimeExecutor(RuntimeExecutor):
    """Deploys functions, refuses to run them (see the module docstring)."""

    def start(self, env_vars: dict[str, str]) -> None:
        raise LambdaRuntimeException(NOT_HERE)

    def stop(self) -> None:
        return None

    def get_address(self) -> str:
        raise LambdaRuntimeException(NOT_HERE)

    def get_endpoint_from_executor(self) -> str:
        raise LambdaRuntimeException(NOT_HERE)

    def get_runtime_endpoint(self) -> str:
        raise LambdaRuntimeException(NOT_HERE)

    def invoke(self, payload: dict[str, str]) -> Any:
        raise LambdaRuntimeException(NOT_HERE)

    def get_logs(self) -> str:
        return NOT_HERE

    @classmethod
    def prepare_version(cls, function_version: Any) -> None:
        return None  # nothing to pull: the function exists, it just cannot run here

    @classmethod
    def cleanup_version(cls, function_version: Any) -> None:
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class UnavailableRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "unavailable"

    def load(self, *args: Any, **kwargs: Any) -> type[RuntimeExecutor]:
        return UnavailableRuntimeExecutor


Identity = Callable[[str, str, str], dict[str, str]]
"""(region, account, name) -> the identifying properties a mocked resource returns."""


def _arn(service: str, kind: str, suffix: str = "") -> Identity:
    def identity(region: str, account: str, name: str) -> dict[str, str]:
        arn = f"arn:aws:{service}:{region}:{account}:{kind}/{name}{suffix}"
        return {"Arn": arn}

    return identity


MOCKED: dict[str, tuple[str, Identity]] = {
    # type: (the property its Ref returns, how to make its identifying properties)
    "AWS::Batch::ComputeEnvironment": (
        "ComputeEnvironmentArn",
        lambda r, a, n: {
            "ComputeEnvironmentArn": _arn("batch", "compute-environment")(r, a, n)["Arn"]
        },
    ),
    "AWS::Batch::JobQueue": (
        "JobQueueArn",
        lambda r, a, n: {"JobQueueArn": _arn("batch", "job-queue")(r, a, n)["Arn"]},
    ),
    "AWS::Batch::JobDefinition": (
        "JobDefinitionArn",
        lambda r, a, n: {"JobDefinitionArn": _arn("batch", "job-definition", ":1")(r, a, n)["Arn"]},
    ),
    "AWS::CodeDeploy::Application": ("ApplicationName", lambda r, a, n: {"ApplicationName": n}),
    "AWS::CodeDeploy::DeploymentGroup": (
        "DeploymentGroupName",
        lambda r, a, n: {"DeploymentGroupName": n},
    ),
    "AWS::EC2::LaunchTemplate": (
        "LaunchTemplateId",
        lambda r, a, n: {
            "LaunchTemplateId": "lt-" + hashlib.sha256(n.encode()).hexdigest()[:17],
            "LatestVersionNumber": "1",
            "DefaultVersionNumber": "1",
        },
    ),
    "AWS::CloudWatch::Dashboard": ("DashboardName", lambda r, a, n: {"DashboardName": n}),
    "AWS::ApplicationAutoScaling::ScalableTarget": ("Id", lambda r, a, n: {"Id": n}),
    "AWS::ApplicationAutoScaling::ScalingPolicy": (
        "Arn",
        _arn("autoscaling", "scalingPolicy"),
    ),
}


def _mock_provider(resource_type: str) -> type[ResourceProvider[Any]]:
    ref, identity = MOCKED[resource_type]

    class MockedResource(ResourceProvider[Any]):
        TYPE = resource_type
        SCHEMA = {"typeName": resource_type, "primaryIdentifier": [f"/properties/{ref}"]}

        def create(self, request: ResourceRequest[Any]) -> ProgressEvent[Any]:
            model = dict(request.desired_state)
            name = f"{request.stack_name}-{request.logical_resource_id}"[:100]
            model.update(identity(request.region_name, request.account_id, name))
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

        def update(self, request: ResourceRequest[Any]) -> ProgressEvent[Any]:
            model = {**(request.previous_state or {}), **request.desired_state}
            previous = request.previous_state or {}
            model.update({k: v for k, v in previous.items() if k in identity("r", "a", "n")})
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

        def delete(self, request: ResourceRequest[Any]) -> ProgressEvent[Any]:
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})

        def read(self, request: ResourceRequest[Any]) -> ProgressEvent[Any]:
            return ProgressEvent(
                status=OperationStatus.SUCCESS, resource_model=request.desired_state
            )

    MockedResource.__name__ = "Mocked" + resource_type.replace("::", "")
    return MockedResource


def _mock_plugin(resource_type: str) -> type[CloudFormationResourceProviderPlugin]:
    class MockPlugin(CloudFormationResourceProviderPlugin):
        name = resource_type

        def __init__(self) -> None:
            self.factory: type[ResourceProvider[Any]] | None = None

        def load(self) -> None:
            self.factory = _mock_provider(resource_type)

    MockPlugin.__name__ = "Mock" + resource_type.replace("::", "") + "Plugin"
    return MockPlugin


BatchComputeEnvironmentMock = _mock_plugin("AWS::Batch::ComputeEnvironment")
BatchJobQueueMock = _mock_plugin("AWS::Batch::JobQueue")
BatchJobDefinitionMock = _mock_plugin("AWS::Batch::JobDefinition")
CodeDeployApplicationMock = _mock_plugin("AWS::CodeDeploy::Application")
CodeDeployDeploymentGroupMock = _mock_plugin("AWS::CodeDeploy::DeploymentGroup")
LaunchTemplateMock = _mock_plugin("AWS::EC2::LaunchTemplate")
DashboardMock = _mock_plugin("AWS::CloudWatch::Dashboard")
ScalableTargetMock = _mock_plugin("AWS::ApplicationAutoScaling::ScalableTarget")
ScalingPolicyMock = _mock_plugin("AWS::ApplicationAutoScaling::ScalingPolicy")
