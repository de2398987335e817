"""Bad input, interrupted runs and lost promotion races never harm the champion."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sklearn.linear_model import Ridge

from mlsys.errors import ConfigError
from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from mlsys.settings import GuardrailBudgets, TrainingSettings
from mlsys.storage import LocalStore
from tests.training_support import (
    nonlinear_regression,
    registry_files,
    train,
    write_csv,
)
from training_job.run import TrainingRun
from training_job.schema import MIN_ROWS
from training_job.search import CANDIDATES, Candidate

pytestmark = pytest.mark.slow


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Case -> (extra train arguments, expected message fragment)."""
    header_only = tmp / "header.csv"
    header_only.write_text("a,b,y\n")
    empty = tmp / "empty.csv"
    empty.write_text("")
    garbage = tmp / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    text_labels = write_csv(nonlinear_regression().assign(y="same"), tmp / "one_class.csv")
    words = write_csv(nonlinear_regression().assign(y=["w1", "w2"] * 150), tmp / "words.csv")
    one_row = tmp / "one_row.csv"
    one_row.write_text("a,b\n1,2\n")
    notes = tmp / "notes.txt"
    notes.write_text("a,b\n1,2\n")
    bad_gzip = tmp / "bad.csv.gz"
    bad_gzip.write_bytes(gzip.compress(b"\xff\xfe\x00garbage")[:10])
    infinite = nonlinear_regression()
    infinite.loc[[3, 7], "b"] = [float("inf"), float("-inf")]
    infinite_feature = write_csv(infinite, tmp / "inf.csv")
    ids = write_csv(
        nonlinear_regression().assign(y=[f"order-{i}" for i in range(300)]), tmp / "ids.csv"
    )
    data = str(write_csv(nonlinear_regression(), tmp / "ok.csv"))
    return {
        "missing file": (["--data", str(tmp / "nope.csv")], "data file not found"),
        "missing target": (
            ["--data", data, "--target", "price"],
            "target column 'price' not found",
        ),
        "header only": (["--data", str(header_only)], "is empty"),
        "empty file": (["--data", str(empty)], "is empty"),
        "unreadable parquet": (["--data", str(garbage)], "cannot read"),
        "unsupported format": (["--data", str(notes)], "unsupported data format"),
        "corrupt gzip": (["--data", str(bad_gzip)], "cannot read"),
        "single class": (["--data", str(text_labels)], "single class"),
        # Not "a single class 2": one row is too few whatever its values.
        "one row": (
            ["--data", str(one_row), "--target", "b"],
            f"only 1 row has a value in target column 'b'; training needs at least {MIN_ROWS}",
        ),
        "text for regression": (["--data", str(words), "--task", "regression"], "not numeric"),
        "infinite feature": (
            ["--data", str(infinite_feature)],
            "feature column 'b': 2 rows have infinite values",
        ),
        "identifier target": (["--data", str(ids)], "is this an ID column?"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "missing target",
        "header only",
        "empty file",
        "unreadable parquet",
        "unsupported format",
        "corrupt gzip",
        "single class",
        "one row",
        "text for regression",
        "infinite feature",
        "identifier target",
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    args, message = bad_inputs(tmp_path)[case]
    code, result, err = train(capsys, registry, log, *args)
    assert code == 2
    assert result is None
    assert message in err
    assert err.startswith("mlsys train: error: ")
    assert err.count("\n") == 1
    assert registry_files(registry) == []
    assert not log.exists()  # the log is opened only when there is an outcome to write


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_minimum_row_count_is_enough_to_train_and_one_less_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str
) -> None:
    assert MIN_ROWS == 13  # 3 held out + 5 cross-validation folds of 2
    frame = nonlinear_regression(rows=MIN_ROWS + 20)
    if task == "classification":
        frame = frame.assign(y=(frame["y"] > 0).astype(int))
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    # Rows without a target value do not count.
    short = frame.head(MIN_ROWS).copy()
    short.loc[short.index[0], "y"] = None
    code, result, err = train(
        capsys, registry, log, "--data", str(write_csv(short, tmp_path / "short.csv"))
    )
    assert code == 2
    assert result is None
    assert f"only {MIN_ROWS - 1} rows have a value in target column 'y'" in err
    assert err.count("\n") == 1
    assert registry_files(registry) == []

    enough = write_csv(frame.head(MIN_ROWS), tmp_path / "enough.csv")
    code, result, err = train(capsys, registry, log, "--data", str(enough), "--models", "linear")
    assert code == 0, err
    assert result is not None
    assert result["task"] == task
    assert result["promoted"] is True
    assert (result["data"]["train_rows"], result["data"]["holdout_rows"]) == (10, 3)


def test_bad_input_leaves_an_existing_champion_and_log_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    train(capsys, registry, log, "--models", "linear")
    before = {name: (registry / name).read_bytes() for name in registry_files(registry)}
    code, _, _ = train(capsys, registry, log, "--data", str(tmp_path / "missing.parquet"))
    assert code == 2
    assert {name: (registry / name).read_bytes() for name in registry_files(registry)} == before
    assert len(open_event_log(f"sqlite:///{log}").query().events) == 1


def test_when_every_candidate_fails_train_says_so_in_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    train(capsys, registry, log, "--data", data, "--models", "linear")
    champion = (registry / "models" / "default" / "champion.json").read_bytes()
    # A real estimator that scikit-learn refuses to fit (alpha must be >= 0).
    monkeypatch.setitem(
        CANDIDATES,
        "misconfigured",
        Candidate(
            "misconfigured",
            lambda task, seed: Ridge(alpha=-1.0),
            scale_numeric=True,
            cost_exponent=1.0,
        ),
    )
    code, result, err = train(capsys, registry, log, "--data", data, "--models", "misconfigured")
    assert code == 1
    assert result is None
    assert err.startswith(
        "mlsys train: error: every candidate model failed to train (misconfigured: "
    )
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert (registry / "models" / "default" / "champion.json").read_bytes() == champion
    failed = ModelRegistry.open(str(registry), model_name="default").runs()[-1]
    assert failed["status"] == "failed"  # the attempt is on record


class CrashingStore(LocalStore):
    """A store whose champion-pointer write dies, like a process killed at that moment."""

    def write(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        if key.endswith("champion.json"):
            raise RuntimeError("simulated crash before the pointer write")
        return super().write(key, data, if_match=if_match, if_absent=if_absent)


def test_interrupted_run_leaves_the_champion_serving(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry_dir, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    train(capsys, registry_dir, log, "--data", data, "--models", "linear")
    healthy = ModelRegistry.open(str(registry_dir), model_name="default")
    champion = healthy.require_champion()

    crashing = ModelRegistry(CrashingStore(registry_dir), model_name="default")
    config = TrainingSettings(data=data, candidates=("random_forest",), time_budget_seconds=30)
    run = TrainingRun(config, registry=crashing, event_log=open_event_log(f"sqlite:///{log}"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run.execute()

    assert healthy.require_champion() == champion
    assert healthy.load_champion().version == champion.version
    failed = healthy.runs()[-1]
    assert failed["status"] == "failed"
    assert "simulated crash" in failed["reason"]
    assert failed["champion_version"] == champion.version


class RacingStore(LocalStore):
    """Lets another trainer promote a version just before this run's pointer write."""

    def __init__(self, root: Path, rival_version: str) -> None:
        super().__init__(root)
        self.rival_version = rival_version
        self.raced = False

    def write(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        if key.endswith("champion.json") and not self.raced:
            self.raced = True
            rival = ModelRegistry(LocalStore(self.root), model_name="default")
            rival.promote(
                self.rival_version, reason="rival", actor="rival", expected=rival.champion()
            )
        return super().write(key, data, if_match=if_match, if_absent=if_absent)


def test_concurrent_promotion_is_lost_not_overwritten(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry_dir, log = tmp_path / "registry", tmp_path / "log.sqlite3"
    data = str(write_csv(nonlinear_regression(), tmp_path / "d.csv"))
    _, first, _ = train(capsys, registry_dir, log, "--data", data, "--models", "linear")
    _, rival, _ = train(
        capsys, registry_dir, log, "--data", data, "--models", "linear", "--seed", "5"
    )
    assert first is not None
    assert rival is not None
    assert rival["promoted"] is False  # registered, not promoted: the rival to be

    store = RacingStore(registry_dir, rival["version"])
    racing = ModelRegistry(store, model_name="default")
    config = TrainingSettings(data=data, candidates=("random_forest",), time_budget_seconds=30)
    outcome = TrainingRun(
        config, registry=racing, event_log=open_event_log(f"sqlite:///{log}")
    ).execute()

    assert store.raced
    assert outcome.promoted is False
    assert outcome.code == "concurrent_update"
    assert "another promotion won" in outcome.reason
    assert racing.require_champion().version == rival["version"]
    assert racing.runs()[-1]["code"] == "concurrent_update"
    assert racing.card(outcome.run_id).decision["promote"] is True  # the policy said yes


def test_failed_guardrail_blocks_even_the_first_promotion(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalStore(tmp_path / "registry"), model_name="default")
    config = TrainingSettings(
        candidates=("linear",),
        time_budget_seconds=30,
        budgets=GuardrailBudgets(max_model_bytes=100, latency_p95_ms=1e-9),
    )
    outcome = TrainingRun(config, registry=registry, event_log=None).execute()
    assert outcome.promoted is False
    assert outcome.code == "guardrail_failed"
    assert "model.onnx" in outcome.reason
    assert "single-record p95" in outcome.reason
    assert registry.champion() is None
    card = registry.card(outcome.run_id)  # registered for inspection, never served
    assert card.guardrails["passed"] is False
    assert {c["name"]: c["passed"] for c in card.guardrails["checks"]} == {
        "onnx_check": True,
        "parity": True,
        "latency": False,
        "size": False,
    }


def test_the_outcome_reports_what_the_registered_card_says(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalStore(tmp_path / "registry"), model_name="default")
    settings = TrainingSettings(candidates=("linear",), time_budget_seconds=30)
    result = TrainingRun(settings, registry=registry, event_log=None).execute().to_dict()
    card = registry.card(result["version"])
    assert result["challenger_metrics"] == card.metrics["challenger"]
    assert result["challenger_score"] == card.metrics["challenger"][card.metric]
    assert result["guardrails"] == card.guardrails["checks"]
    assert result["estimator"] == card.training["estimator"] == "linear"
    assert result["code"] == card.decision["code"] == "no_champion"
    assert result["data"]["train_rows"] == card.data["train_rows"]


def test_unknown_candidate_models_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalStore(tmp_path / "registry"), model_name="default")
    settings = TrainingSettings(candidates=("linear", "xgboost"))
    with pytest.raises(ConfigError, match="unknown candidate model"):
        TrainingRun(settings, registry=registry, event_log=None)
    assert not (tmp_path / "registry").exists()
