"""The model-quality metrics: one definition each, shared by every part that scores a model.

Training scores the holdout with them (and every bootstrap resample), the quality floor
reads each metric's perfect score, the monitor recomputes the card's metric on live
predictions joined with feedback, the rollout compares live quality in the metric's
direction, and ``mlsys train --metric`` offers :data:`METRICS`' names. One implementation
means the live number is the holdout number's exact counterpart.

NumPy only: the monitor runs in the Lambda bundle, without scikit-learn. The values equal
scikit-learn's (``r2_score``, ``root_mean_squared_error``, ``mean_absolute_error``,
``accuracy_score``, ``f1_score(average="macro")``, ``log_loss``, ``roc_auc_score``), which
the tests check. Every metric takes optional per-row weights, so one implementation serves
the point estimate (no weights) and each bootstrap resample (weights = how often each row
was drawn), which keeps a 1,000-resample bootstrap over a 100,000-row holdout to about a
second.

Classification metrics work in class-index space: ``labels`` and the columns of
``probabilities`` index the current data's classes, and a label of ``-1`` (a class the
data does not have) always counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsys.contract import Task
from mlsys.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Weights = FloatArray | None

LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class Scores:
    """One model's predictions for the rows being scored."""

    values: FloatArray | None = None
    """Regression predictions."""
    labels: IntArray | None = None
    """Classification: predicted class index (-1: a label the current data does not have)."""
    probabilities: FloatArray | None = None
    """Classification: ``[N, C]`` aligned to the current classes."""


def _mean(values: npt.NDArray[Any], weights: Weights) -> float:
    return float(np.mean(values) if weights is None else np.average(values, weights=weights))


def r2(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    """Coefficient of determination; 1 for a constant target predicted exactly, else 0."""
    assert s.values is not None
    mean = _mean(y, weights)
    w = 1.0 if weights is None else weights
    total = float(np.sum(w * (y - mean) ** 2))
    residual = float(np.sum(w * (y - s.values) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def rmse(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    assert s.values is not None
    return math.sqrt(_mean((y - s.values) ** 2, weights))


def mae(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    assert s.values is not None
    return _mean(np.abs(y - s.values), weights)


def accuracy(y: IntArray, s: Scores, weights: Weights = None) -> float:
    assert s.labels is not None
    return _mean(s.labels == y, weights)


def f1_macro(y: IntArray, s: Scores, weights: Weights = None) -> float:
    """Macro-averaged F1 over the classes that occur in ``y`` or in the predictions."""
    assert s.labels is not None
    n_classes = int(max(y.max(initial=0), s.labels.max(initial=0))) + 1
    hit = s.labels == y
    known = s.labels >= 0
    w = np.ones(len(y)) if weights is None else weights
    true_pos = np.bincount(y[hit], weights=w[hit], minlength=n_classes)
    actual = np.bincount(y, weights=w, minlength=n_classes)
    predicted = np.bincount(s.labels[known], weights=w[known], minlength=n_classes)
    denominator = actual + predicted
    present = denominator > 0
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(n_classes), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


def _normalised(probabilities: FloatArray) -> FloatArray:
    totals: FloatArray = np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)
    return probabilities / totals


def log_loss(y: IntArray, s: Scores, weights: Weights = None) -> float:
    assert s.probabilities is not None
    picked = np.clip(_normalised(s.probabilities)[np.arange(len(y)), y], LOG_LOSS_EPS, 1.0)
    return _mean(-np.log(picked), weights)


def _binary_auc(positive: npt.NDArray[np.bool_], scores: FloatArray, weights: Weights) -> float:
    """Area under the ROC curve, ties counting half; NaN without both outcomes.

    Computed as scikit-learn's ``roc_auc_score`` does (the trapezoids of the weighted ROC
    curve), so both give the same number to the last bit.
    """
    if len(np.unique(positive)) != 2:
        return math.nan
    if weights is not None:
        kept = weights != 0
        if not kept.any():
            return math.nan
        positive, scores, weights = positive[kept], scores[kept], weights[kept]
    order = np.argsort(-scores, kind="stable")  # descending; tied rows keep their order
    scores, hits = scores[order], positive[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    if weights is None:
        true_pos = np.cumsum(hits)[ends]
        false_pos = 1 + ends - true_pos
    else:
        ordered = weights[order]
        true_pos = np.cumsum(hits * ordered)[ends]
        false_pos = np.cumsum((1 - hits) * ordered)[ends]
    if len(false_pos) > 2:  # corners only: collinear points add no area
        corner = np.r_[True, np.logical_or(np.diff(false_pos, 2), np.diff(true_pos, 2)), True]
        true_pos, false_pos = true_pos[corner], false_pos[corner]
    true_pos, false_pos = np.r_[0.0, true_pos], np.r_[0.0, false_pos]
    if true_pos[-1] <= 0 or false_pos[-1] <= 0:
        return math.nan
    return float(np.trapezoid(true_pos / true_pos[-1], false_pos / false_pos[-1]))


def roc_auc(y: IntArray, s: Scores, weights: Weights = None) -> float:
    """Binary AUC, or the one-vs-rest macro AUC for more classes (NaN unless every class
    occurs, or when a row gives no class any probability)."""
    assert s.probabilities is not None
    if s.probabilities.shape[1] == 2:
        return _binary_auc(y == 1, s.probabilities[:, 1], weights)
    probabilities = _normalised(s.probabilities)
    if not np.allclose(1, probabilities.sum(axis=1)):
        return math.nan  # a row without probability for any current class
    classes = probabilities.shape[1]
    return float(
        np.mean([_binary_auc(y == k, probabilities[:, k], weights) for k in range(classes)])
    )


@dataclass(frozen=True)
class Metric:
    name: str
    task: Task
    higher_is_better: bool
    perfect: float
    """A perfect model's score: the far end of the quality floor's lift scale."""
    compute: Callable[[Any, Scores, Weights], float]
    """``compute(y, scores, weights)``; NaN where the metric is undefined."""
    sklearn_scoring: str
    """The equivalent scikit-learn scorer, which training's cross-validation uses."""
    needs_probabilities: bool = False
    min_rows: int = 1


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("r2", "regression", True, 1.0, r2, "r2", min_rows=2),
        Metric("rmse", "regression", False, 0.0, rmse, "neg_root_mean_squared_error"),
        Metric("mae", "regression", False, 0.0, mae, "neg_mean_absolute_error"),
        Metric("f1_macro", "classification", True, 1.0, f1_macro, "f1_macro"),
        Metric("accuracy", "classification", True, 1.0, accuracy, "accuracy"),
        Metric(
            "log_loss", "classification", False, 0.0, log_loss, "neg_log_loss",
            needs_probabilities=True,
        ),
        Metric(
            "roc_auc", "classification", True, 1.0, roc_auc, "roc_auc_ovr",
            needs_probabilities=True,
        ),
    )
}  # fmt: skip
"""Every metric by name, in the order ``--metric`` lists them."""

DEFAULT_METRIC: dict[Task, str] = {"regression": "r2", "classification": "f1_macro"}
"""Macro-F1 by default for classification: it weighs every class equally, so a model that
ignores a rare class cannot win on accuracy alone, and it needs no probability calibration."""


def resolve_metric(name: str | None, task: Task) -> Metric:
    """The metric called ``name`` (the task's default when ``None``); :class:`ConfigError`
    if there is no such metric or it belongs to the other task."""
    metric = METRICS.get(name or DEFAULT_METRIC[task])
    if metric is None:
        raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    if metric.task != task:
        choices = ", ".join(m.name for m in METRICS.values() if m.task == task)
        raise ConfigError(f"metric {metric.name!r} is not a {task} metric; choose from {choices}")
    return metric


def metric_value(name: str, y: Any, scores: Scores) -> float | None:
    """Metric ``name`` of ``scores`` against ``y``, or ``None`` where it is undefined: an
    unknown name, fewer rows than it needs, probabilities it needs but did not get, or a
    value that is not finite (e.g. AUC when a class does not occur)."""
    metric = METRICS.get(name)
    if metric is None or len(y) < metric.min_rows:
        return None
    if metric.needs_probabilities and scores.probabilities is None:
        return None
    with np.errstate(all="ignore"):
        value = float(metric.compute(y, scores, None))
    return value if math.isfinite(value) else None


def all_metrics(task: Task, y: Any, scores: Scores) -> dict[str, float]:
    """Every metric of ``task`` that is defined on these rows."""
    values = {name: metric_value(name, y, scores) for name, m in METRICS.items() if m.task == task}
    return {name: value for name, value in values.items() if value is not None}
