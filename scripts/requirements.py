"""The requirements files, generated from the pins in ``pyproject.toml``.

``pyproject.toml`` declares every dependency once: the core in ``dependencies`` and each
component's in an extra (``serve``, ``train``, ``aws`` ...). The deployables install
requirements files (the training image, the Lambda bundle for another platform, the
``make`` venv), so those files are written from the declaration and never edited::

    python -m scripts.requirements          # rewrite the files after changing a pin
    python -m scripts.requirements --check  # exit 1 and name the stale files (a test runs it)

An extra may name others (``"mlsys[aws]"``); a file either follows those references (the
training image installs its file alone) or lists only the extra's own pins (the local
server's file is installed beside the Lambda handlers' file, which has the rest).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "mlsys"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)$")


@dataclass(frozen=True, kw_only=True)
class RequirementsFile:
    path: str
    purpose: tuple[str, ...]
    """Comment lines saying who installs the file, and how."""
    core: bool = False
    """Start with the core ``dependencies``."""
    extras: tuple[str, ...] = ()
    follow: bool = False
    """Expand ``mlsys[...]`` references inside the extras (else only their own pins)."""
    includes: tuple[str, ...] = ()
    """``-r`` lines first (paths relative to the repository root)."""


FILES: tuple[RequirementsFile, ...] = (
    RequirementsFile(
        path="requirements.txt",
        purpose=("CDK app dependencies (app.py, infra/).",),
        extras=("cdk",),
    ),
    RequirementsFile(
        path="training_job/requirements.txt",
        purpose=(
            "Training image dependencies, the only file training_job/Dockerfile installs",
            "(also used locally by `mlsys train`).",
        ),
        core=True,
        extras=("train",),
        follow=True,
    ),
    RequirementsFile(
        path="lambda_inference/requirements.txt",
        purpose=(
            "Inference function dependencies, packaged for arm64 Lambda by `make lambda-package`.",
            "boto3 is provided by the Lambda runtime and is not packaged.",
        ),
        core=True,
        extras=("lambda",),
    ),
    RequirementsFile(
        path="lambda_inference/requirements-tracing.txt",
        purpose=(
            "X-Ray SDK for the Powertools Tracer, installed into the Lambda bundle with",
            "--no-deps (its botocore dependency is provided by the Lambda runtime).",
        ),
        extras=("tracing",),
    ),
    RequirementsFile(
        path="lambda_inference/local/requirements.txt",
        purpose=(
            "`mlsys serve` and `mlsys predict` beyond lambda_inference/requirements.txt",
            "(installed beside it by `make` and Dockerfile.serve; not in the Lambda bundle).",
        ),
        extras=("serve",),
    ),
    RequirementsFile(
        path="requirements-dev.txt",
        purpose=("Everything `make test` needs: all components plus the tool chain.",),
        extras=("dev",),
        includes=(
            "requirements.txt",
            "training_job/requirements.txt",
            "lambda_inference/requirements.txt",
            "lambda_inference/local/requirements.txt",
            "lambda_inference/requirements-tracing.txt",
        ),
    ),
)


def split(requirement: str) -> tuple[str, tuple[str, ...], str]:
    """``name[a,b]==1.0; marker`` -> (normalised name, extras, the rest)."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot read requirement {requirement!r}")
    name, extras, rest = match.groups()
    normalised = re.sub(r"[-_.]+", "-", name).lower()
    return normalised, tuple(e.strip() for e in (extras or "").split(",") if e.strip()), rest


def pins(
    project: Mapping[str, object], extras: Sequence[str], *, follow: bool, seen: set[str]
) -> list[str]:
    """The requirements of ``extras`` in declaration order, references expanded or dropped."""
    optional = project.get("optional-dependencies")
    assert isinstance(optional, dict)
    found: list[str] = []
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            name, referenced, _ = split(requirement)
            if name != PROJECT:
                found.append(requirement)
            elif follow:
                found.extend(pins(project, referenced, follow=True, seen=seen))
    return found


def render(spec: RequirementsFile, project: Mapping[str, object]) -> str:
    requirements: list[str] = []
    if spec.core:
        core = project.get("dependencies")
        assert isinstance(core, list)
        requirements.extend(core)
    requirements.extend(pins(project, spec.extras, follow=spec.follow, seen=set()))
    unique: dict[str, str] = {}
    for requirement in requirements:
        unique.setdefault(split(requirement)[0], requirement)
    lines = [
        "# Generated from pyproject.toml by `python -m scripts.requirements`: change pins there.",
        *(f"# {line}" for line in spec.purpose),
        *(f"-r {_relative(include, spec.path)}" for include in spec.includes),
        *unique.values(),
    ]
    return "\n".join(lines) + "\n"


def _relative(target: str, source: str) -> str:
    depth = len(Path(source).parent.parts)
    return str(Path(*([".."] * depth), target)) if depth else target


def load_project(root: Path = ROOT) -> Mapping[str, object]:
    with (root / "pyproject.toml").open("rb") as file:
        project: Mapping[str, object] = tomllib.load(file)["project"]
    return project


def stale_files(root: Path = ROOT) -> list[str]:
    project = load_project(root)
    return [
        spec.path
        for spec in FILES
        if not (root / spec.path).is_file()
        or (root / spec.path).read_text() != render(spec, project)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(f"{path} differs from pyproject.toml: run python -m scripts.requirements")
        return 1 if stale else 0
    project = load_project()
    for spec in FILES:
        if spec.path in stale:
            (ROOT / spec.path).write_text(render(spec, project))
            print(f"wrote {spec.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
