"""Permutation importance through onnxruntime: the features a model uses rank above noise,
whatever the graph's input layout, with bounded and reproducible cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.contract import LoadedModel
from mlsys.metrics import METRICS
from tests.inference_support import CLASSES, BuiltModel, build_classifier, build_regression
from training_job.importance import Importance, permutation_importance


def classifier_importance(
    built: BuiltModel, *, metric: str = "f1_macro", seed: int = 0, **bounds: int
) -> Importance:
    """On the model's own labels as truth (so the unshuffled score is perfect)."""
    y = np.array([CLASSES.index(label) for label in built.expected], dtype=np.int64)
    importance = permutation_importance(
        LoadedModel(built.card, built.model_bytes),
        built.frame,
        y,
        metric=METRICS[metric],
        task="classification",
        classes=CLASSES,
        seed=seed,
        **bounds,
    )
    assert importance is not None
    return importance


def test_the_features_the_label_depends_on_rank_above_noise() -> None:
    # label = (age > 40) + (colour == "red"); income is noise.
    features = classifier_importance(build_classifier(version="v1")).features
    assert set(features) == {"age", "colour", "income"}
    assert min(features["age"][0], features["colour"][0]) > 0.1
    assert features["income"][0] < 0.05
    assert all(std >= 0 for _, std in features.values())


def test_both_input_layouts_give_the_same_importance() -> None:
    tensor = classifier_importance(build_classifier(version="v1", layout="tensor")).features
    per_feature = classifier_importance(
        build_classifier(version="v1", layout="per_feature")
    ).features
    assert tensor.keys() == per_feature.keys()
    for name, (mean, std) in tensor.items():
        assert (mean, std) == pytest.approx(per_feature[name])


def test_a_regressor_loses_r2_when_a_used_feature_is_shuffled() -> None:
    built = build_regression(version="v1", features=3)  # age, sex, bmi of the diabetes data
    model = LoadedModel(built.card, built.model_bytes)
    importance = permutation_importance(
        model,
        built.frame,
        np.asarray(built.expected, dtype=np.float64),
        metric=METRICS["rmse"],  # lower is better: importance is still a loss, positive
        task="regression",
        classes=None,
        seed=0,
    )
    assert importance is not None
    assert importance.score == pytest.approx(0.0, abs=1e-3)  # its own predictions as truth
    assert importance.features["bmi"][0] > importance.features["age"][0] > 0
    assert importance.to_dict()["features"]["bmi"]["mean"] == importance.features["bmi"][0]


def test_rows_and_shuffles_are_bounded_and_seeded() -> None:
    built = build_classifier(version="v1")  # 300 rows
    importance = classifier_importance(built, metric="accuracy", seed=3, max_rows=100, repeats=2)
    assert (importance.rows, importance.repeats, importance.seed) == (100, 2, 3)
    again = classifier_importance(built, metric="accuracy", seed=3, max_rows=100, repeats=2)
    assert again == importance
    assert classifier_importance(built, metric="accuracy", seed=4, max_rows=100) != importance


def test_an_undefined_metric_gives_no_importance() -> None:
    built = build_classifier(version="v1")
    frame = pd.DataFrame(built.frame.iloc[:50])
    y = np.zeros(len(frame), dtype=np.int64)  # one class only: AUC is undefined
    importance = permutation_importance(
        LoadedModel(built.card, built.model_bytes),
        frame,
        y,
        metric=METRICS["roc_auc"],
        task="classification",
        classes=CLASSES,
        seed=0,
    )
    assert importance is None
