"""The trivial baseline every challenger must beat (the quality floor).

Regression: always predict the training-set mean. Classification: always predict the
training set's majority class, with the training class frequencies as probabilities
(so probability metrics such as log loss and AUC are defined too). Scored through the
same metric functions on the same holdout rows as the challenger.

For classification the baseline is the better of that and *guessing by the training
class frequencies* (seeded, averaged over :data:`GUESS_DRAWS` draws): macro-F1 rewards
spreading predictions over classes, so a model trained on shuffled labels beats the
majority class on macro-F1 (about 1/k vs 1/k of one class) without having learned
anything; it does not beat frequency guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsys.contract import Task
from mlsys.metrics import Metric, Scores, metric_value
from training_job.evaluation import BootstrapResult, paired_bootstrap


def baseline_scores(
    task: Task, y_train: Any, *, holdout_rows: int, n_classes: int | None
) -> Scores:
    """What the trivial baseline predicts for ``holdout_rows`` rows."""
    if task == "regression":
        mean = float(np.mean(np.asarray(y_train, dtype=np.float64)))
        return Scores(values=np.full(holdout_rows, mean))
    assert n_classes is not None
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)
    frequencies = counts / max(1, int(counts.sum()))
    return Scores(
        labels=np.full(holdout_rows, int(np.argmax(counts)), dtype=np.int64),
        probabilities=np.tile(frequencies.astype(np.float64), (holdout_rows, 1)),
    )


GUESS_DRAWS = 20


def guessing_scores(y_train: Any, *, holdout_rows: int, n_classes: int, seed: int) -> Scores:
    """Labels drawn at random with the training class frequencies."""
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)
    frequencies = counts / max(1, int(counts.sum()))
    rng = np.random.default_rng(seed)
    labels = rng.choice(n_classes, size=holdout_rows, p=frequencies).astype(np.int64)
    return Scores(labels=labels, probabilities=np.tile(frequencies, (holdout_rows, 1)))


@dataclass(frozen=True)
class Baseline:
    score: float
    scores: Scores
    """Predictions standing for the baseline, for the paired bootstrap against it."""


def baseline(
    metric: Metric, task: Task, y_train: Any, y_holdout: Any, *, n_classes: int | None
) -> Baseline | None:
    """The baseline's ``metric`` on the holdout (``None`` if undefined there)."""
    rows = len(y_holdout)
    trivial_scores = baseline_scores(task, y_train, holdout_rows=rows, n_classes=n_classes)
    trivial = metric_value(metric.name, y_holdout, trivial_scores)
    if trivial is None:
        return None
    if task == "regression":
        return Baseline(trivial, trivial_scores)
    assert n_classes is not None
    guesses = [
        guessing_scores(y_train, holdout_rows=rows, n_classes=n_classes, seed=seed)
        for seed in range(GUESS_DRAWS)
    ]
    scored = [(metric_value(metric.name, y_holdout, g), g) for g in guesses]
    draws = [(value, g) for value, g in scored if value is not None]
    if not draws:
        return Baseline(trivial, trivial_scores)
    guess = float(np.mean([value for value, _ in draws]))
    sign = 1.0 if metric.higher_is_better else -1.0
    if sign * guess <= sign * trivial:
        return Baseline(trivial, trivial_scores)
    # The draw closest to the mean stands for "guessing" in the bootstrap.
    closest = min(draws, key=lambda draw: abs(draw[0] - guess))[1]
    return Baseline(guess, closest)


BASELINE_CONFIDENCE = 0.95
"""A classifier's lift over the trivial baseline must be significant at this level."""


@dataclass(frozen=True)
class FloorEvidence:
    score: float | None
    """The baseline's score (``None``: undefined on this holdout)."""
    bootstrap: BootstrapResult | None
    """Challenger vs baseline, classification only (see :func:`floor_evidence`)."""


def floor_evidence(
    metric: Metric,
    task: Task,
    *,
    y_train: Any,
    y_holdout: Any,
    challenger: Scores,
    n_classes: int | None,
    resamples: int,
    seed: int,
) -> FloorEvidence:
    """The baseline's score and, for classifiers, the paired bootstrap of the lift.

    Classification only: macro-F1 and accuracy on a small holdout reward a lucky spread
    of guesses (a model of shuffled labels reaches +0.1 lift), while a regressor of noise
    stays at or below the mean's score, and r2 on a small holdout is too noisy to
    bootstrap (a real 0.28 on 24 rows has a negative lower bound).
    """
    found = baseline(metric, task, y_train, y_holdout, n_classes=n_classes)
    if found is None:
        return FloorEvidence(None, None)
    if task != "classification":
        return FloorEvidence(found.score, None)
    bootstrap = paired_bootstrap(
        y_holdout,
        found.scores,
        challenger,
        metric=metric,
        confidence=BASELINE_CONFIDENCE,
        resamples=resamples,
        seed=seed,
    )
    return FloorEvidence(found.score, bootstrap)
