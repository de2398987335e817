"""The promotion policy: a pure function from holdout evidence to a decision.

Rules, in order (the first that applies decides):

1. A failed guardrail blocks promotion.
1b. Quality floor: the challenger must beat the trivial baseline (training mean or
   majority class, scored the same way on the same holdout) by ``min_baseline_lift``
   (:func:`baseline_lift`), champion or not; else ``below_baseline``.
2. No champion: promote.
3. Schema change (the champion cannot score the new data, or the challenger
   needs different inputs than the champion): blocked unless
   ``allow_schema_change``. When allowed and the champion could not score,
   promote; when it could, the comparison below still applies.
4. The challenger must beat the champion on the primary metric: improvement
   (sign-adjusted so positive = better) strictly above zero and at least
   ``min_improvement``. An identical retrain (improvement 0) is not promoted.
5. With ``confidence`` set, the paired-bootstrap one-sided lower bound of the
   improvement at that level must be above zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training_job.evaluation import BootstrapResult


@dataclass(frozen=True, kw_only=True)
class PromotionPolicy:
    min_improvement: float = 0.0
    confidence: float | None = None
    allow_schema_change: bool = False
    min_baseline_lift: float = 0.05
    """Skill over the trivial baseline needed (see :func:`baseline_lift`). 0.05 refuses a
    model that removes less than 5 % of the baseline's error: pure noise scores at or below
    0, the bundled diabetes data about 0.45."""

    def __post_init__(self) -> None:
        if self.min_improvement < 0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement}")
        if self.confidence is not None and not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True, kw_only=True)
class ChallengerMetrics:
    metric: str
    score: float
    higher_is_better: bool = True
    guardrail_failures: tuple[str, ...] = ()
    bootstrap: BootstrapResult | None = None
    """Paired bootstrap of challenger vs champion (only when ``confidence`` is set)."""
    baseline_score: float | None = None
    """The trivial baseline's score on the same holdout (``None``: not computed)."""
    best_possible: float | None = None
    """The metric's perfect score (1 for r2/accuracy/f1/AUC, 0 for error metrics)."""
    baseline_bootstrap: BootstrapResult | None = None
    """Paired bootstrap of challenger vs baseline: its lower bound must be above zero, so a
    lift that small-holdout luck explains does not count."""


@dataclass(frozen=True, kw_only=True)
class ChampionMetrics:
    version: str
    score: float | None
    """``None`` when the champion could not score the holdout."""
    schema_change: str | None = None
    """Why the new data or challenger does not fit the champion's schema, if it does not."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    promote: bool
    code: str
    """Stable machine-readable outcome: ``no_champion``, ``improved``, ``not_improved``,
    ``below_min_improvement``, ``not_significant``, ``guardrail_failed``, ``below_baseline``,
    ``schema_changed``, ``schema_change_allowed``."""
    reason: str
    improvement: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "code": self.code,
            "reason": self.reason,
            "improvement": self.improvement,
            **self.details,
        }


def improvement_of(challenger: ChallengerMetrics, champion_score: float) -> float:
    """Positive when the challenger is better, whichever direction the metric runs."""
    delta = challenger.score - champion_score
    return delta if challenger.higher_is_better else -delta


def baseline_lift(challenger: ChallengerMetrics) -> float | None:
    """Skill score: the share of the gap between baseline and a perfect score the
    challenger closes. ``(score - baseline) / (perfect - baseline)``: for r2 (baseline
    about 0) it is about r2; for rmse, the fraction of the baseline's error removed.
    Unit-free, so one default works for every metric. ``None`` when not computable."""
    baseline, perfect = challenger.baseline_score, challenger.best_possible
    if baseline is None or perfect is None:
        return None
    gap = perfect - baseline
    if gap == 0.0:
        return 0.0 if challenger.score == baseline else -1.0
    return (challenger.score - baseline) / gap


def _below_baseline(
    challenger: ChallengerMetrics, policy: PromotionPolicy, details: dict[str, Any]
) -> Decision | None:
    lift = baseline_lift(challenger)
    if lift is None:
        return None
    details["baseline_score"] = challenger.baseline_score
    details["baseline_lift"] = lift
    details["min_baseline_lift"] = policy.min_baseline_lift
    bootstrap = challenger.baseline_bootstrap
    if bootstrap is not None:
        details["baseline_bootstrap"] = bootstrap.to_dict()
    versus = (
        f"challenger {challenger.metric} = {challenger.score:.4f} vs baseline "
        f"{challenger.metric} = {challenger.baseline_score:.4f}"
    )
    if lift < policy.min_baseline_lift:
        why = f"lift {lift:+.4f} < --min-baseline-lift {policy.min_baseline_lift}"
    elif bootstrap is not None and bootstrap.lower <= 0.0:
        why = (
            f"lift {lift:+.4f} is not significant: bootstrap lower bound {bootstrap.lower:+.4f} "
            f"at confidence {bootstrap.confidence}"
        )
    else:
        return None
    return Decision(
        promote=False,
        code="below_baseline",
        reason=f"not better than the trivial baseline: {versus} ({why})",
        details=details,
    )


def _gate(
    champion: ChampionMetrics | None,
    challenger: ChallengerMetrics,
    policy: PromotionPolicy,
    details: dict[str, Any],
) -> Decision | None:
    """Rules 1-3: decisions that need no score comparison (``None``: compare scores)."""
    if challenger.guardrail_failures:
        return Decision(
            promote=False,
            code="guardrail_failed",
            reason="guardrail failed: " + "; ".join(challenger.guardrail_failures),
            details=details,
        )
    if champion is None:
        return Decision(
            promote=True,
            code="no_champion",
            reason=f"no champion yet; challenger {challenger.metric} = {challenger.score:.4f}",
            details=details,
        )
    if champion.schema_change is not None and not policy.allow_schema_change:
        return Decision(
            promote=False,
            code="schema_changed",
            reason=(
                f"schema changed: {champion.schema_change}; not promoted "
                "(use --allow-schema-change to promote anyway)"
            ),
            details=details,
        )
    if champion.score is None:
        if champion.schema_change is None:
            # Defensive: a champion that could not score must carry a schema_change reason.
            return Decision(
                promote=False,
                code="schema_changed",
                reason=f"champion {champion.version} could not score the holdout; not promoted",
                details=details,
            )
        return Decision(
            promote=True,
            code="schema_change_allowed",
            reason=(
                f"schema changed: {champion.schema_change}; champion {champion.version} "
                "cannot score the new data; promoted because schema changes are allowed"
            ),
            details=details,
        )
    return None


def decide_promotion(
    champion_metrics: ChampionMetrics | None,
    challenger_metrics: ChallengerMetrics,
    policy: PromotionPolicy,
) -> Decision:
    """Decide whether the challenger replaces the champion (see module docstring)."""
    challenger = challenger_metrics
    metric = challenger.metric
    details: dict[str, Any] = {
        "metric": metric,
        "min_improvement": policy.min_improvement,
        "confidence": policy.confidence,
    }
    gated = _gate(champion_metrics, challenger, policy, details)
    if gated is None or gated.promote:
        # The quality floor applies with or without a champion (rule 1b).
        gated = _below_baseline(challenger, policy, details) or gated
    if gated is not None:
        return gated
    assert champion_metrics is not None
    assert champion_metrics.score is not None
    champion = champion_metrics
    improvement = improvement_of(challenger, champion_metrics.score)
    versus = (
        f"challenger {metric} = {challenger.score:.4f} vs champion {champion.version} "
        f"{metric} = {champion_metrics.score:.4f} (improvement {improvement:+.4f})"
    )
    code, reason = "improved", f"better: {versus}"
    if improvement <= 0.0:
        code, reason = "not_improved", f"not better: {versus}"
    elif improvement < policy.min_improvement:
        code = "below_min_improvement"
        reason = f"improvement below the minimum {policy.min_improvement}: {versus}"
    elif policy.confidence is not None:
        bootstrap = challenger.bootstrap
        if bootstrap is None or bootstrap.lower <= 0.0:
            bound = "unavailable" if bootstrap is None else f"{bootstrap.lower:+.4f}"
            code = "not_significant"
            reason = (
                f"improvement not significant at confidence {policy.confidence}: "
                f"bootstrap lower bound {bound}; {versus}"
            )
    return Decision(
        promote=code == "improved",
        code=code,
        reason=reason,
        improvement=improvement,
        details=details,
    )
