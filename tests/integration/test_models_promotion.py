"""Manual `mlsys models promote/rollback`: guardrails, --force and the system log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from mlsys.settings import GuardrailBudgets, TrainingSettings
from tests.training_support import models, nonlinear_regression, train, write_csv
from training_job.run import TrainingRun

pytestmark = pytest.mark.slow


def champion_file(registry: Path) -> bytes:
    return (registry / "models" / "default" / "champion.json").read_bytes()


def test_a_version_that_failed_a_guardrail_needs_force_and_the_log_records_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    _, first, _ = train(capsys, registry, log, "--data", data, "--models", "linear")
    assert first is not None
    oversized = TrainingRun(
        TrainingSettings(
            data=data,
            candidates=("linear",),
            time_budget_seconds=30,
            seed=1,
            budgets=GuardrailBudgets(max_model_bytes=100),
        ),
        registry=ModelRegistry.open(str(registry), model_name="default"),
        event_log=None,
    ).execute()
    assert oversized.promoted is False
    before = champion_file(registry)

    code, _, err = models(capsys, registry, "promote", oversized.run_id, "--reason", "ship it")
    assert code == 2
    assert err.startswith(f"mlsys models: error: not promoting {oversized.run_id}: guardrail size")
    assert err.endswith("(--force to override)\n")
    assert err.count("\n") == 1
    assert champion_file(registry) == before

    code, out, err = models(
        capsys, registry, "promote", oversized.run_id, "--reason", "ship it", "--force"
    )
    assert code == 0, err
    assert out.startswith(f"promoted {oversized.run_id}")
    entry = json.loads(models(capsys, registry, "history", "--json")[1])[-1]
    assert entry["version"] == oversized.run_id
    assert entry["reason"].startswith("ship it [forced: guardrail size failed")

    event = open_event_log(f"sqlite:///{log}").query(event_type="training").events[0]
    assert event.model_version == oversized.run_id
    assert {
        k: event.data[k]
        for k in ("action", "version", "from_version", "actor", "forced", "registry")
    } == {
        "action": "promote",
        "version": oversized.run_id,
        "from_version": first["version"],
        "actor": "mlsys models",
        "forced": True,
        "registry": str(registry),
    }
    assert event.data["reason"] == entry["reason"]


def test_a_schema_change_against_the_champion_needs_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    frame = nonlinear_regression()
    full = str(write_csv(frame, tmp_path / "full.csv"))
    fewer = str(write_csv(frame.drop(columns="c"), tmp_path / "fewer.csv"))
    train(capsys, registry, log, "--data", full, "--models", "linear")
    _, narrow, _ = train(capsys, registry, log, "--data", fewer, "--models", "linear")
    assert narrow is not None
    assert narrow["promoted"] is False  # the champion cannot score data without 'c'

    code, _, err = models(capsys, registry, "promote", narrow["version"], "--reason", "x")
    assert code == 2
    assert "schema differs from champion" in err
    assert "dropped input(s) 'c'" in err
    assert err.count("\n") == 1
    code, _, err = models(
        capsys, registry, "promote", narrow["version"], "--reason", "x", "--force"
    )
    assert code == 0, err


def test_unknown_versions_are_bad_input_and_no_champion_keeps_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    # `make run` trains when this fails; it must keep failing with 1, not 2.
    code, _, err = models(capsys, registry, "show", "champion")
    assert (code, err) == (1, "mlsys models: error: model 'default' has no champion yet\n")
    for action in (["show", "nope"], ["promote", "nope", "--reason", "x"]):
        code, _, err = models(capsys, registry, *action)
        assert (code, err) == (2, "mlsys models: error: model 'default' has no version 'nope'\n")
    assert not (tmp_path / "log.sqlite3").exists()


def test_rollback_stands_when_the_log_is_unavailable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    _, first, _ = train(capsys, registry, log, "--data", data, "--models", "linear")
    _, second, _ = train(capsys, registry, log, "--data", data, "--models", "random_forest")
    assert first is not None
    assert second is not None
    assert second["promoted"] is True
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")

    code, out, err = models(capsys, registry, "rollback", log=not_a_directory / "log.sqlite3")
    assert code == 0
    assert out.startswith(f"rolled back to {first['version']}")
    assert err.startswith(
        f"mlsys models: warning: rollback of {first['version']} done, but not recorded "
        "in the system log: "
    )
    assert err.count("\n") == 1
    reg = ModelRegistry.open(str(registry), model_name="default")
    assert reg.require_champion().version == first["version"]
    assert reg.history()[-1]["action"] == "rollback"


def test_a_version_training_refused_needs_force_and_list_shows_what_each_version_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    _, first, _ = train(capsys, registry, log, "--data", data, "--models", "linear")
    _, refused, _ = train(
        capsys, registry, log, "--data", data, "--models", "linear", "--seed", "1",
        "--min-baseline-lift", "0.99",
    )  # fmt: skip
    assert first is not None
    assert refused is not None
    assert refused["code"] == "below_baseline"

    code, out, _ = models(capsys, registry, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "CREATED", "ESTIMATOR", "METRIC", "SCORE", "STATUS"]
    assert rows[0].startswith(first["version"])
    assert rows[0].endswith("champion")
    assert rows[1].startswith(refused["version"])
    assert rows[1].endswith("refused: below baseline")

    code, _, err = models(capsys, registry, "promote", refused["version"], "--reason", "mine")
    assert code == 2
    assert err.startswith(
        f"mlsys models: error: not promoting {refused['version']}: training refused it "
        "(below_baseline: not better than the trivial baseline"
    )
    assert err.endswith("(--force to override)\n")

    code, out, _ = models(
        capsys, registry, "promote", refused["version"], "--reason", "mine", "--force"
    )
    assert code == 0
    assert out.splitlines()[1] == (
        "note: a running `mlsys serve` on this registry switches within 1 s"
    )
    assert (
        ModelRegistry.open(str(registry), model_name="default")
        .history()[-1]["reason"]
        .startswith("mine [forced: training refused it (below_baseline: ")
    )
    statuses = [line.split("  ")[-1] for line in models(capsys, registry, "list")[1].splitlines()]
    assert statuses[1:] == ["former champion", "champion"]
    history = models(capsys, registry, "history")[1].splitlines()
    assert f" promoted {first['version']} as the first champion: " in history[0]
    assert (
        f"mlsys models promoted {refused['version']}, replacing {first['version']}: mine"
        in (history[1])
    )
