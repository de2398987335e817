"""The OpenAPI document is exactly what ``mlsys serve`` accepts and answers.

schemathesis generates valid and invalid requests from ``GET /openapi.json``
and runs every check (status codes, response schemas, content types, negative
data rejected, positive data accepted, 405 with ``Allow`` for undocumented
methods...) against a live server: a fixed seed and a bounded number of
examples keep it deterministic and within seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_support import ServeProcess, publish_regression

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    registry, log_uri = publish_regression(tmp_path_factory.mktemp("openapi"))
    server = ServeProcess(registry, log_uri, "--workers", "2")
    yield server
    assert server.stop() == 0


def test_schemathesis_finds_no_difference_between_the_document_and_the_server(
    served: ServeProcess, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{served.url}/openapi.json",
            "--checks",
            "all",
            "--seed",
            "1",
            "--max-examples",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # its example database stays out of the work tree
        timeout=300,
        check=False,
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary
    assert "failure" not in summary.lower(), summary
