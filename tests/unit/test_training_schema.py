"""Schema inference, task detection, label encoding, the split and schema comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.cli import main as mlsys_main
from mlsys.contract import FeatureSpec, ModelCard
from mlsys.errors import DataError
from training_job.schema import (
    AUTO_CLASSIFICATION_MAX_LEVELS,
    MAX_HOLDOUT_ROWS,
    compare_schema,
    detect_task,
    infer_schema,
    model_frame,
    prepare_target,
    split_rows,
)


def test_columns_become_numeric_or_categorical_features_named_f0_fn() -> None:
    frame = pd.DataFrame(
        {
            "a b": [1.0, np.nan, 3.0],
            "city": ["x", None, "y"],
            "flag": [True, False, True],
            "count": [1, 2, 3],
            "target": [0.1, 0.2, 0.3],
        }
    )
    schema = infer_schema(frame, target="target")
    specs = {f.name: f for f in schema.features}
    assert [f.input_name for f in schema.features] == ["f0", "f1", "f2", "f3"]
    assert specs["a b"].kind == "numeric"
    assert specs["a b"].had_missing
    assert specs["city"].kind == "categorical"
    assert specs["city"].categories == ("x", "y")
    assert specs["city"].had_missing
    assert specs["flag"].kind == "categorical"
    assert specs["flag"].categories == ("False", "True")
    assert specs["count"] == FeatureSpec(name="count", kind="numeric", input_name="f3")


def test_unusable_columns_are_dropped_with_a_reason() -> None:
    rows = 1200
    frame = pd.DataFrame(
        {
            "empty": [np.nan] * rows,
            "id": [f"user-{i}" for i in range(rows)],
            "x": np.arange(rows, dtype=float),
            "y": np.arange(rows, dtype=float),
        }
    )
    schema = infer_schema(frame, target="y")
    assert [f.name for f in schema.features] == ["x"]
    assert schema.features[0].input_name == "f0"
    assert "missing" in schema.dropped["empty"]
    assert "identifier" in schema.dropped["id"]


def test_no_usable_feature_is_bad_input() -> None:
    frame = pd.DataFrame({"empty": [np.nan, np.nan], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match="no usable feature"):
        infer_schema(frame, target="y")


@pytest.mark.parametrize(
    ("values", "count"),
    [([1.0, np.inf, 2.0, -np.inf], 2), ([1.0, 1e39, 2.0, 3.0], 1)],
    ids=["inf", "beyond-float32"],
)
def test_infinite_feature_values_are_bad_input_naming_the_column(
    values: list[float], count: int
) -> None:
    frame = pd.DataFrame({"ok": [1.0, 2.0, 3.0, 4.0], "ratio": values, "y": [1.0, 2, 3, 4]})
    plural = "row has an infinite value" if count == 1 else "rows have infinite values"
    with pytest.raises(DataError, match=f"feature column 'ratio': {count} {plural}"):
        infer_schema(frame, target="y")


def test_datetime_and_nested_columns_are_excluded_with_a_reason() -> None:
    rows = 4
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2026-01-01", periods=rows, freq="h"),
            "when_utc": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC"),
            "tags": [["a"], ["b", "c"], [], None],
            "attrs": [{"k": 1}, {"k": 2}, None, {"k": 3}],
            "x": [1.0, 2.0, 3.0, 4.0],
            "y": [1.0, 2.0, 3.0, 4.0],
        }
    )
    schema = infer_schema(frame, target="y")
    assert [f.name for f in schema.features] == ["x"]
    assert set(schema.dropped) == {"when", "when_utc", "tags", "attrs"}
    assert "date/time" in schema.dropped["when"]
    assert "date/time" in schema.dropped["when_utc"]
    assert "nested" in schema.dropped["tags"]
    assert "nested" in schema.dropped["attrs"]
    with pytest.raises(DataError, match=r"no usable feature columns.*when: date/time"):
        infer_schema(frame[["when", "tags", "y"]], target="y")


def test_model_frame_renames_and_encodes_like_serving() -> None:
    frame = pd.DataFrame({"weird name": [0.1, None], "c": ["a", None]})
    schema = infer_schema(frame.assign(y=[1, 2]), target="y")
    x = model_frame(frame, schema.features)
    assert list(x.columns) == ["f0", "f1"]
    assert x["f0"].iloc[0] == np.float64(np.float32(0.1))  # rounded like the float32 input
    assert np.isnan(x["f0"].iloc[1])
    assert x["f1"].tolist() == ["a", ""]


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 2, 1, 0, 2], "classification"),
        ([1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "classification"),  # whole numbers as floats
        ([1, 2, 3, 4, 5] * 4, "classification"),  # ratings
        (list(range(1, 21)) * 2, "classification"),  # 20 levels: the most
        (list(range(1, 22)) * 2, "regression"),  # 21 levels: a quantity, not classes
        ([0.5, 1.5, 2.25], "regression"),
        ([0, 1, 2, 1.5] * 5, "regression"),  # one fraction is enough
        (list(range(100)), "regression"),
        ([120, 95, 310, 87, 150, 240, 199, 64, 175, 130, 88, 305, 260], "regression"),
        ([3, 7, 3, 9, 12, 5, 8, 1, 10, 6, 2, 11, 4], "regression"),  # mostly unique
    ],
)
def test_task_is_detected_from_the_target(values: list[object], task: str) -> None:
    assert detect_task(pd.Series(values)) == task


def test_the_task_help_states_the_auto_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        mlsys_main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "auto: strings and booleans are class labels, and so are whole numbers with "
        f"at most {AUTO_CLASSIFICATION_MAX_LEVELS} distinct values (e.g. 0/1/2)" in help_text
    )
    assert "any other number (fractions, many distinct values) is regression" in help_text


def test_string_labels_are_encoded_with_sorted_json_native_classes() -> None:
    target = prepare_target(pd.Series(["yes", None, "no", "yes"], name="t"), task="auto")
    assert target.task == "classification"
    assert target.classes == ("no", "yes")
    assert target.y.tolist() == [1, 0, 1]
    assert target.keep.tolist() == [True, False, True, True]


def test_integer_labels_stay_integers_in_the_card() -> None:
    target = prepare_target(pd.Series([10, 2, 2, 10], name="t"), task="classification")
    assert target.classes == (2, 10)
    assert all(type(c) is int for c in target.classes)


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (["a", "b", "c"], "regression", "not numeric"),
        (["a", "a", "a"], "auto", "single class"),
        ([1.0, 1.0, 1.0], "regression", "constant"),
        ([None, None], "auto", "no values"),
        ([float(i) + 0.5 for i in range(150)], "classification", "more than 100 classes"),
        (
            [f"order-{i}" for i in range(150)],
            "auto",
            r"too many classes \(150, at most 100\) for classification; is this an ID column\? "
            "choose another --target",
        ),
    ],
)
def test_targets_unusable_for_the_task_are_bad_input(
    values: list[object], task: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        prepare_target(pd.Series(values, name="t"), task=task)  # type: ignore[arg-type]


def test_split_is_seeded_and_stratified() -> None:
    y = np.array([0] * 80 + [1] * 20)
    first = split_rows(y, task="classification", seed=3)
    again = split_rows(y, task="classification", seed=3)
    other = split_rows(y, task="classification", seed=4)
    assert first.stratified
    assert first.holdout.tolist() == again.holdout.tolist()
    assert first.holdout.tolist() != other.holdout.tolist()
    assert len(first.holdout) == 20
    assert int(y[first.holdout].sum()) == 4  # the 80/20 class balance is kept
    assert not set(first.train) & set(first.holdout)


def test_singleton_classes_fall_back_to_a_plain_split() -> None:
    y = np.array([0] * 30 + [1] * 29 + [2])
    assert not split_rows(y, task="classification", seed=0).stratified


def test_holdout_is_capped_and_tiny_data_rejected() -> None:
    split = split_rows(np.zeros(600_000), task="regression", seed=0)
    assert len(split.holdout) == MAX_HOLDOUT_ROWS
    with pytest.raises(DataError, match="at least"):
        split_rows(np.zeros(5), task="regression", seed=0)


def card(features: tuple[FeatureSpec, ...]) -> ModelCard:
    return ModelCard(
        model_name="m", version="v1", task="regression", target="y", features=features, metric="r2"
    )


NUMERIC_X = FeatureSpec(name="x", kind="numeric", input_name="f0")


def test_same_schema_is_no_change() -> None:
    frame = pd.DataFrame({"x": [1.0], "y": [2.0]})
    result = compare_schema(
        card((NUMERIC_X,)), frame=frame, features=(NUMERIC_X,), task="regression", target="y"
    )
    assert result.champion_can_score
    assert result.change is None


def test_missing_or_retyped_champion_columns_mean_it_cannot_score() -> None:
    missing = compare_schema(
        card((NUMERIC_X,)),
        frame=pd.DataFrame({"z": [1.0]}),
        features=(),
        task="regression",
        target="y",
    )
    assert not missing.champion_can_score
    assert "'x'" in (missing.change or "")
    text = compare_schema(
        card((NUMERIC_X,)),
        frame=pd.DataFrame({"x": ["a"]}),
        features=(),
        task="regression",
        target="y",
    )
    assert not text.champion_can_score
    other_task = compare_schema(
        card((NUMERIC_X,)),
        frame=pd.DataFrame({"x": [1.0]}),
        features=(NUMERIC_X,),
        task="classification",
        target="y",
    )
    assert not other_task.champion_can_score


def test_added_inputs_are_a_schema_change_the_champion_can_still_score() -> None:
    extra = FeatureSpec(name="w", kind="numeric", input_name="f1")
    result = compare_schema(
        card((NUMERIC_X,)),
        frame=pd.DataFrame({"x": [1.0], "w": [2.0]}),
        features=(NUMERIC_X, extra),
        task="regression",
        target="y",
    )
    assert result.champion_can_score
    assert "new input(s) 'w'" in (result.change or "")
