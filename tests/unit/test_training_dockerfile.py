"""The training image definition: lint-clean, non-root, runs `python -m mlsys train --emf`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "training_job" / "Dockerfile"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_runs_the_training_module_as_a_non_root_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    base = next(line for line in lines if line.startswith("FROM "))
    if base == "FROM ${BASE_IMAGE}":  # the build argument's default is the real base
        base = next(line for line in lines if line.startswith("ARG BASE_IMAGE="))
    assert ":" in base
    assert "latest" not in base
    assert 'ENTRYPOINT ["python", "-m", "mlsys"]' in lines
    assert 'CMD ["train", "--emf"]' in lines
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"mlsys/", "training_job/", "lambda_inference/"} <= copied  # predict needs the last


def test_build_context_keeps_only_what_the_image_copies() -> None:
    rules = [
        r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")
    ]
    assert rules[0] == "*"
    assert "!mlsys/" in rules
    assert "!training_job/" in rules
    assert "!lambda_inference/" in rules
