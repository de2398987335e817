"""The quality floor and data checks, through ``mlsys train`` as a user runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from mlsys.registry import ModelRegistry
from tests.training_support import mixed_classification, registry_files, train, write_csv


def diabetes(*, shuffled_seed: int | None = None) -> pd.DataFrame:
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    if shuffled_seed is not None:
        rng = np.random.default_rng(shuffled_seed)
        frame["progression"] = rng.permutation(frame["progression"].to_numpy())
    return frame


def test_a_shuffled_target_is_refused_into_an_empty_registry_and_over_a_champion(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    noise = str(write_csv(diabetes(shuffled_seed=1), tmp_path / "noise.csv"))
    code, refused, _ = train(capsys, registry, log, "--data", noise)
    assert code == 0
    assert refused is not None
    assert (refused["promoted"], refused["code"]) == (False, "below_baseline")
    assert refused["reason"].startswith("not better than the trivial baseline: challenger r2 = ")
    assert f"baseline r2 = {refused['baseline_score']:.4f}" in refused["reason"]
    assert abs(refused["baseline_score"]) < 0.05  # the training mean scores about 0 in r2
    assert ModelRegistry.open(str(registry), model_name="default").champion() is None

    real = str(write_csv(diabetes(), tmp_path / "real.csv"))
    code, promoted, _ = train(capsys, registry, log, "--data", real)
    assert promoted is not None
    assert (promoted["promoted"], promoted["code"]) == (True, "no_champion")
    assert promoted["challenger_score"] > 0.3

    for seed in (1, 2, 3):
        noise = str(write_csv(diabetes(shuffled_seed=seed), tmp_path / f"noise{seed}.csv"))
        code, again, _ = train(capsys, registry, log, "--data", noise)
        assert again is not None
        assert again["code"] == "below_baseline", again["reason"]
    champion = ModelRegistry.open(str(registry), model_name="default").require_champion()
    assert champion.version == promoted["version"]
    card = ModelRegistry.open(str(registry), model_name="default").card(again["version"])
    assert card.decision["code"] == "below_baseline"
    assert card.metrics["baseline"]["r2"] == again["baseline_score"]


def test_shuffled_class_labels_are_refused_and_real_labels_promoted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    frame = mixed_classification(rows=400)
    for seed in (0, 3, 4):
        noise = frame.assign(label=np.random.default_rng(seed).permutation(frame["label"]))
        data = str(write_csv(noise, tmp_path / f"noise{seed}.csv"))
        _, result, _ = train(capsys, registry, log, "--data", data)
        assert result is not None
        assert result["code"] == "below_baseline", result["reason"]
    _code, result, _ = train(
        capsys, registry, log, "--data", str(write_csv(frame, tmp_path / "c.csv"))
    )
    assert result is not None
    assert (result["promoted"], result["code"]) == (True, "no_champion")
    assert result["baseline_score"] < result["challenger_score"]


def test_the_floor_is_configurable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    real = str(write_csv(diabetes(), tmp_path / "real.csv"))
    _code, result, _ = train(capsys, registry, log, "--data", real, "--min-baseline-lift", "0.95")
    assert result is not None
    assert result["code"] == "below_baseline"
    assert "--min-baseline-lift 0.95" in result["reason"]


def test_duplicate_column_names_exit_2_with_nothing_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "dup.csv"
    data.write_text("age,bmi,age,y\n1,2,3,4\n" + "".join(f"{i},{i},{i},{i}\n" for i in range(40)))
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    code, result, err = train(capsys, registry, log, "--data", str(data))
    assert (code, result) == (2, None)
    assert err.count("\n") == 1
    assert "duplicate column names ('age')" in err
    assert registry_files(registry) == []
    assert not log.exists()


def test_a_path_as_model_name_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = train(capsys, tmp_path / "registry", tmp_path / "log", "--model-name", "../../x")
    assert code == 2
    assert "invalid model name '../../x'" in err
    assert registry_files(tmp_path / "registry") == []


def test_data_checks_are_warnings_in_the_card_and_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    base = diabetes()
    _, first, _ = train(capsys, registry, log, "--data", str(write_csv(base, tmp_path / "a.csv")))
    assert first is not None
    assert first["data_checks"] == []

    odd = base.assign(
        constant=7,
        sparse=np.where(np.arange(len(base)) % 4 == 0, np.arange(len(base)) * 1.0, np.nan),
        bmi=base["bmi"] + 10.0,  # diabetes features are scaled to ~0.05 std: far out of range
    )
    _code, second, err = train(
        capsys,
        registry,
        log,
        "--data",
        str(write_csv(odd, tmp_path / "b.csv")),
        "--target",
        "progression",
    )
    assert second is not None
    found = {(c["check"], c["column"]) for c in second["data_checks"]}
    assert found == {("constant", "constant"), ("mostly_missing", "sparse"), ("drift", "bmi")}
    assert "mlsys train: warning: data check drift: column 'bmi' mean moved" in err
    assert "mlsys train: warning: data check mostly_missing: column 'sparse' is 75% missing" in err
    card = ModelRegistry.open(str(registry), model_name="default").card(second["version"])
    assert {(c["check"], c["column"]) for c in card.data["checks"]} == found
