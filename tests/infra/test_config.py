"""infra.config: cdk.json documents the defaults; bad context fails with the key's name."""

from __future__ import annotations

import json

import pytest

from infra.config import DEFAULTS, ContextError, config_from_context
from tests.infra.conftest import ROOT, TEST_REPOSITORY

REPOSITORY = {"github_repository": TEST_REPOSITORY}


def test_cdk_json_runs_the_app_and_lists_every_default() -> None:
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert cdk_json["app"] == "python3 app.py"
    ours = {key: value for key, value in cdk_json["context"].items() if key in DEFAULTS}
    assert ours == dict(DEFAULTS)
    unknown = [k for k in cdk_json["context"] if k not in DEFAULTS and not k.startswith("@")]
    assert unknown == []


def test_defaults_give_an_environment_agnostic_api_key_stage() -> None:
    config = config_from_context(REPOSITORY)
    assert (config.stage, config.account, config.region) == ("dev", "", "")
    assert config.serving.predict_auth == "api-key"
    assert config.serving.lambda_bundle_dir == ".build/lambda"
    assert config.serving.lambda_timeout_seconds < 29
    assert config.training.instance_types == ("c6i.xlarge", "m6i.xlarge", "c5.xlarge")


def test_defaults_deploy_on_a_fresh_account() -> None:
    # A new account's Lambda quota is often 10, and 100 must stay unreserved: neither
    # reserved nor provisioned concurrency fits until the quota is raised.
    config = config_from_context(REPOSITORY)
    assert config.serving.reserved_concurrency is None
    assert config.serving.provisioned_concurrency_min == 0
    assert config.training.image_tag == ""  # the SSM parameter, never a made-up tag
    assert config.ci.github_oidc_provider == "create"
    assert config.serving.deployment == "LambdaCanary10Percent5Minutes"


def test_provisioned_concurrency_comes_in_combinations_that_a_deploy_cannot_break() -> None:
    def serving(**context: object) -> tuple[int, int, str]:
        config = config_from_context({**REPOSITORY, **context}).serving
        return (
            config.provisioned_concurrency_min,
            config.provisioned_concurrency_max,
            config.deployment,
        )

    # A canary with a fixed pool, an autoscaled pool deployed all at once, or no pool.
    assert serving(provisioned_concurrency_min=3, provisioned_concurrency_max=3) == (
        3,
        3,
        "LambdaCanary10Percent5Minutes",
    )
    autoscaled = {"provisioned_concurrency_min": 2, "predict_deployment": "LambdaAllAtOnce"}
    assert serving(**autoscaled) == (2, 10, "LambdaAllAtOnce")
    assert serving(predict_deployment="LambdaLinear10PercentEvery1Minute")[0] == 0
    with pytest.raises(ContextError, match=r"use predict_deployment=LambdaAllAtOnce, or a "
                       r"fixed pool \(provisioned_concurrency_max=2\)$"):  # fmt: skip
        serving(
            provisioned_concurrency_min=2, predict_deployment="LambdaLinear10PercentEvery1Minute"
        )


def test_command_line_strings_are_converted() -> None:
    # `cdk synth -c key=value` delivers every value as a string.
    config = config_from_context(
        {
            **REPOSITORY,
            "training_max_vcpus": "32",
            "training_spot": "false",
            "training_instance_types": "c7i.large, m7i.large",
            "provisioned_utilization_target": "0.5",
            "@aws-cdk/core:someFeatureFlag": True,
        }
    )
    assert config.training.max_vcpus == 32
    assert config.training.spot is False
    assert config.training.instance_types == ("c7i.large", "m7i.large")
    assert config.serving.provisioned_utilization_target == 0.5


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"log_retention_days": 31}, "log_retention_days must be one of"),
        ({"predict_auth": "cognito"}, "predict_auth must be 'api-key' or 'iam'"),
        ({"lambda_timeout_seconds": 29}, "lambda_timeout_seconds must be between 1 and 28"),
        ({"reserved_concurrency": 5}, "reserved_concurrency (5) must be 0 (none) or >= "),
        (
            {
                "minimal_idle_cost": True,
                "provisioned_concurrency_min": 1,
                "provisioned_concurrency_max": 1,
            },
            "minimal_idle_cost=true needs provisioned_concurrency_min=0",
        ),
        ({"predict_deployment": "Canary50"}, "predict_deployment must be one of"),
        (
            {"provisioned_concurrency_min": 2, "provisioned_concurrency_max": 10},
            "context predict_deployment=LambdaCanary10Percent5Minutes weights the live alias, "
            "and Lambda refuses provisioned-concurrency changes on a weighted alias",
        ),
        ({"log_inputs": "some"}, "log_inputs must be one of full, digest, sampled"),
        ({"log_inputs_sample_rate": 1.5}, "log_inputs_sample_rate must be between 0 and 1"),
        ({"github_oidc_provider": "make"}, "github_oidc_provider='make' does not match"),
        ({"training_spot": "maybe"}, "training_spot must be true or false"),
        ({"training_max_vcpus": "lots"}, "training_max_vcpus must be a number"),
        ({"training_max_vcpus": 2.5}, "training_max_vcpus must be an integer"),
        ({"training_job_vcpus": 32}, "training_job_vcpus must be <= training_max_vcpus"),
        ({"training_schedule": "weekly"}, "training_schedule='weekly' does not match"),
        ({"training_instance_types": []}, "training_instance_types must be a non-empty list"),
        ({"alarm_email": "ops"}, "alarm_email='ops' does not match"),
        ({"github_repository": "no-owner"}, "github_repository='no-owner' does not match"),
        ({"stage": "Prod!"}, "stage='Prod!' does not match"),
        ({"account": "12345"}, "account='12345' does not match"),
        ({"trainig_schedule": "rate(1 day)"}, "unknown context key(s): trainig_schedule"),
    ],
)
def test_bad_context_names_the_key(context: dict[str, object], message: str) -> None:
    with pytest.raises(ContextError) as raised:
        config_from_context({**REPOSITORY, **context})
    assert message in str(raised.value)


@pytest.mark.parametrize("placeholder", [{}, {"github_repository": "Owner/Repo"}])
def test_the_placeholder_repository_is_refused_with_what_to_set(
    placeholder: dict[str, object],
) -> None:
    # The deploy role would trust repo:owner/repo:environment:<stage>: whoever owns that
    # GitHub repository could deploy into the account.
    assert DEFAULTS["github_repository"] == "owner/repo"
    with pytest.raises(ContextError) as raised:
        config_from_context(placeholder)
    message = str(raised.value)
    assert message.startswith("context github_repository is the placeholder 'owner/repo'")
    assert "-c github_repository=OWNER/NAME" in message
    assert "\n" not in message
    assert config_from_context(REPOSITORY).ci.github_repository == TEST_REPOSITORY
