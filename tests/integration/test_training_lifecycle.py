"""`mlsys train` and `mlsys models` end to end on a local registry and SQLite log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsys.cli import main as mlsys_main
from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from tests.training_support import (
    mixed_classification,
    models,
    nonlinear_regression,
    registry_files,
    train,
    write_csv,
)

pytestmark = pytest.mark.slow


def champion_bytes(registry: Path) -> bytes:
    return (registry / "models" / "default" / "champion.json").read_bytes()


def test_champion_challenger_lifecycle(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "data.csv"))
    assert models(capsys, registry, "show", "champion")[0] != 0

    code, first, _ = train(capsys, registry, log, "--data", data, "--models", "linear")
    assert code == 0
    assert first is not None
    assert first["promoted"] is True
    assert first["champion_version"] is None
    assert first["metric"] == "r2"
    code, shown, _ = models(capsys, registry, "show", "champion", "--json")
    assert code == 0
    assert json.loads(shown)["card"]["version"] == first["version"]

    before = champion_bytes(registry)
    code, second, _ = train(capsys, registry, log, "--data", data, "--models", "linear")
    assert code == 0
    assert second is not None
    assert second["promoted"] is False
    assert second["code"] == "not_improved"
    assert second["champion_version"] == first["version"]
    assert second["champion_score"] == pytest.approx(second["challenger_score"])
    assert champion_bytes(registry) == before  # not even rewritten

    code, third, _ = train(capsys, registry, log, "--data", data, "--models", "random_forest")
    assert code == 0
    assert third is not None
    assert third["promoted"] is True
    assert third["challenger_score"] > third["champion_score"] + 0.1
    assert models(capsys, registry, "show", "champion", "--json")[1].count(third["version"])

    code, out, _ = models(capsys, registry, "rollback", "--reason", "test rollback")
    assert code == 0
    assert first["version"] in out
    reg = ModelRegistry.open(str(registry), model_name="default")
    assert reg.require_champion().version == first["version"]

    # Every run is kept: three versions, three run records, three training events,
    # then the manual rollback's event (newest first).
    assert reg.versions() == [first["version"], second["version"], third["version"]]
    assert [r["promoted"] for r in reg.runs()] == [True, False, True]
    rollback, *events = open_event_log(f"sqlite:///{log}").query(event_type="training").events
    assert [e.data["promoted"] for e in events] == [True, False, True]
    assert events[0].model_version == third["version"]
    assert {(e.data["registry"], e.data["model_name"]) for e in events} == {
        (str(registry), "default")
    }
    assert rollback.model_version == first["version"]
    assert {k: rollback.data[k] for k in ("action", "version", "from_version", "reason")} == {
        "action": "rollback",
        "version": first["version"],
        "from_version": third["version"],
        "reason": "test rollback",
    }
    card = reg.card(second["version"])
    assert card.decision["code"] == "not_improved"
    assert card.metrics["champion"]["r2"] == pytest.approx(second["champion_score"])


def test_the_recorded_default_source_names_the_same_data_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    code, first, err = train(capsys, registry, log, "--models", "linear")
    assert code == 0, err
    assert first is not None
    recorded = ModelRegistry.open(str(registry), model_name="default").runs()[0]["data"]
    assert recorded["source"] == "sklearn:diabetes"

    # An operator re-running exactly what the record names ...
    code, again, err = train(
        capsys, registry, log, "--data", recorded["source"], "--models", "linear"
    )
    assert code == 0, err
    assert again is not None
    # ... and the AWS job submitted with parameter data=sklearn:diabetes (MLSYS_DATA).
    monkeypatch.setenv("MLSYS_DATA", recorded["source"])
    code, from_env, err = train(capsys, registry, log, "--models", "linear")
    assert code == 0, err
    assert from_env is not None
    for result in (again, from_env):
        assert result["data"] == first["data"]  # same source, fingerprint and split
        assert result["target"] == "progression"
        assert result["champion_score"] == pytest.approx(result["challenger_score"])


def test_models_cli_lists_shows_and_promotes_by_hand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    _, first, _ = train(capsys, registry, log, "--models", "linear")
    _, second, _ = train(capsys, registry, log, "--models", "linear", "--seed", "1")
    assert first is not None
    assert second is not None
    code, listed, _ = models(capsys, registry, "list", "--json")
    rows = json.loads(listed)
    assert [r["version"] for r in rows] == [first["version"], second["version"]]
    assert [r["champion"] for r in rows] == [True, False]
    code, text, _ = models(capsys, registry, "list")
    assert text.splitlines()[0].startswith("VERSION ")
    assert text.splitlines()[1].startswith(first["version"])
    assert text.splitlines()[1].endswith("champion")

    code, _, err = models(capsys, registry, "promote", second["version"])
    assert code == 2
    assert "--reason" in err
    code, _, _ = models(capsys, registry, "promote", second["version"], "--reason", "by hand")
    assert code == 0
    code, shown, _ = models(capsys, registry, "show", "champion")
    assert second["version"] in shown
    assert "by hand" in shown
    code, _, err = models(capsys, registry, "show", "no-such-version")
    assert code == 2  # an unknown version is bad input
    assert err == "mlsys models: error: model 'default' has no version 'no-such-version'\n"
    code, history, _ = models(capsys, registry, "history", "--json")
    assert [h["reason"] for h in json.loads(history)][-1] == "by hand"


def test_mixed_types_missing_values_and_string_labels_train_and_serve(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = write_csv(mixed_classification(), tmp_path / "mixed.csv")
    code, result, err = train(
        capsys,
        registry,
        log,
        "--data",
        str(data),
        "--target",
        "label",
        "--models",
        "linear,gradient_boosting",
    )
    assert code == 0, err
    assert result is not None
    assert result["promoted"] is True
    assert result["task"] == "classification"
    assert result["metric"] == "f1_macro"
    assert result["challenger_score"] > 0.7
    model = ModelRegistry.open(str(registry), model_name="default").load_champion()
    card = model.card
    assert card.classes == ("high", "low", "mid")
    city = card.feature("home city")
    assert city.kind == "categorical"
    assert city.categories == ("Lyon", "Nice", "Paris")
    assert city.had_missing
    assert card.feature("age in years").had_missing
    # Raw records with missing values and an unseen category score like any other.
    assert card.input_layout == "tensor"
    values = {"age in years": [None, 35.0], "home city": [None, "Berlin"], "score (z)": [3.0, -3.0]}
    feeds = model.encoder.from_columns([values[f.name] for f in card.features])
    prediction = model.predict(feeds)
    assert prediction.values == ["high", "low"]
    assert prediction.probabilities is not None
    assert np.allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_schema_change_is_reported_and_needs_permission(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    frame = nonlinear_regression()
    old = write_csv(frame, tmp_path / "old.csv")
    new = write_csv(frame.rename(columns={"a": "alpha"}), tmp_path / "new.csv")
    train(capsys, registry, log, "--data", str(old), "--models", "linear")
    before = champion_bytes(registry)
    code, blocked, _ = train(capsys, registry, log, "--data", str(new), "--models", "linear")
    assert code == 0
    assert blocked is not None
    assert blocked["promoted"] is False
    assert blocked["code"] == "schema_changed"
    assert "'a'" in blocked["reason"]
    assert blocked["champion_score"] is None
    assert champion_bytes(registry) == before
    code, allowed, _ = train(
        capsys, registry, log, "--data", str(new), "--models", "linear", "--allow-schema-change"
    )
    assert allowed is not None
    assert allowed["promoted"] is True
    assert allowed["code"] == "schema_change_allowed"


def test_confidence_promotes_a_significant_improvement(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(rows=120), tmp_path / "d.csv"))
    train(capsys, registry, log, "--data", data, "--models", "linear")
    _, better, _ = train(
        capsys, registry, log, "--data", data, "--models", "random_forest", "--confidence", "0.95"
    )
    assert better is not None
    assert better["bootstrap"]["lower"] > 0
    assert better["promoted"] is True


def test_human_readable_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = mlsys_main(
        [
            "train",
            "--registry",
            str(tmp_path / "r"),
            "--log",
            f"sqlite:///{tmp_path / 'log.sqlite3'}",
            "--models",
            "linear",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "r2 = " in out
    assert "PROMOTED: no champion yet" in out
    assert registry_files(tmp_path / "r")


def test_bad_target_for_the_chosen_metric_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = train(capsys, tmp_path / "r", tmp_path / "log.sqlite3", "--metric", "f1_macro")
    assert code == 2
    assert "not a regression metric" in err
    assert registry_files(tmp_path / "r") == []


def test_several_categorical_columns_train_and_serve_by_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The categorical block is split back into columns inside the graph: the Split
    # must be valid at the converted graph's own opset, or onnxruntime refuses the model.
    rng = np.random.default_rng(0)
    rows = 300
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "size": rng.choice(["S", "L"], rows),
        }
    )
    frame["y"] = 2 * frame["a"] + 3 * (frame["colour"] == "red") + (frame["size"] == "L")
    data = write_csv(frame, tmp_path / "two_categoricals.csv")
    code, result, err = train(
        capsys, tmp_path / "registry", tmp_path / "log.sqlite3", "--data", str(data)
    )
    assert code == 0, err
    assert result is not None
    assert result["promoted"] is True
    model = ModelRegistry.open(str(tmp_path / "registry"), model_name="default").load_champion()
    values = {"a": [0.0, 0.0], "colour": ["red", "blue"], "size": ["L", "S"]}
    prediction = model.predict(
        model.encoder.from_columns([values[f.name] for f in model.card.features])
    )
    assert prediction.values[0] - prediction.values[1] == pytest.approx(4.0, abs=0.5)
