"""app.py as the CDK CLI runs it: offline, no credentials, clear errors, exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import ROOT, TEST_REPOSITORY


def run_app(context: dict[str, object], tmp_outdir: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and not key.startswith("CDK_")
    }
    # No credentials and no metadata service: synthesis must not need either.
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        # how the CDK CLI passes -c values
        CDK_CONTEXT_JSON=json.dumps({"github_repository": TEST_REPOSITORY, **context}),
        CDK_OUTDIR=tmp_outdir,
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_missing_lambda_bundle_tells_the_user_to_build_it(tmp_path: Path) -> None:
    result = run_app({"lambda_bundle_dir": "/nonexistent/lambda-bundle"}, str(tmp_path))
    assert result.returncode == 2
    assert "run `make lambda-package` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_context_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_app({"predict_auth": "cognito"}, str(tmp_path))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlsys cdk:")]
    assert errors == ["mlsys cdk: context predict_auth must be 'api-key' or 'iam', got 'cognito'"]
    assert "Traceback" not in result.stderr


def test_the_placeholder_repository_stops_synthesis_with_one_line(tmp_path: Path) -> None:
    result = run_app({"github_repository": "owner/repo"}, str(tmp_path))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlsys cdk:")]
    assert errors == [
        "mlsys cdk: context github_repository is the placeholder 'owner/repo': set your "
        'repository in cdk.json ("github_repository": "OWNER/NAME") or pass '
        "-c github_repository=OWNER/NAME"
    ]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.template.json"))
