"""``mlsys train --rollout``: a better challenger starts a rollout instead of taking over."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsys.registry import ModelRegistry
from tests.training_support import nonlinear_regression, train, write_csv


def test_a_better_challenger_starts_a_canary_and_the_champion_stays(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(rows=300), tmp_path / "d.csv"))
    # A first champion is always direct, whatever --rollout says.
    _, first, _ = train(
        capsys, registry, log, "--data", data, "--models", "linear", "--rollout", "canary"
    )
    assert first is not None
    assert (first["promoted"], first["rollout"]) == (True, None)

    monkeypatch.setenv("MLSYS_ROLLOUT", "canary")  # the Batch job's way of saying it
    _, second, _ = train(
        capsys,
        registry,
        log,
        "--data",
        data,
        "--models",
        "random_forest",
        "--canary-fraction",
        "0.3",
    )
    assert second is not None
    assert (second["promoted"], second["code"]) == (False, "rollout_started")
    assert second["reason"].startswith("canary rollout started: better: ")
    assert second["rollout"]["mode"] == "canary"
    assert second["rollout"]["fraction"] == 0.3
    assert second["rollout"]["candidate"] == second["version"]
    pointer = ModelRegistry.open(str(registry), model_name="default").require_champion()
    assert pointer.version == first["version"]
    assert pointer.rollout is not None
    assert pointer.rollout.candidate == second["version"]


def test_an_unknown_rollout_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYS_ROLLOUT", "blue-green")
    code, result, err = train(capsys, tmp_path / "registry", tmp_path / "log.sqlite3")
    assert (code, result) == (2, None)
    assert "MLSYS_ROLLOUT must be one of direct, canary, shadow, got 'blue-green'" in err
