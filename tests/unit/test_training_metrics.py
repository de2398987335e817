"""Champion predictions in the current data's terms, and the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.contract import Prediction
from mlsys.metrics import METRICS, Scores
from training_job.evaluation import paired_bootstrap, scores_from_prediction


def test_champion_labels_are_mapped_into_the_current_classes() -> None:
    # The champion knew classes (a, b); the data now has (a, b, c).
    prediction = Prediction(
        values=["b", "a", "z"], probabilities=np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    )
    scores = scores_from_prediction(
        prediction, task="classification", classes=("a", "b", "c"), model_classes=("a", "b")
    )
    assert scores.labels is not None
    assert scores.labels.tolist() == [1, 0, -1]
    assert scores.probabilities is not None
    assert scores.probabilities[0].tolist() == pytest.approx([0.2, 0.8, 0.0])


def test_clearly_better_challenger_is_significant() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    good = Scores(values=y + rng.normal(scale=0.2, size=300))
    bad = Scores(values=y + rng.normal(scale=1.0, size=300))
    result = paired_bootstrap(y, bad, good, metric=METRICS["r2"], confidence=0.95, resamples=300)
    assert result.improvement > 0.5
    assert result.lower > 0
    assert result.probability_not_better == 0.0


def test_identical_models_are_never_significant() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=100)
    same = Scores(values=y + rng.normal(size=100))
    result = paired_bootstrap(y, same, same, metric=METRICS["r2"], confidence=0.9, resamples=200)
    assert result.improvement == 0.0
    assert result.lower <= 0.0


def test_bootstrap_handles_lower_is_better_metrics_and_is_seeded() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    better = Scores(values=y + rng.normal(scale=0.3, size=200))
    worse = Scores(values=y + rng.normal(scale=0.6, size=200))
    first = paired_bootstrap(
        y, worse, better, metric=METRICS["rmse"], confidence=0.95, resamples=200, seed=3
    )
    again = paired_bootstrap(
        y, worse, better, metric=METRICS["rmse"], confidence=0.95, resamples=200, seed=3
    )
    assert first.improvement > 0  # lower RMSE is an improvement
    assert first.lower > 0
    assert first == again


def test_small_difference_on_a_small_holdout_is_not_significant() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=30)
    a = Scores(values=y + rng.normal(scale=1.0, size=30))
    b = Scores(values=a.values + rng.normal(scale=0.05, size=30))  # type: ignore[operator]
    result = paired_bootstrap(y, a, b, metric=METRICS["r2"], confidence=0.99, resamples=300)
    assert result.lower < 0 < result.probability_not_better
