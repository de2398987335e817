"""The quality floor: the trivial baseline and the pure rule built on it."""

from __future__ import annotations

import numpy as np
import pytest

from mlsys.metrics import METRICS
from training_job.baseline import baseline, baseline_scores
from training_job.evaluation import BootstrapResult
from training_job.policy import (
    ChallengerMetrics,
    ChampionMetrics,
    PromotionPolicy,
    baseline_lift,
    decide_promotion,
)


def challenger(
    score: float,
    baseline_score: float,
    *,
    metric: str = "r2",
    best: float = 1.0,
    lower: float | None = None,
    failures: tuple[str, ...] = (),
) -> ChallengerMetrics:
    bootstrap = (
        None
        if lower is None
        else BootstrapResult(
            confidence=0.95, resamples=100, improvement=0.1, lower=lower, probability_not_better=0.1
        )
    )
    return ChallengerMetrics(
        metric=metric,
        score=score,
        higher_is_better=METRICS[metric].higher_is_better,
        baseline_score=baseline_score,
        best_possible=best,
        baseline_bootstrap=bootstrap,
        guardrail_failures=failures,
    )


def test_lift_is_the_share_of_the_gap_to_perfect_that_is_closed() -> None:
    assert baseline_lift(challenger(0.45, 0.0)) == pytest.approx(0.45)
    # Error metrics: the fraction of the baseline's error removed.
    assert baseline_lift(challenger(60.0, 80.0, metric="rmse", best=0.0)) == pytest.approx(0.25)
    assert baseline_lift(challenger(0.7, 0.6, metric="accuracy")) == pytest.approx(0.25)
    assert baseline_lift(ChallengerMetrics(metric="r2", score=0.5)) is None


def test_a_challenger_below_the_floor_is_not_promoted_even_without_a_champion() -> None:
    decision = decide_promotion(None, challenger(0.02, -0.005), PromotionPolicy())
    assert (decision.promote, decision.code) == (False, "below_baseline")
    assert decision.reason == (
        "not better than the trivial baseline: challenger r2 = 0.0200 vs baseline r2 = -0.0050 "
        "(lift +0.0249 < --min-baseline-lift 0.05)"
    )
    assert decision.to_dict()["baseline_score"] == -0.005


def test_the_floor_applies_before_beating_a_worse_champion() -> None:
    # The case: the champion scores badly on noise, so "beats the champion" holds.
    decision = decide_promotion(
        ChampionMetrics(version="v1", score=-0.6443), challenger(-0.0699, -0.001), PromotionPolicy()
    )
    assert (decision.promote, decision.code) == (False, "below_baseline")


def test_real_skill_passes_the_floor() -> None:
    decision = decide_promotion(None, challenger(0.45, 0.0), PromotionPolicy())
    assert (decision.promote, decision.code) == (True, "no_champion")
    better = decide_promotion(
        ChampionMetrics(version="v1", score=0.40), challenger(0.45, 0.0), PromotionPolicy()
    )
    assert (better.promote, better.code) == (True, "improved")


def test_an_insignificant_lift_is_below_the_baseline() -> None:
    decision = decide_promotion(
        None, challenger(0.40, 0.33, metric="f1_macro", lower=-0.05), PromotionPolicy()
    )
    assert decision.code == "below_baseline"
    assert "not significant: bootstrap lower bound -0.0500" in decision.reason
    significant = challenger(0.60, 0.33, metric="f1_macro", lower=0.1)
    assert decide_promotion(None, significant, PromotionPolicy()).promote


def test_a_guardrail_failure_still_wins_over_the_floor() -> None:
    decision = decide_promotion(None, challenger(0.0, 0.0, failures=("size",)), PromotionPolicy())
    assert decision.code == "guardrail_failed"


def test_the_floor_can_be_lowered() -> None:
    assert decide_promotion(
        None, challenger(0.02, 0.0), PromotionPolicy(min_baseline_lift=0.0)
    ).promote


def test_baselines_predict_the_training_mean_or_majority_class() -> None:
    mean = baseline_scores("regression", np.array([1.0, 2.0, 6.0]), holdout_rows=2, n_classes=None)
    assert mean.values is not None
    assert mean.values.tolist() == [3.0, 3.0]
    majority = baseline_scores(
        "classification", np.array([0, 1, 1, 2]), holdout_rows=2, n_classes=3
    )
    assert majority.labels is not None
    assert majority.probabilities is not None
    assert majority.labels.tolist() == [1, 1]
    assert majority.probabilities[0].tolist() == [0.25, 0.5, 0.25]


def test_macro_f1_baseline_is_frequency_guessing_when_that_scores_higher() -> None:
    y_train = np.repeat([0, 1, 2], 100)
    y_holdout = np.repeat([0, 1, 2], 30)
    found = baseline(METRICS["f1_macro"], "classification", y_train, y_holdout, n_classes=3)
    assert found is not None
    # Majority class: F1 0.5 on one class of three = 0.167; guessing scores about 1/3.
    assert found.score == pytest.approx(1 / 3, abs=0.07)
    accuracy = baseline(METRICS["accuracy"], "classification", y_train, y_holdout, n_classes=3)
    assert accuracy is not None
    assert accuracy.score == pytest.approx(1 / 3, abs=0.07)
