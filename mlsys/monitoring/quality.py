"""Live quality: the training metrics recomputed on predictions joined with feedback.

NumPy only (the monitor runs in the Lambda bundle, without scikit-learn). Each
function matches the same-named metric of :mod:`training_job.evaluation` on the
same inputs, so the live number is comparable with the card's holdout score.
Classification metrics take class indices into the card's ``classes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LOG_LOSS_EPS = 1e-15


def r2(y: FloatArray, predicted: FloatArray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predicted) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def rmse(y: FloatArray, predicted: FloatArray) -> float:
    return float(np.sqrt(np.mean((y - predicted) ** 2)))


def mae(y: FloatArray, predicted: FloatArray) -> float:
    return float(np.mean(np.abs(y - predicted)))


def accuracy(y: IntArray, labels: IntArray) -> float:
    return float(np.mean(labels == y))


def f1_macro(y: IntArray, labels: IntArray) -> float:
    """Macro F1 over the classes that occur in ``y`` or in the predictions."""
    n_classes = int(max(y.max(initial=0), labels.max(initial=0))) + 1
    hit = labels == y
    true_pos = np.bincount(y[hit], minlength=n_classes).astype(np.float64)
    actual = np.bincount(y, minlength=n_classes)
    predicted = np.bincount(labels[labels >= 0], minlength=n_classes)
    denominator = (actual + predicted).astype(np.float64)
    present = denominator > 0
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(n_classes), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


def log_loss(y: IntArray, probabilities: FloatArray) -> float:
    normalised = probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)
    picked = np.clip(normalised[np.arange(len(y)), y], LOG_LOSS_EPS, 1.0)
    return float(np.mean(-np.log(picked)))


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank (as scipy's ``rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _binary_auc(positive: npt.NDArray[np.bool_], scores: FloatArray) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y: IntArray, probabilities: FloatArray) -> float:
    """Binary AUC, or one-vs-rest macro AUC (every class must occur) for more classes."""
    if probabilities.shape[1] == 2:
        return _binary_auc(y == 1, probabilities[:, 1])
    normalised = probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)
    scores = [_binary_auc(y == k, normalised[:, k]) for k in range(normalised.shape[1])]
    return float(np.mean(scores))


REGRESSION: dict[str, Callable[[FloatArray, FloatArray], float]] = {
    "r2": r2,
    "rmse": rmse,
    "mae": mae,
}
LABEL_METRICS: dict[str, Callable[[IntArray, IntArray], float]] = {
    "accuracy": accuracy,
    "f1_macro": f1_macro,
}
PROBABILITY_METRICS: dict[str, Callable[[IntArray, FloatArray], float]] = {
    "log_loss": log_loss,
    "roc_auc": roc_auc,
}
HIGHER_IS_BETTER = {"r2": True, "rmse": False, "mae": False, "accuracy": True, "f1_macro": True}
HIGHER_IS_BETTER |= {"log_loss": False, "roc_auc": True}


def compute(
    metric: str,
    y: Any,
    predicted: Any,
    *,
    probabilities: FloatArray | None = None,
) -> float | None:
    """``metric`` on actuals and predictions; ``None`` when it is undefined (too few
    rows, a probability metric without logged probabilities, an unknown metric)."""
    if len(y) < 2 and metric == "r2":
        return None
    if len(y) == 0:
        return None
    value: float
    if metric in REGRESSION:
        value = REGRESSION[metric](np.asarray(y, np.float64), np.asarray(predicted, np.float64))
    elif metric in LABEL_METRICS:
        value = LABEL_METRICS[metric](np.asarray(y, np.int64), np.asarray(predicted, np.int64))
    elif metric in PROBABILITY_METRICS and probabilities is not None:
        value = PROBABILITY_METRICS[metric](np.asarray(y, np.int64), probabilities)
    else:
        return None
    return value if math.isfinite(value) else None
