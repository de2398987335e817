"""The promotion policy decides from holdout evidence alone (pure function)."""

from __future__ import annotations

import pytest

from training_job.evaluation import BootstrapResult
from training_job.policy import (
    ChallengerMetrics,
    ChampionMetrics,
    PromotionPolicy,
    decide_promotion,
)


def challenger(score: float, **kwargs: object) -> ChallengerMetrics:
    return ChallengerMetrics(metric="r2", score=score, **kwargs)  # type: ignore[arg-type]


def champion(score: float | None, change: str | None = None) -> ChampionMetrics:
    return ChampionMetrics(version="v1", score=score, schema_change=change)


def bootstrap(lower: float) -> BootstrapResult:
    return BootstrapResult(
        confidence=0.95, resamples=100, improvement=0.05, lower=lower, probability_not_better=0.5
    )


def test_first_model_is_promoted_when_there_is_no_champion() -> None:
    decision = decide_promotion(None, challenger(0.1), PromotionPolicy())
    assert decision.promote
    assert decision.code == "no_champion"


def test_better_challenger_is_promoted_with_the_improvement_reported() -> None:
    decision = decide_promotion(champion(0.40), challenger(0.45), PromotionPolicy())
    assert decision.promote
    assert decision.code == "improved"
    assert decision.improvement == pytest.approx(0.05)
    assert "0.4500" in decision.reason
    assert "0.4000" in decision.reason


def test_equal_score_is_not_an_improvement() -> None:
    decision = decide_promotion(champion(0.45), challenger(0.45), PromotionPolicy())
    assert not decision.promote
    assert decision.code == "not_improved"


def test_worse_challenger_is_not_promoted() -> None:
    decision = decide_promotion(champion(0.50), challenger(0.45), PromotionPolicy())
    assert not decision.promote
    assert decision.improvement == pytest.approx(-0.05)


@pytest.mark.parametrize(("score", "promote"), [(0.409, False), (0.411, True)])
def test_min_improvement_is_an_absolute_threshold(score: float, promote: bool) -> None:
    decision = decide_promotion(
        champion(0.40), challenger(score), PromotionPolicy(min_improvement=0.01)
    )
    assert decision.promote is promote
    if not promote:
        assert decision.code == "below_min_improvement"


def test_lower_is_better_metrics_invert_the_comparison() -> None:
    lower_rmse = ChallengerMetrics(metric="rmse", score=9.0, higher_is_better=False)
    decision = decide_promotion(champion(10.0), lower_rmse, PromotionPolicy(min_improvement=0.5))
    assert decision.promote
    assert decision.improvement == pytest.approx(1.0)
    higher_rmse = ChallengerMetrics(metric="rmse", score=11.0, higher_is_better=False)
    assert not decide_promotion(champion(10.0), higher_rmse, PromotionPolicy()).promote


def test_guardrail_failure_blocks_even_a_first_model() -> None:
    failing = challenger(0.9, guardrail_failures=("parity: max diff 3 > 0.01",))
    for current in (None, champion(0.1)):
        decision = decide_promotion(current, failing, PromotionPolicy())
        assert not decision.promote
        assert decision.code == "guardrail_failed"
        assert "parity" in decision.reason


def test_confidence_requires_a_positive_bootstrap_lower_bound() -> None:
    policy = PromotionPolicy(confidence=0.95)
    significant = decide_promotion(
        champion(0.4), challenger(0.45, bootstrap=bootstrap(0.01)), policy
    )
    assert significant.promote
    noisy = decide_promotion(champion(0.4), challenger(0.45, bootstrap=bootstrap(-0.02)), policy)
    assert not noisy.promote
    assert noisy.code == "not_significant"
    missing = decide_promotion(champion(0.4), challenger(0.45), policy)
    assert not missing.promote


def test_schema_change_blocks_unless_allowed() -> None:
    cannot_score = champion(None, change="the new data lacks the champion's input column(s) 'x'")
    blocked = decide_promotion(cannot_score, challenger(0.3), PromotionPolicy())
    assert not blocked.promote
    assert blocked.code == "schema_changed"
    assert "--allow-schema-change" in blocked.reason
    allowed = decide_promotion(
        cannot_score, challenger(0.3), PromotionPolicy(allow_schema_change=True)
    )
    assert allowed.promote
    assert allowed.code == "schema_change_allowed"


def test_allowed_schema_change_still_needs_to_beat_a_champion_that_can_score() -> None:
    scoreable = champion(0.5, change="new input(s) 'z'")
    policy = PromotionPolicy(allow_schema_change=True)
    assert not decide_promotion(scoreable, challenger(0.4), policy).promote
    assert decide_promotion(scoreable, challenger(0.6), policy).promote
    assert not decide_promotion(scoreable, challenger(0.6), PromotionPolicy()).promote


@pytest.mark.parametrize(
    "kwargs", [{"min_improvement": -0.1}, {"confidence": 1.0}, {"confidence": 0.0}]
)
def test_policy_rejects_meaningless_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PromotionPolicy(**kwargs)  # type: ignore[arg-type]
