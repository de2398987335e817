"""The one metrics module: scikit-learn's numbers (with and without weights), what the
registry says of each metric, and when a metric is undefined."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from sklearn import metrics as skm

from mlsys.errors import ConfigError
from mlsys.metrics import (
    DEFAULT_METRIC,
    METRICS,
    Scores,
    all_metrics,
    metric_value,
    resolve_metric,
)

RNG = np.random.default_rng(7)
Y_REG = RNG.normal(size=200)
PRED_REG = Y_REG + RNG.normal(scale=0.5, size=200)
Y_CLS = RNG.integers(0, 3, size=200)
PROBA = RNG.dirichlet(np.ones(3), size=200)
WEIGHTS = RNG.integers(0, 4, size=200).astype(np.float64)

Reference = Callable[[np.ndarray | None], float]
SCIKIT_LEARN: dict[str, Reference] = {
    "r2": lambda w: skm.r2_score(Y_REG, PRED_REG, sample_weight=w),
    "rmse": lambda w: skm.root_mean_squared_error(Y_REG, PRED_REG, sample_weight=w),
    "mae": lambda w: skm.mean_absolute_error(Y_REG, PRED_REG, sample_weight=w),
    "accuracy": lambda w: skm.accuracy_score(Y_CLS, PROBA.argmax(1), sample_weight=w),
    "f1_macro": lambda w: skm.f1_score(Y_CLS, PROBA.argmax(1), average="macro", sample_weight=w),
    "log_loss": lambda w: skm.log_loss(Y_CLS, PROBA, sample_weight=w),
    "roc_auc": lambda w: skm.roc_auc_score(Y_CLS, PROBA, multi_class="ovr", sample_weight=w),
}


def _inputs(name: str) -> tuple[np.ndarray, Scores]:
    if METRICS[name].task == "regression":
        return Y_REG, Scores(values=PRED_REG)
    return Y_CLS, Scores(labels=PROBA.argmax(1), probabilities=PROBA)


def test_every_metric_has_a_scikit_learn_reference() -> None:
    assert list(METRICS) == ["r2", "rmse", "mae", "f1_macro", "accuracy", "log_loss", "roc_auc"]
    assert set(SCIKIT_LEARN) == set(METRICS)


@pytest.mark.parametrize("name", list(SCIKIT_LEARN))
def test_metrics_match_scikit_learn_with_and_without_weights(name: str) -> None:
    y, scores = _inputs(name)
    for weights in (None, WEIGHTS):
        value = METRICS[name].compute(y, scores, weights)
        assert value == pytest.approx(SCIKIT_LEARN[name](weights), rel=1e-12)


@pytest.mark.parametrize("weights", [None, np.array([1.0, 2.0, 0.0, 0.5, 1.0, 3.0, 1.0, 0.25])])
def test_binary_auc_counts_ties_as_scikit_learn_does(weights: np.ndarray | None) -> None:
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.2, 0.7])
    scores = Scores(probabilities=np.column_stack([1 - p1, p1]))
    expected = skm.roc_auc_score(y, p1, sample_weight=weights)
    assert METRICS["roc_auc"].compute(y, scores, weights) == expected  # to the last bit


@pytest.mark.parametrize("name", list(METRICS))
def test_a_perfect_model_scores_the_perfect_score(name: str) -> None:
    metric = METRICS[name]
    if metric.task == "regression":
        perfect = Scores(values=Y_REG.copy())
        y: np.ndarray = Y_REG
    else:
        y = Y_CLS
        perfect = Scores(labels=Y_CLS.copy(), probabilities=np.eye(3)[Y_CLS])
    assert metric.compute(y, perfect, None) == pytest.approx(metric.perfect, abs=1e-12)
    # A model with errors lands on the worse side of it, in the metric's direction.
    y_noise, noisy = _inputs(name)
    better = metric.perfect if metric.higher_is_better else -metric.perfect
    signed = metric.compute(y_noise, noisy, None) * (1 if metric.higher_is_better else -1)
    assert signed < better


def test_probability_metrics_say_so() -> None:
    assert {n for n, m in METRICS.items() if m.needs_probabilities} == {"log_loss", "roc_auc"}


def test_metric_must_fit_the_task() -> None:
    assert resolve_metric(None, "regression").name == DEFAULT_METRIC["regression"] == "r2"
    assert resolve_metric(None, "classification").name == "f1_macro"
    assert resolve_metric("rmse", "regression") is METRICS["rmse"]
    with pytest.raises(ConfigError, match="not a regression metric; choose from r2, rmse, mae"):
        resolve_metric("f1_macro", "regression")
    with pytest.raises(ConfigError, match="unknown metric 'auc'; choose from r2, rmse, mae, f1"):
        resolve_metric("auc", "classification")


def test_undefined_metrics_are_none() -> None:
    one = np.array([1.0])
    assert metric_value("r2", one, Scores(values=one)) is None  # r2 needs two rows
    assert metric_value("rmse", one, Scores(values=one)) == 0.0
    pair = np.array([0, 1])
    assert metric_value("log_loss", pair, Scores(labels=pair)) is None  # no probabilities
    assert metric_value("accuracy", pair[:0], Scores(labels=pair[:0])) is None  # no rows
    assert metric_value("no_such_metric", pair, Scores(labels=pair)) is None
    # AUC with one class absent from the rows, or a row without any probability.
    absent = Scores(labels=pair, probabilities=np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]]))
    assert metric_value("roc_auc", pair, absent) is None
    empty_row = np.array([[0.0, 0.0, 0.0], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3]])
    three = np.array([0, 1, 2])
    assert metric_value("roc_auc", three, Scores(labels=three, probabilities=empty_row)) is None


def test_all_metrics_leaves_out_what_is_undefined() -> None:
    y = np.array([0, 0, 1, 1])
    scores = Scores(labels=np.array([0, 1, 1, 1]), probabilities=np.full((4, 3), 1 / 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and says nothing about it
        found = all_metrics("classification", y, scores)
    assert set(found) == {"f1_macro", "accuracy", "log_loss"}  # AUC: class 2 never occurs
    assert found["accuracy"] == 0.75
    assert set(all_metrics("regression", Y_REG, Scores(values=PRED_REG))) == {"r2", "rmse", "mae"}
