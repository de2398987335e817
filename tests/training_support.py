"""Small data sets and helpers for the training and registry tests."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

import mlsys.cli.train
from mlsys.cli import main as mlsys_main
from tests.inference_support import fake_aws_credentials
from training_job.run import TrainingRun

FAST = ("--time-budget", "30")


def stopped_clock() -> float:
    """A clock that never moves: the model search never runs out of its time budget."""
    return 0.0


@contextlib.contextmanager
def stopped_search_clock() -> Iterator[None]:
    """Every training ``mlsys train`` runs in-process gets :func:`stopped_clock`.

    With the wall clock, a loaded machine (``pytest -n 4``, a benchmark beside it) skips
    candidates or cuts their folds short, so which model wins, and with it the decision a
    test asserts, would depend on the load. Stopped, every candidate is judged on every
    fold: the outcome depends on the data and the seed alone.
    """
    pinned = functools.partial(TrainingRun, clock=stopped_clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlsys.cli.train, "TrainingRun", pinned)
        yield


@contextlib.contextmanager
def mocked_bucket(monkeypatch: pytest.MonkeyPatch, bucket: str) -> Iterator[None]:
    """An S3 bucket under moto, with fake credentials (never real ones)."""
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield


def nonlinear_regression(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """A target a linear model explains badly and a forest well (so a better model exists)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, size=(rows, 3))
    y = np.sin(2 * x[:, 0]) * 3 + np.where(x[:, 1] > 0, 2.0, -2.0) + 0.1 * rng.normal(size=rows)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def mixed_classification(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric and string features with missing values, string labels, odd column names."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=rows)
    city = rng.choice(["Paris", "Lyon", "Nice"], size=rows).astype(object)
    age = rng.normal(40, 10, size=rows).round(1)
    logit = 2 * score + np.where(city == "Paris", 1.5, 0.0)
    label = np.where(logit > 1, "high", np.where(logit > -0.5, "mid", "low"))
    frame = pd.DataFrame(
        {"age in years": age, "home city": city, "score (z)": score, "label": label}
    )
    frame.loc[rng.random(rows) < 0.1, "age in years"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "home city"] = None
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def run_main(argv: list[str]) -> int:
    """``mlsys ...`` in-process; argparse errors exit via SystemExit, return its code."""
    try:
        return mlsys_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def train(
    capsys: pytest.CaptureFixture[str], registry: Path | str, log: Path, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """Run ``mlsys train --json --quiet`` in-process (search clock stopped: the result does
    not depend on the machine's load): exit code, parsed result, stderr (warnings and errors
    only: the progress lines are tested on their own)."""
    argv = [
        "train",
        "--registry",
        str(registry),
        "--log",
        f"sqlite:///{log}",
        "--json",
        "--quiet",
        *FAST,
        *args,
    ]
    with stopped_search_clock():
        code = run_main(argv)
    captured = capsys.readouterr()
    result = json.loads(captured.out) if code == 0 and captured.out.strip() else None
    return code, result, captured.err


def models(
    capsys: pytest.CaptureFixture[str], registry: Path, *args: str, log: Path | None = None
) -> tuple[int, str, str]:
    """Run ``mlsys models ACTION ...`` in-process: exit code, stdout, stderr.

    Promotions and rollbacks are logged to ``log`` (default: ``log.sqlite3`` next to the
    registry, where :func:`train` callers keep theirs), never to the working directory.
    """
    action, *rest = args
    log = registry.parent / "log.sqlite3" if log is None else log
    code = run_main(
        ["models", action, "--registry", str(registry), "--log", f"sqlite:///{log}", *rest]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def registry_files(root: Path) -> list[str]:
    """Every file under a local registry (empty if it was never created)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
