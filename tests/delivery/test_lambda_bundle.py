"""The Lambda bundle (`make lambda-package`) carries no local-only code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / ".build" / "lambda"

pytestmark = pytest.mark.skipif(
    not (BUNDLE / ".built").exists(), reason="run `make lambda-package` (make test does)"
)


def test_the_bundle_has_no_local_server_code_or_its_dependencies() -> None:
    assert (BUNDLE / "lambda_inference" / "handler.py").is_file()
    assert not (BUNDLE / "lambda_inference" / "local").exists()
    assert not (BUNDLE / "gunicorn").exists()
    assert not list(BUNDLE.glob("botocore*"))  # provided by the Lambda runtime


def test_the_bundle_has_no_command_line() -> None:
    assert (BUNDLE / "lambda_inference" / "entrypoints.py").is_file()
    assert not (BUNDLE / "mlsys" / "cli").exists()
    assert not (BUNDLE / "mlsys" / "__main__.py").exists()
    assert not (BUNDLE / "lambda_inference" / "scoring.py").exists()  # mlsys predict's


def test_every_project_import_in_the_bundle_resolves_inside_it() -> None:
    """At any depth (a function-level import fails on the first call, not at cold start)."""
    offenders = []
    for path in [*BUNDLE.glob("lambda_inference/**/*.py"), *BUNDLE.glob("mlsys/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            offenders += [
                f"{path.relative_to(BUNDLE)}: {name}"
                for name in names
                if (name.split(".")[0] in PROJECT_PACKAGES and not _bundled(name))
                or name.startswith("gunicorn")
            ]
    assert offenders == []


PROJECT_PACKAGES = ("mlsys", "lambda_inference", "training_job", "infra")


def _bundled(module: str) -> bool:
    path = BUNDLE.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
