"""The deploy workflow's smoke test against a real `mlsys serve` (no IAM locally)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts import smoke_test

pytestmark = pytest.mark.slow
MLSYS = [sys.executable, "-m", "mlsys"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLSYS_REGISTRY_URI": str(tmp_path / "registry"),
        "MLSYS_LOG_URI": f"sqlite:///{tmp_path / 'log.sqlite3'}",
    }


@contextmanager
def serving(tmp_path: Path) -> Iterator[str]:
    server = subprocess.Popen(
        [*MLSYS, "serve", "--port", "0"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("listening on "):
                yield line.removeprefix("listening on ").strip()
                break
        else:
            pytest.fail(f"mlsys serve exited with {server.wait()}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_smoke_test_passes_against_a_served_champion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(
        [*MLSYS, "train", "--models", "linear"],
        env=_env(tmp_path),
        check=True,
        capture_output=True,
        timeout=300,
    )
    with serving(tmp_path) as url:
        code = smoke_test.main(["--api-url", url, "--unsigned", "--log-wait-seconds", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok POST /stream" in out
    assert "including request" in out  # the /stream prediction reached GET /log


def test_smoke_test_fails_in_one_line_when_there_is_no_champion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(tmp_path) as url:
        code = smoke_test.main(["--api-url", url, "--unsigned"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith("smoke test failed: ")
    assert "503" in err
