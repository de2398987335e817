"""The settings declaration (mlsys/knobs.py) and everything derived from it."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

import pytest

from infra.config import CONTEXT_HELP, DEFAULTS, ContextError, config_from_context
from mlsys.cli import train
from mlsys.errors import ConfigError
from mlsys.knobs import BY_CONTEXT, KNOBS, Knob, KnobValueError, knobs_of
from mlsys.rollout.policy import RolloutPolicy
from mlsys.settings import KNOWN_VARIABLES, Settings, TrainingSettings, load_settings
from scripts import configuration_reference


def knob(**overrides: Any) -> Knob:
    return Knob(
        **{
            "field": "x",
            "env": "MLSYS_X",
            "group": "runtime",
            "kind": "float",
            "default": 1.0,
            "help": "x",
            **overrides,
        }
    )


def test_each_field_variable_flag_and_context_key_is_declared_once() -> None:
    for attribute in ("env", "flag", "context"):
        values = [getattr(k, attribute) for k in KNOBS if getattr(k, attribute)]
        assert len(values) == len(set(values)), attribute
    assert len({(k.group, k.field) for k in KNOBS}) == len(KNOBS)
    assert {k.env for k in KNOBS} == KNOWN_VARIABLES


def test_the_settings_classes_take_their_defaults_from_the_declaration() -> None:
    defaults = {
        "runtime": {f.name: f.default for f in fields(Settings)},
        "training": {f.name: f.default for f in fields(TrainingSettings)},
        "rollout": {f.name: f.default for f in fields(RolloutPolicy)},
    }
    for declared in KNOBS:
        assert defaults[declared.group][declared.field] == declared.default, declared.field
    assert load_settings({}) == Settings()


def test_a_bad_value_names_its_variable_flag_or_context_key() -> None:
    with pytest.raises(ConfigError, match=r"^MLSYS_LOG_SHARDS must be >= 1, got 0$"):
        load_settings({"MLSYS_LOG_SHARDS": "0"})
    with pytest.raises(
        ConfigError, match=r"^MLSYS_CANARY_FRACTION must be between 0 and 1 \(exclusive\), got 1$"
    ):
        load_settings({"MLSYS_CANARY_FRACTION": "1"}).training()
    with pytest.raises(ConfigError, match="MLSYS_ROLLOUT_MAX_P99_RATIO must be >= 1"):
        load_settings({"MLSYS_ROLLOUT_MAX_P99_RATIO": "0.5"}).rollout_margins()
    parser = argparse.ArgumentParser(exit_on_error=False)
    train.add_arguments(parser)
    with pytest.raises(
        argparse.ArgumentError, match=r"must be between 0 and 1 \(exclusive\), got 1\.5"
    ):
        parser.parse_args(["--confidence", "1.5"])
    with pytest.raises(ContextError, match=r"^context training_rollout must be one of"):
        config_from_context({"training_rollout": "blue-green"})


@pytest.mark.parametrize(
    ("declared", "raw", "expected"),
    [
        (knob(kind="int", minimum=1), "3", 3),
        (knob(kind="int"), 4.0, 4),
        (knob(kind="float", minimum=0.0, maximum=1.0), "1", 1.0),
        (knob(kind="bool"), "yes", True),
        (knob(kind="bool"), False, False),
        (knob(kind="choice", choices=("a", "b")), "b", "b"),
    ],
)
def test_values_parse_to_the_declared_type(declared: Knob, raw: Any, expected: Any) -> None:
    assert declared.parse(raw) == expected
    assert type(declared.parse(raw)) is type(expected)


@pytest.mark.parametrize(
    ("declared", "raw", "message"),
    [
        (knob(kind="int"), "2.5", "must be an integer, got '2.5'"),
        (knob(kind="float"), "nan", "must be a finite number"),
        (knob(kind="float"), True, "must be a number"),
        (knob(kind="float", minimum=0.0, maximum=1.0, exclusive=True), "0", "between 0 and 1"),
        (knob(kind="bool"), "maybe", "must be true or false"),
        (knob(kind="choice", choices=("a",)), "c", "must be one of a, got 'c'"),
    ],
)
def test_values_outside_the_declaration_are_refused(declared: Knob, raw: Any, message: str) -> None:
    with pytest.raises(KnobValueError, match=message):
        declared.parse(raw)


def test_every_default_survives_the_trip_through_the_environment() -> None:
    for declared in KNOBS:
        for value in (declared.default, declared.deploy_default):
            if value is None or (declared.zero_unsets and value == 0):
                continue
            assert declared.parse(declared.to_env(value)) == value, declared.field


def test_every_training_flag_comes_from_the_declaration_with_its_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    actions = {action.dest: action for action in parser._actions}
    for declared in knobs_of("training"):
        if declared.flag is None:
            continue
        action = actions[train.dest_of(declared)]
        assert action.default is None  # "not given": the variable or the default applies
        assert declared.env in str(action.help)
    args = parser.parse_args(["--time-budget", "5", "--rollout", "canary"])
    config = train.config_from(args, Settings())
    assert (config.time_budget_seconds, config.rollout) == (5.0, "canary")


def test_context_keys_reach_the_training_job_as_the_declared_variables() -> None:
    config = config_from_context(
        {
            "training_time_budget_seconds": 600,
            "training_target": "price",
            "training_max_fit_rows": 0,
            "training_rollout": "shadow",
            "github_repository": "mlsys-example/mlsys",  # synthesis refuses the placeholder
        }
    )
    assert config.training.job_settings == {
        "MLSYS_TIME_BUDGET_SECONDS": "600",
        "MLSYS_MIN_IMPROVEMENT": "0",
        "MLSYS_ROLLOUT": "shadow",
        "MLSYS_CANARY_FRACTION": "0.1",
        "MLSYS_TARGET": "price",
    }
    assert load_settings(dict(config.training.job_settings)).training().rollout == "shadow"


def test_every_context_key_has_a_meaning_and_the_knob_keys_their_deploy_default() -> None:
    assert set(CONTEXT_HELP) == set(DEFAULTS) - set(BY_CONTEXT)
    for key, declared in BY_CONTEXT.items():
        assert DEFAULTS[key] == declared.deploy_default


def test_the_configuration_reference_is_generated_from_the_declarations() -> None:
    assert configuration_reference.main(["--check"]) == 0, "run `make docs`"
    text = configuration_reference.render()
    for declared in KNOBS:
        assert f"`{declared.env}`" in text
    for key in CONTEXT_HELP:
        assert f"`{key}`" in text


def test_location_flags_say_what_they_are_for_once_with_their_variable() -> None:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    [log] = [action for action in parser._actions if action.dest == "log_uri"]
    assert log.help == (
        "system log for the training event: sqlite:///path or dynamodb://table "
        "(env MLSYS_LOG_URI; default sqlite:///.mlsys/log.sqlite3)"
    )
