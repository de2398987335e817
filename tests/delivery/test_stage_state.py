"""scripts/stage_state.py: the deploy workflow's questions about a stage, against moto.

A first deploy is taken only when CloudFormation says the stack does not exist; any other
failure (no access, no network) fails the workflow instead of deploying a new stage over
an existing one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from scripts import stage_state

REGION = "eu-west-1"
TEMPLATE = json.dumps(
    {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/marker", "Type": "String", "Value": "x"},
            }
        },
        "Outputs": {"TrainingImageRepositoryUri": {"Value": "123.dkr.ecr/repo"}},
    }
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def test_an_existing_stack_prints_its_output(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("cloudformation").create_stack(StackName="mlsys-dev", TemplateBody=TEMPLATE)
    code = stage_state.main(["stack-output", "mlsys-dev", "TrainingImageRepositoryUri"])
    assert (code, capsys.readouterr().out) == (0, "123.dkr.ecr/repo\n")


def test_only_a_missing_stack_means_a_first_deploy(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = stage_state.main(["stack-output", "mlsys-prod", "TrainingImageRepositoryUri"])
    assert code == stage_state.STACK_ABSENT == 3
    assert capsys.readouterr().err == "stage_state: stack mlsys-prod does not exist\n"


def test_a_failed_lookup_is_an_error_not_a_first_deploy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens there: the lookup fails the way a denied or unreachable call does.
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code = stage_state.main(["stack-output", "mlsys-dev", "TrainingImageRepositoryUri"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("stage_state: ")
    assert len(err.splitlines()) == 1


def test_a_rolled_back_code_deploy_is_found_in_the_last_operation_only() -> None:
    reason = "CodeDeploy deployment d-ABC failed: alarm PredictDeploymentNewVersionErrors"
    newest_first = [
        {"LogicalResourceId": "mlsys-dev", "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE"},
        {
            "LogicalResourceId": "ServingPredictLive",
            "ResourceType": "AWS::Lambda::Alias",
            "ResourceStatus": "UPDATE_FAILED",
            "ResourceStatusReason": reason,
        },
        {"LogicalResourceId": "mlsys-dev", "ResourceStatus": "UPDATE_IN_PROGRESS"},
    ]
    assert stage_state.rollback_reason("mlsys-dev", newest_first) == reason
    # An older rollback, followed by a successful update, is history.
    later_success = [
        {"LogicalResourceId": "mlsys-dev", "ResourceStatus": "UPDATE_COMPLETE"},
        {"LogicalResourceId": "mlsys-dev", "ResourceStatus": "UPDATE_IN_PROGRESS"},
        *newest_first,
    ]
    assert stage_state.rollback_reason("mlsys-dev", later_success) is None
