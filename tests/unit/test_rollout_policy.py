"""The pure parts of staged rollouts: routing, deviation, evidence and the policy."""

from __future__ import annotations

from typing import Any

import pytest

from mlsys.registry import Rollout
from mlsys.rollout.policy import (
    Evidence,
    LiveQuality,
    RolloutPolicy,
    TrafficStats,
    collect_evidence,
    decide_rollout,
    percentile,
)
from mlsys.rollout.shadow import prediction_deviation
from mlsys.rollout.state import routes_to_candidate

POLICY = RolloutPolicy(min_requests=100, min_bake_seconds=600, min_breach_samples=30)
STARTED = "2026-01-01T00:00:00.000Z"


def evidence(
    *,
    champion: TrafficStats | None = None,
    candidate: TrafficStats | None = None,
    elapsed: float = 3600.0,
    deviation: float | None = None,
    quality: LiveQuality | None = None,
) -> Evidence:
    healthy = TrafficStats(requests=500, errors=0, p99_latency_ms=10.0)
    return Evidence(
        elapsed_seconds=elapsed,
        champion=champion or healthy,
        candidate=candidate or healthy,
        shadow_deviation=deviation,
        live_quality=quality,
    )


# --- routing -----------------------------------------------------------------------


def test_canary_split_is_deterministic_and_close_to_the_fraction() -> None:
    ids = [f"req-{i}" for i in range(10_000)]
    first = [routes_to_candidate(i, 0.3) for i in ids]
    assert first == [routes_to_candidate(i, 0.3) for i in ids]
    assert abs(sum(first) / len(ids) - 0.3) < 0.02
    # Growing the fraction only adds requests: a request on the candidate at 10 % stays there.
    at_ten = [routes_to_candidate(i, 0.1) for i in ids]
    assert all(thirty for ten, thirty in zip(at_ten, first, strict=True) if ten)
    assert abs(sum(at_ten) / len(ids) - 0.1) < 0.02


def test_uuid_request_ids_split_evenly_too() -> None:
    ids = [f"{i:08x}-1c2d-4e5f-8a9b-{i * 7919:012x}" for i in range(5000)]
    share = sum(routes_to_candidate(i, 0.5) for i in ids) / len(ids)
    assert abs(share - 0.5) < 0.03


# --- shadow deviation ------------------------------------------------------------------


def test_classifier_deviation_is_the_disagreement_rate() -> None:
    assert (
        prediction_deviation(
            ["a", "b", "c", "a"], ["a", "b", "a", "b"], classifier=True, scale=None
        )
        == 0.5
    )


def test_regression_deviation_is_scaled_by_the_target_spread() -> None:
    deviation = prediction_deviation([100.0, 200.0], [110.0, 190.0], classifier=False, scale=40.0)
    assert deviation == pytest.approx(0.25)
    # Without a usable scale: relative to the champion's mean magnitude.
    relative = prediction_deviation([100.0, 200.0], [110.0, 190.0], classifier=False, scale=0.0)
    assert relative == pytest.approx(10.0 / 150.0)
    assert prediction_deviation([], [], classifier=False, scale=1.0) == 0.0


# --- the policy ---------------------------------------------------------------------


def test_no_breach_with_enough_requests_and_bake_time_completes() -> None:
    verdict = decide_rollout("canary", evidence(), POLICY)
    assert verdict.action == "complete"
    assert "500 candidate requests" in verdict.reason


@pytest.mark.parametrize(
    ("requests", "elapsed", "waiting_for"),
    [(50, 3600.0, "50/100 candidate requests"), (500, 60.0, "baked 60/600 seconds")],
)
def test_too_little_evidence_is_pending(requests: int, elapsed: float, waiting_for: str) -> None:
    candidate = TrafficStats(requests=requests, errors=0, p99_latency_ms=10.0)
    verdict = decide_rollout("canary", evidence(candidate=candidate, elapsed=elapsed), POLICY)
    assert verdict.action == "pending"
    assert waiting_for in verdict.reason


def test_a_higher_error_rate_aborts_even_before_the_bake_time() -> None:
    candidate = TrafficStats(requests=90, errors=10, p99_latency_ms=10.0)  # 10 % errors
    verdict = decide_rollout("canary", evidence(candidate=candidate, elapsed=30.0), POLICY)
    assert verdict.action == "abort"
    assert "error rate 10.00% vs champion 0.00%" in verdict.reason


def test_an_error_rate_within_the_margin_does_not_abort() -> None:
    champion = TrafficStats(requests=990, errors=10, p99_latency_ms=10.0)  # 1 %
    candidate = TrafficStats(requests=490, errors=10, p99_latency_ms=10.0)  # 2 %
    assert (
        decide_rollout("canary", evidence(champion=champion, candidate=candidate), POLICY).action
        == "complete"
    )


def test_errors_on_too_few_requests_cannot_abort_yet() -> None:
    candidate = TrafficStats(requests=5, errors=5, p99_latency_ms=10.0)
    assert decide_rollout("canary", evidence(candidate=candidate), POLICY).action == "pending"


def test_p99_latency_beyond_ratio_plus_slack_aborts() -> None:
    slow = TrafficStats(requests=500, errors=0, p99_latency_ms=40.0)  # limit 10*1.5+5 = 20
    verdict = decide_rollout("canary", evidence(candidate=slow), POLICY)
    assert verdict.action == "abort"
    assert "p99 latency 40.0 ms vs champion 10.0 ms (limit 20.0 ms)" in verdict.reason
    within = TrafficStats(requests=500, errors=0, p99_latency_ms=19.0)
    assert decide_rollout("canary", evidence(candidate=within), POLICY).action == "complete"


def test_shadow_deviation_beyond_the_threshold_aborts_only_in_shadow_mode() -> None:
    far = evidence(deviation=0.6)
    verdict = decide_rollout("shadow", far, POLICY)
    assert verdict.action == "abort"
    assert "deviate 0.600" in verdict.reason
    assert decide_rollout("shadow", evidence(deviation=0.1), POLICY).action == "complete"
    assert "shadow comparisons" in decide_rollout("shadow", evidence(deviation=0.1), POLICY).reason


def test_worse_live_quality_aborts_once_there_is_feedback() -> None:
    worse = LiveQuality(
        metric="accuracy", higher_is_better=True, champion=0.9, candidate=0.8, candidate_samples=50
    )
    verdict = decide_rollout("canary", evidence(quality=worse), POLICY)
    assert verdict.action == "abort"
    assert "live accuracy 0.8000 vs champion 0.9000" in verdict.reason
    lower_is_better = LiveQuality(
        metric="mae", higher_is_better=False, champion=10.0, candidate=9.0, candidate_samples=50
    )
    assert decide_rollout("canary", evidence(quality=lower_is_better), POLICY).action == "complete"
    too_few = LiveQuality(
        metric="accuracy", higher_is_better=True, champion=0.9, candidate=0.1, candidate_samples=3
    )
    assert decide_rollout("canary", evidence(quality=too_few), POLICY).action == "complete"


def test_policy_margins_are_validated() -> None:
    with pytest.raises(ValueError, match="max_p99_latency_ratio"):
        RolloutPolicy(max_p99_latency_ratio=0.5)
    with pytest.raises(ValueError, match="min_requests"):
        RolloutPolicy(min_requests=0)


def test_rollout_state_validates_the_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        Rollout(mode="canary", candidate="v2", started=STARTED, fraction=1.5)
    with pytest.raises(ValueError, match="no fraction"):
        Rollout(mode="shadow", candidate="v2", started=STARTED, fraction=0.5)
    canary = Rollout(mode="canary", candidate="v2", started=STARTED, fraction=0.3, reason="r")
    assert Rollout.from_dict(canary.to_dict()) == canary


# --- evidence from events ----------------------------------------------------------------


def event(
    kind: str, version: str, time: str = "2026-01-01T00:10:00Z", **data: Any
) -> dict[str, Any]:
    return {"type": kind, "model_version": version, "time": time, "data": data}


def test_evidence_counts_each_versions_requests_errors_and_latency() -> None:
    rollout = Rollout(mode="canary", candidate="v2", started=STARTED, fraction=0.3)
    events = [
        *(event("prediction", "v1", latency_ms=float(i)) for i in range(1, 101)),
        *(event("prediction", "v2", latency_ms=5.0) for _ in range(20)),
        event("error", "v2"),
        event("error", "v1"),
        event("prediction", "v0", latency_ms=1.0),  # another version: ignored
        event("prediction", "v2", time="2025-12-31T23:59:59Z", latency_ms=999.0),  # before start
    ]
    found = collect_evidence(
        events, rollout=rollout, champion_version="v1", now="2026-01-01T01:00:00Z"
    )
    assert found.champion == TrafficStats(requests=100, errors=1, p99_latency_ms=99.0)
    assert found.candidate == TrafficStats(requests=20, errors=1, p99_latency_ms=5.0)
    assert found.elapsed_seconds == 3600.0
    assert found.shadow_deviation is None


def test_shadow_evidence_weights_deviation_by_records_and_counts_candidate_failures() -> None:
    rollout = Rollout(mode="shadow", candidate="v2", started=STARTED)
    events = [
        event(
            "shadow",
            "v2",
            candidate_version="v2",
            records=1,
            deviation=0.4,
            candidate_latency_ms=2.0,
        ),
        event(
            "shadow",
            "v2",
            candidate_version="v2",
            records=3,
            deviation=0.0,
            candidate_latency_ms=4.0,
        ),
        event("shadow", "v2", candidate_version="v2", records=1, candidate_error="ValueError: x"),
        event("shadow", "v9", candidate_version="v9", records=1, deviation=1.0),  # other rollout
    ]
    found = collect_evidence(
        events, rollout=rollout, champion_version="v1", now="2026-01-01T00:20:00Z"
    )
    assert found.shadow_deviation == pytest.approx(0.1)
    assert found.candidate == TrafficStats(requests=2, errors=1, p99_latency_ms=4.0)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 99.0) is None
    assert percentile([3.0, 1.0, 2.0], 50.0) == 2.0
    assert percentile([float(i) for i in range(1, 201)], 99.0) == 198.0
