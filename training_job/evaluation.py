"""Scoring registry models on the holdout, and the paired bootstrap between two of them.

The metrics themselves are :mod:`mlsys.metrics`' (shared with live quality); this module
runs a model on the holdout exactly as it is served and brings its predictions into the
current data's terms: a champion trained on other classes has its predicted labels mapped
into the current classes' index space (unknown labels count as wrong) and its probability
columns aligned (missing classes get probability 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsys.contract import JsonScalar, LoadedModel, Prediction, Task
from mlsys.metrics import Metric, Scores


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
