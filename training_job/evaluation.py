"""Holdout metrics and the paired bootstrap, computed on what onnxruntime returns.

Metrics take optional per-row integer weights so one implementation serves
both the point estimate (weights = 1) and every bootstrap resample (weights =
how often each row was drawn), which keeps a 1,000-resample bootstrap over a
100,000-row holdout to about a second.

Classification metrics work in the index space of the *current* data's
classes: a champion trained on other classes has its predicted labels mapped
into that space (unknown labels count as wrong) and its probability columns
aligned (missing classes get probability 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsys.contract import JsonScalar, LoadedModel, Prediction, Task
from mlsys.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
Weights = npt.NDArray[np.float64] | None

LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class Scores:
    """Predictions of one model on the holdout, in the current data's terms."""

    values: FloatArray | None = None
    """Regression predictions."""
    labels: npt.NDArray[np.int64] | None = None
    """Classification: predicted class index (-1: a label the current data does not have)."""
    probabilities: FloatArray | None = None
    """Classification: ``[N, C]`` aligned to the current classes."""


def _weights(n: int, weights: Weights) -> FloatArray:
    return np.ones(n) if weights is None else weights


def r2(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    assert s.values is not None
    w = _weights(len(y), weights)
    mean = np.average(y, weights=w)
    total = float(np.sum(w * (y - mean) ** 2))
    residual = float(np.sum(w * (y - s.values) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def rmse(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    assert s.values is not None
    return float(np.sqrt(np.average((y - s.values) ** 2, weights=_weights(len(y), weights))))


def mae(y: FloatArray, s: Scores, weights: Weights = None) -> float:
    assert s.values is not None
    return float(np.average(np.abs(y - s.values), weights=_weights(len(y), weights)))


def accuracy(y: npt.NDArray[np.int64], s: Scores, weights: Weights = None) -> float:
    assert s.labels is not None
    return float(np.average(s.labels == y, weights=_weights(len(y), weights)))


def f1_macro(y: npt.NDArray[np.int64], s: Scores, weights: Weights = None) -> float:
    """Macro-averaged F1 over the classes that occur in ``y`` or in the predictions."""
    assert s.labels is not None
    w = _weights(len(y), weights)
    n_classes = int(max(y.max(initial=0), s.labels.max(initial=0))) + 1
    hit = s.labels == y
    true_pos = np.bincount(y[hit], weights=w[hit], minlength=n_classes)
    actual = np.bincount(y, weights=w, minlength=n_classes)
    known = s.labels >= 0
    predicted = np.bincount(s.labels[known], weights=w[known], minlength=n_classes)
    denominator = actual + predicted
    present = denominator > 0
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros(n_classes), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


def log_loss(y: npt.NDArray[np.int64], s: Scores, weights: Weights = None) -> float:
    assert s.probabilities is not None
    probabilities = s.probabilities / np.clip(
        s.probabilities.sum(axis=1, keepdims=True), 1e-12, None
    )
    picked = np.clip(probabilities[np.arange(len(y)), y], LOG_LOSS_EPS, 1.0)
    return float(np.average(-np.log(picked), weights=_weights(len(y), weights)))


def roc_auc(y: npt.NDArray[np.int64], s: Scores, weights: Weights = None) -> float:
    """Binary AUC, or one-vs-rest macro AUC for more classes."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    assert s.probabilities is not None
    if s.probabilities.shape[1] == 2:
        return float(roc_auc_score(y, s.probabilities[:, 1], sample_weight=weights))
    probabilities = s.probabilities / np.clip(
        s.probabilities.sum(axis=1, keepdims=True), 1e-12, None
    )
    return float(
        roc_auc_score(
            y,
            probabilities,
            sample_weight=weights,
            multi_class="ovr",
            labels=np.arange(probabilities.shape[1]),
        )
    )


@dataclass(frozen=True)
class Metric:
    name: str
    task: Task
    higher_is_better: bool
    compute: Callable[[Any, Scores, Weights], float]
    sklearn_scoring: str
    """The equivalent scikit-learn scorer, used for cross-validation."""


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("r2", "regression", True, r2, "r2"),
        Metric("rmse", "regression", False, rmse, "neg_root_mean_squared_error"),
        Metric("mae", "regression", False, mae, "neg_mean_absolute_error"),
        Metric("f1_macro", "classification", True, f1_macro, "f1_macro"),
        Metric("accuracy", "classification", True, accuracy, "accuracy"),
        Metric("log_loss", "classification", False, log_loss, "neg_log_loss"),
        Metric("roc_auc", "classification", True, roc_auc, "roc_auc_ovr"),
    )
}
DEFAULT_METRIC: dict[Task, str] = {"regression": "r2", "classification": "f1_macro"}
"""Macro-F1 by default for classification: it weighs every class equally, so a model that
ignores a rare class cannot win on accuracy alone, and it needs no probability calibration."""


def resolve_metric(name: str | None, task: Task) -> Metric:
    metric = METRICS.get(name or DEFAULT_METRIC[task])
    if metric is None:
        raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    if metric.task != task:
        choices = ", ".join(m.name for m in METRICS.values() if m.task == task)
        raise ConfigError(f"metric {metric.name!r} is not a {task} metric; choose from {choices}")
    return metric


def all_metrics(task: Task, y: Any, scores: Scores) -> dict[str, float]:
    """Every metric of the task (those that can be computed) on the holdout."""
    results: dict[str, float] = {}
    for metric in METRICS.values():
        if metric.task != task:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined metrics are left out instead
            try:
                value = metric.compute(y, scores, None)
            except ValueError:
                continue  # e.g. AUC with a class absent from the holdout
        if math.isfinite(value):
            results[metric.name] = value
    return results


def scores_from_prediction(
    prediction: Prediction,
    *,
    task: Task,
    classes: Sequence[JsonScalar] | None,
    model_classes: Sequence[JsonScalar] | None,
) -> Scores:
    """Translate a decoded prediction into the current data's class index space."""
    if task == "regression":
        assert prediction.raw is not None
        return Scores(values=np.asarray(prediction.raw, dtype=np.float64).reshape(-1))
    assert classes is not None
    assert model_classes is not None
    index: Mapping[JsonScalar, int] = {label: i for i, label in enumerate(classes)}
    labels = np.fromiter(
        (index.get(v, -1) for v in prediction.values), dtype=np.int64, count=len(prediction.values)
    )
    assert prediction.probabilities is not None
    source = np.asarray(prediction.probabilities, dtype=np.float64)
    aligned = np.zeros((len(labels), len(classes)))
    for column, label in enumerate(model_classes):
        target_column = index.get(label)
        if target_column is not None:
            aligned[:, target_column] = source[:, column]
    return Scores(labels=labels, probabilities=aligned)


def score_model(
    model: LoadedModel, frame: Any, *, task: Task, classes: Sequence[JsonScalar] | None
) -> Scores:
    """Run a registry model on a frame of raw columns exactly as it is served."""
    prediction = model.predict_frame(frame)
    return scores_from_prediction(
        prediction, task=task, classes=classes, model_classes=model.card.classes
    )


# --- paired bootstrap -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BootstrapResult:
    """Distribution of ``improvement`` (challenger better = positive) over resamples."""

    confidence: float
    resamples: int
    improvement: float
    """On the full holdout."""
    lower: float
    """One-sided lower bound: ``improvement >= lower`` with probability ``confidence``."""
    probability_not_better: float
    """Fraction of resamples in which the challenger did not improve."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "resamples": self.resamples,
            "improvement": self.improvement,
            "lower": self.lower,
            "probability_not_better": self.probability_not_better,
        }


def paired_bootstrap(
    y: Any,
    champion: Scores,
    challenger: Scores,
    *,
    metric: Metric,
    confidence: float,
    resamples: int = 1000,
    seed: int = 0,
) -> BootstrapResult:
    """Resample holdout rows with replacement, scoring both models on the same rows each time."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    sign = 1.0 if metric.higher_is_better else -1.0
    rows = len(y)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        counts = np.bincount(rng.integers(0, rows, size=rows), minlength=rows).astype(np.float64)
        diffs[i] = sign * (
            metric.compute(y, challenger, counts) - metric.compute(y, champion, counts)
        )
    observed = sign * (metric.compute(y, challenger, None) - metric.compute(y, champion, None))
    return BootstrapResult(
        confidence=confidence,
        resamples=resamples,
        improvement=float(observed),
        lower=float(np.quantile(diffs, 1.0 - confidence)),
        probability_not_better=float(np.mean(diffs <= 0.0)),
    )
