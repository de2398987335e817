"""`make image-check`: opt-in (never part of `make test` or CI), and it checks what it says:
the real Dockerfile on a locally made base, one training run without network."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
SCRIPT = (ROOT / "scripts" / "image_check.sh").read_text()


def prerequisites(target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}:([^\n]*)$", MAKEFILE, flags=re.MULTILINE)
    assert match is not None, target
    return match.group(1).split()


def test_image_check_is_opt_in() -> None:
    assert "scripts/image_check.sh" in MAKEFILE
    reachable: set[str] = set()
    pending = ["test"]
    while pending:
        target = pending.pop()
        if target in reachable:
            continue
        reachable.add(target)
        if re.search(rf"^{re.escape(target)}:", MAKEFILE, flags=re.MULTILINE):
            pending.extend(prerequisites(target))
    assert "image-check" not in reachable
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        assert "image-check" not in path.read_text(), path.name
    if (ROOT / ".ci" / "run").exists():
        assert "image-check" not in (ROOT / ".ci" / "run").read_text()


def test_the_real_dockerfile_is_built_on_a_local_base_and_trains_offline() -> None:
    dockerfile = (ROOT / "training_job" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11[\w.-]*$", dockerfile, flags=re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert "debootstrap" in SCRIPT
    assert "docker import" in SCRIPT
    assert '--build-arg BASE_IMAGE="$base_image"' in SCRIPT
    assert "-f training_job/Dockerfile" in SCRIPT
    (run,) = [line for line in SCRIPT.splitlines() if "docker run" in line]
    assert "--network none" in run
