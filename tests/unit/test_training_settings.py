"""Training defaults come from MLSYS_* variables through mlsys.settings only."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from mlsys.cli.train import add_arguments, config_from
from mlsys.errors import ConfigError
from mlsys.settings import load_settings
from tests.training_support import run_main


def test_defaults_without_environment() -> None:
    settings = load_settings({}).training()
    assert settings.data is None
    assert settings.task == "auto"
    assert settings.min_improvement == 0.0
    assert settings.confidence is None
    assert settings.allow_schema_change is False
    assert settings.time_budget_seconds == 120.0
    assert settings.max_fit_rows is None  # every training row


def test_training_variables_are_parsed() -> None:
    loaded = load_settings(
        {
            "MLSYS_DATA": "s3://bucket/data/",
            "MLSYS_TARGET": "price",
            "MLSYS_TASK": "regression",
            "MLSYS_METRIC": "rmse",
            "MLSYS_MIN_IMPROVEMENT": "0.01",
            "MLSYS_CONFIDENCE": "0.95",
            "MLSYS_SEED": "7",
            "MLSYS_ALLOW_SCHEMA_CHANGE": "true",
            "MLSYS_TIME_BUDGET_SECONDS": "60",
            "MLSYS_MAX_FIT_ROWS": "500000",
        }
    )
    assert loaded.extra == {}
    settings = loaded.training()
    assert settings.data == "s3://bucket/data/"
    assert settings.target == "price"
    assert settings.task == "regression"
    assert settings.metric == "rmse"
    assert settings.min_improvement == 0.01
    assert settings.confidence == 0.95
    assert settings.seed == 7
    assert settings.allow_schema_change is True
    assert settings.time_budget_seconds == 60.0
    assert settings.max_fit_rows == 500_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLSYS_CONFIDENCE", "1.5"),
        ("MLSYS_CONFIDENCE", "high"),
        ("MLSYS_ALLOW_SCHEMA_CHANGE", "maybe"),
        ("MLSYS_TASK", "clustering"),
        ("MLSYS_MIN_IMPROVEMENT", "-1"),
        ("MLSYS_TIME_BUDGET_SECONDS", "0"),
        ("MLSYS_MAX_FIT_ROWS", "0"),
        ("MLSYS_MAX_FIT_ROWS", "lots"),
    ],
)
def test_invalid_training_variables_are_config_errors_when_training(name: str, value: str) -> None:
    settings = load_settings({name: value})  # other commands are unaffected ...
    with pytest.raises(ConfigError, match=name):
        settings.training()  # ... training refuses it


def test_a_bad_training_variable_fails_train_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYS_TASK", "foo")
    registry = tmp_path / "registry"
    assert run_main(["models", "list", "--registry", str(registry)]) == 0
    assert capsys.readouterr().out == "no versions yet (train one: mlsys train)\n"
    code = run_main(["train", "--registry", str(registry), "--log", f"sqlite:///{tmp_path}/l"])
    assert code == 2
    assert capsys.readouterr().err == (
        "mlsys train: error: MLSYS_TASK must be one of auto, regression, classification, "
        "got 'foo'\n"
    )
    assert not registry.exists()


def test_unknown_mlsys_variables_get_a_one_line_warning_with_a_suggestion(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYS_TAKS", "classification")
    monkeypatch.setenv("MLSYS_ZZZ", "1")
    assert run_main(["models", "list", "--registry", str(tmp_path / "registry")]) == 0
    assert capsys.readouterr().err == (
        "mlsys: warning: unknown environment variable MLSYS_TAKS (did you mean MLSYS_TASK?)\n"
        "mlsys: warning: unknown environment variable MLSYS_ZZZ\n"
    )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_environment_defaults() -> None:
    settings = load_settings(
        {"MLSYS_MIN_IMPROVEMENT": "0.05", "MLSYS_SEED": "3", "MLSYS_ALLOW_SCHEMA_CHANGE": "1"}
    )
    from_env = config_from(parse([]), settings)
    assert from_env.min_improvement == 0.05
    assert from_env.seed == 3
    assert from_env.allow_schema_change is True
    from_flags = config_from(
        parse(["--min-improvement", "0", "--seed", "9", "--models", "linear"]), settings
    )
    assert from_flags.min_improvement == 0.0
    assert from_flags.seed == 9
    assert from_flags.candidates == ("linear",)


def test_flags_not_given_keep_every_environment_value() -> None:
    settings = load_settings(
        {"MLSYS_TARGET": "price", "MLSYS_CONFIDENCE": "0.9", "MLSYS_GIT_COMMIT": "abc123"}
    )
    merged = config_from(parse(["--seed", "4"]), settings)
    assert merged == replace(settings.training(), seed=4)
    assert merged.target == "price"
    assert merged.confidence == 0.9
    assert merged.git_commit == "abc123"
    assert merged.candidates is None  # every candidate model
