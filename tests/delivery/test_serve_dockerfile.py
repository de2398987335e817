"""Dockerfile.serve: lint-clean, slim, non-root, health-checked, `mlsys serve` on 0.0.0.0
from the wheel's `serve` extra, configured by MLSYS_* variables and extra flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.serve"
LINES = [line.strip() for line in DOCKERFILE.read_text().splitlines()]


def instruction(keyword: str) -> list[str]:
    return [line for line in LINES if line.startswith(keyword + " ")]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_slim_pinned_base_and_only_the_serve_extra_of_the_wheel() -> None:
    (base,) = [line for line in LINES if line.startswith("ARG BASE_IMAGE=")]
    assert base.startswith("ARG BASE_IMAGE=python:3.11")
    assert base.endswith("-slim-bookworm")
    assert instruction("FROM") == ["FROM ${BASE_IMAGE}"]
    (install,) = [line for line in LINES if line.startswith("RUN pip install")]
    assert '"$(ls /tmp/dist/mlsys-*.whl)[${EXTRAS}]"' in install
    assert "ARG EXTRAS=serve,aws" in LINES  # s3:// and dynamodb:// need boto3; no "train"
    assert instruction("COPY") == ["COPY mlsys-*.whl /tmp/dist/"]


def test_it_runs_as_a_non_root_user_on_all_interfaces_with_a_health_check() -> None:
    (user,) = instruction("USER")
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    (entrypoint,) = instruction("ENTRYPOINT")
    command = json.loads(entrypoint.removeprefix("ENTRYPOINT "))
    assert command[:2] == ["mlsys", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert instruction("EXPOSE") == [f"EXPOSE {port}"]
    healthcheck = " ".join(LINES[LINES.index(next(iter(instruction("HEALTHCHECK")))) :][:2])
    assert f"http://127.0.0.1:{port}/health" in healthcheck


def test_registry_and_log_come_from_the_environment() -> None:
    text = DOCKERFILE.read_text()
    for variable in ("MLSYS_REGISTRY_URI=", "MLSYS_LOG_URI=sqlite:///"):
        assert variable in text
    assert instruction("VOLUME") == ['VOLUME ["/var/lib/mlsys"]']
