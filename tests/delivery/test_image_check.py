"""`make image-check` and `make serve-image-check`: opt-in (never part of `make test` or CI),
and they check what they say: the real Dockerfiles on a locally made base, one training run
without network, and the serving image answering for a model trained by the checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
BASE_SCRIPT = (ROOT / "scripts" / "local_base_image.sh").read_text()
SCRIPT = (ROOT / "scripts" / "image_check.sh").read_text()
SERVE_SCRIPT = (ROOT / "scripts" / "serve_image_check.sh").read_text()


def prerequisites(target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}:([^\n]*)$", MAKEFILE, flags=re.MULTILINE)
    assert match is not None, target
    return match.group(1).split()


def reachable_from(start: str) -> set[str]:
    reachable: set[str] = set()
    pending = [start]
    while pending:
        target = pending.pop()
        if target in reachable:
            continue
        reachable.add(target)
        if re.search(rf"^{re.escape(target)}:", MAKEFILE, flags=re.MULTILINE):
            pending.extend(prerequisites(target))
    return reachable


def test_image_checks_are_opt_in() -> None:
    assert "scripts/image_check.sh" in MAKEFILE
    assert "scripts/serve_image_check.sh" in MAKEFILE
    reachable = reachable_from("test")
    assert not {"image-check", "serve-image-check"} & reachable
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        assert "image-check" not in path.read_text(), path.name
    if (ROOT / ".ci" / "run").exists():
        assert "image-check" not in (ROOT / ".ci" / "run").read_text()


def test_the_real_dockerfile_is_built_on_a_local_base_and_trains_offline() -> None:
    dockerfile = (ROOT / "training_job" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11[\w.-]*$", dockerfile, flags=re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert "debootstrap --variant=minbase" in BASE_SCRIPT
    assert "| docker import -" in BASE_SCRIPT
    assert 'ensure_local_base_image "$base_image"' in SCRIPT
    assert '--build-arg BASE_IMAGE="$base_image"' in SCRIPT
    assert "-f training_job/Dockerfile" in SCRIPT
    (run,) = [line for line in SCRIPT.splitlines() if "docker run" in line]
    assert "--network none" in run


def test_the_serving_image_is_built_from_the_wheel_and_queried_over_its_published_port() -> None:
    assert "dist" in prerequisites("serve-image-check")
    assert 'ensure_local_base_image "$base_image"' in SERVE_SCRIPT
    (build,) = [line for line in SERVE_SCRIPT.splitlines() if line.startswith("docker build")]
    assert '--build-arg BASE_IMAGE="$base_image"' in build
    assert '-f Dockerfile.serve -t "$image" dist/' in SERVE_SCRIPT  # the wheel is the context
    (run,) = [line for line in SERVE_SCRIPT.splitlines() if "docker run" in line]
    assert "-p 127.0.0.1::8080" in run  # published on loopback only
    assert "--allowed-host mlsys.internal" in SERVE_SCRIPT  # browser safety set by a flag
    assert 'host="rebound.example:8080"' in SERVE_SCRIPT
    for checked in ("/health", "/stream", "State.Health.Status", "mlsys train"):
        assert checked in SERVE_SCRIPT
