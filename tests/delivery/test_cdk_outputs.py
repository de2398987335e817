"""scripts/cdk_outputs.py: the deploy workflow finds the stack outputs it needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import cdk_outputs
from scripts.cdk_outputs import MissingOutputError, find_outputs

OUTPUTS = {
    "mlsys-dev": {
        "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/dev/",
        "ApiKeyId": "k1",
        "TrainingJobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/q",
        "TrainingJobDefinition": "arn:aws:batch:eu-west-1:123456789012:job-definition/d:3",
        "TrainingImageRepositoryUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo",
        "DashboardName": "mlsys-dev",
        "ModelStoreBucket": "mlsys-dev-modelstore-abc",
    },
    "mlsys-dev-ci": {"DeployRoleArn": "arn:aws:iam::123456789012:role/deploy"},
}


def test_writes_github_env_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    assert cdk_outputs.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "API_URL=https://abc.execute-api.eu-west-1.amazonaws.com/dev/" in lines
    assert "API_KEY_ID=k1" in lines
    assert (
        "TRAINING_IMAGE_REPOSITORY_URI=123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo" in lines
    )
    # The training step's --bucket: a first deploy falls back to the bundled data set.
    assert "MODEL_STORE_BUCKET=mlsys-dev-modelstore-abc" in lines
    assert len(lines) == 6


def test_keys_with_a_cdk_hash_suffix_match_but_longer_names_do_not() -> None:
    found = find_outputs(
        {"s": {"ApiUrlC2B6D8A1": "u", "ApiUrlOther": "x"}},
        required={"API_URL": "ApiUrl"},
        optional={},
    )
    assert found == {"API_URL": "u"}


def test_api_key_is_optional_for_iam_stages() -> None:
    outputs = {"mlsys-dev": {k: v for k, v in OUTPUTS["mlsys-dev"].items() if k != "ApiKeyId"}}
    assert "API_KEY_ID" not in find_outputs(outputs)


def test_missing_output_names_what_is_missing_and_what_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps({"mlsys-dev": {"ApiUrl": "u"}}))
    assert cdk_outputs.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "missing stack output(s) TrainingImageRepositoryUri, TrainingJobQueue" in err
    assert "outputs present: ApiUrl" in err


def test_an_output_in_two_stacks_is_ambiguous() -> None:
    with pytest.raises(MissingOutputError, match="ambiguous"):
        find_outputs({"a": {"ApiUrl": "1"}, "b": {"ApiUrl": "2"}}, optional={})


def test_unreadable_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cdk_outputs.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
