"""`make destroy`: what the stacks keep on purpose, and how each kept resource goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import retained
from tests.infra.conftest import ROOT
from tests.infra.templates import of_type

MAKEFILE = (ROOT / "Makefile").read_text()


def test_only_data_and_shared_account_settings_survive_a_destroy(
    main_template: dict[str, Any], ci_template: dict[str, Any]
) -> None:
    kept = {
        **retained.retained_resources(main_template),
        **retained.retained_resources(ci_template),
    }
    assert sorted(kept.values()) == [
        "AWS::ApiGateway::Account",
        "AWS::DynamoDB::Table",
        "AWS::ECR::Repository",
        "AWS::IAM::OIDCProvider",
        "AWS::IAM::Role",
        "AWS::S3::Bucket",
        "AWS::S3::Bucket",
    ]
    # The alarm topic's key only encrypts messages in flight: deleted with the stack.
    (key,) = of_type(main_template, "AWS::KMS::Key").values()
    assert key["DeletionPolicy"] == "Delete"
    assert key["Properties"]["PendingWindowInDays"] == 7
    assert set(kept.values()) <= set(retained.REMOVAL)


def test_the_kept_resources_are_listed_with_the_command_that_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    template = {
        "Resources": {
            "Models": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
            "Scratch": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete"},
        }
    }
    (tmp_path / "mlsys-dev.template.json").write_text(json.dumps(template))
    (tmp_path / "mlsys-dev-ci.template.json").write_text(json.dumps({"Resources": {}}))
    (tmp_path / "mlsys-gone.template.json").write_text(json.dumps(template))  # no such stack
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="mlsys-dev", TemplateBody=json.dumps(template))
        found = retained.record(
            tmp_path, ["mlsys-dev", "mlsys-dev-ci", "mlsys-gone"], cloudformation=cloudformation
        )
    ((entry),) = found
    assert (entry["stack"], entry["logical_id"], entry["type"]) == (
        "mlsys-dev",
        "Models",
        "AWS::S3::Bucket",
    )
    lines = retained.show(found)
    bucket = entry["physical_id"]
    assert f"  AWS::S3::Bucket {bucket} (mlsys-dev)" in lines
    assert any(
        f"Bucket('{bucket}'); b.object_versions.delete(); b.delete()" in line for line in lines
    )
    assert any("API-Gateway-Execution-Logs_" in line for line in lines)
    assert retained.show([])[1] == "  nothing (no stack existed)"


def test_make_destroy_records_before_it_destroys_and_shows_after() -> None:
    recipe = MAKEFILE.split("\ndestroy:", 1)[1].split("\n\n", 1)[0]
    record = recipe.index("retained.py record")
    destroy = recipe.index("destroy --all")
    show = recipe.index("retained.py show")
    assert record < destroy < show
    # cdk asks before deleting a stage, unless asked not to (FORCE=1, no terminal).
    assert 'destroy --all --app "$$out/cdk.out" $(if $(FORCE),--force)' in recipe
