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


def test_no_bundled_module_imports_local_code_at_import_time() -> None:
    offenders = []
    for path in [*BUNDLE.glob("lambda_inference/*.py"), *BUNDLE.glob("mlsys/**/*.py")]:
        for node in ast.parse(path.read_text()).body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(BUNDLE)}: {name}"
                for name in names
                if name.startswith(("lambda_inference.local", "gunicorn"))
            ]
    assert offenders == []
