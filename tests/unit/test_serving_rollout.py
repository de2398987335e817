"""Serving honours rollouts on its next refresh: canary split, shadow events, evaluate step."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.eventlog import Event, SqliteEventLog
from mlsys.registry import ModelRegistry
from mlsys.rollout.evaluation import evaluate_rollout
from mlsys.rollout.policy import RolloutPolicy
from mlsys.rollout.state import end_rollout, routes_to_candidate, start_rollout
from mlsys.settings import Settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish
from tests.unit.test_handler_hot_swap import REFRESH, ManualClock

FAST_POLICY = RolloutPolicy(
    min_requests=50,
    min_bake_seconds=0.0,
    min_breach_samples=20,
    # Measured latencies depend on the machine's load; these tests are not about them.
    p99_latency_slack_ms=1e9,
)


@pytest.fixture(scope="module")
def champion() -> BuiltModel:
    return build_regression(version="20260101T000000Z-000001", alpha=1.0)


@pytest.fixture(scope="module")
def candidate() -> BuiltModel:
    return build_regression(version="20260102T000000Z-000002", alpha=0.01)


def serve(tmp_path: Path, clock: ManualClock) -> tuple[Api, ModelRegistry, SqliteEventLog]:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        model_refresh_seconds=REFRESH,
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
    )
    registry = ModelRegistry.open(settings.registry_uri, model_name="default")
    api = Api(InferenceService.from_settings(settings, clock=clock, emit_metrics=False))
    return api, registry, SqliteEventLog(tmp_path / "log.sqlite3")


def answer(api: Api, record: list[float], request_id: str) -> dict[str, object]:
    event = api_event("POST", "/stream", body={"data": record}, request_id=request_id)
    response = api.handle_predict(event)
    assert response["statusCode"] == 200, response["body"]
    body: dict[str, object] = body_of(response)
    return body


def with_candidate(registry: ModelRegistry, champion: BuiltModel, candidate: BuiltModel) -> None:
    publish(registry, champion)
    registry.register(candidate.card, candidate.model_bytes)


def test_a_canary_answers_its_share_of_request_ids_and_says_so(
    tmp_path: Path, champion: BuiltModel, candidate: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry, _ = serve(tmp_path, clock)
    with_candidate(registry, champion, candidate)
    record = champion.frame.iloc[0].tolist()
    assert answer(api, record, "warm-up")["model_version"] == champion.card.version
    start_rollout(
        registry,
        candidate.card.version,
        mode="canary",
        fraction=0.3,
        reason="test",
        actor="tests",
        expected=registry.require_champion(),
    )
    clock.advance(REFRESH)
    ids = [f"req-{i}" for i in range(400)]
    versions = [answer(api, record, i)["model_version"] for i in ids]
    expected = [
        candidate.card.version if routes_to_candidate(i, 0.3) else champion.card.version
        for i in ids
    ]
    assert versions == expected
    on_candidate = versions.count(candidate.card.version)
    assert 100 <= on_candidate <= 140  # 30 % of 400 = 120
    # The candidate's answers are the candidate's predictions.
    by_candidate = next(i for i in ids if routes_to_candidate(i, 0.3))
    assert answer(api, record, by_candidate)["result"] == pytest.approx(
        candidate.expected[0], rel=1e-4
    )

    end_rollout(registry, complete=False, reason="abort", actor="tests")
    clock.advance(REFRESH)
    assert {answer(api, record, i)["model_version"] for i in ids} == {champion.card.version}


def test_shadow_logs_the_candidates_output_and_serves_the_champion(
    tmp_path: Path, champion: BuiltModel, candidate: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry, log = serve(tmp_path, clock)
    with_candidate(registry, champion, candidate)
    start_rollout(
        registry,
        candidate.card.version,
        mode="shadow",
        fraction=None,
        reason="test",
        actor="tests",
        expected=registry.require_champion(),
    )
    records = champion.frame.iloc[:60].values.tolist()
    answers = [answer(api, r, f"s-{i}") for i, r in enumerate(records)]
    assert {a["model_version"] for a in answers} == {champion.card.version}
    assert [a["result"] for a in answers] == pytest.approx(list(champion.expected[:60]), rel=1e-4)

    shadows = log.query(limit=100, event_type="shadow").events
    assert len(shadows) == 60
    newest = shadows[0]
    assert newest.request_id == "s-59"
    assert newest.data["champion_version"] == champion.card.version
    assert newest.data["candidate_version"] == candidate.card.version
    assert newest.data["champion"]["outputs"] == pytest.approx(champion.expected[59], rel=1e-4)
    assert newest.data["candidate"]["outputs"] == pytest.approx(candidate.expected[59], rel=1e-4)
    assert 0.0 < newest.data["deviation"] < 1.0

    # The evaluate step completes the rollout on this evidence (similar models, no errors),
    # and the candidate answers everything after the next refresh.
    result = evaluate_rollout(registry, log, policy=FAST_POLICY, actor="tests")
    assert result.verdict is not None
    assert (result.verdict.action, result.applied) == ("complete", True)
    assert result.evidence is not None
    assert result.evidence.candidate.requests == 60
    assert registry.require_champion().version == candidate.card.version
    clock.advance(REFRESH)
    assert answer(api, records[0], "after")["model_version"] == candidate.card.version
    recorded = log.query(limit=5, event_type="training").events[0]
    assert recorded.data["action"] == "rollout_complete"


def test_a_candidate_that_fails_to_load_leaves_the_champion_answering(
    tmp_path: Path, champion: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry, _ = serve(tmp_path, clock)
    publish(registry, champion)
    broken = champion.card.from_dict({**champion.card.to_dict(), "version": "20260105T000000Z-bad"})
    registry.register(broken, b"\x00 not a model")
    start_rollout(
        registry,
        broken.version,
        mode="canary",
        fraction=0.9,
        reason="test",
        actor="tests",
        expected=registry.require_champion(),
    )
    record = champion.frame.iloc[0].tolist()
    versions = {answer(api, record, f"r-{i}")["model_version"] for i in range(30)}
    assert versions == {champion.card.version}


def test_evaluate_aborts_on_recorded_evidence_of_a_failing_candidate(
    tmp_path: Path, champion: BuiltModel, candidate: BuiltModel
) -> None:
    _, registry, log = serve(tmp_path, ManualClock())
    with_candidate(registry, champion, candidate)
    started = start_rollout(
        registry,
        candidate.card.version,
        mode="canary",
        fraction=0.5,
        reason="test",
        actor="tests",
        expected=registry.require_champion(),
    )
    assert started.rollout is not None
    champ, cand = champion.card.version, candidate.card.version
    log.append_many(
        [
            *(
                Event(type="prediction", model_version=champ, data={"latency_ms": 2.0})
                for _ in range(40)
            ),
            *(
                Event(type="prediction", model_version=cand, data={"latency_ms": 2.0})
                for _ in range(30)
            ),
            *(Event(type="error", model_version=cand, data={"code": "x"}) for _ in range(10)),
        ]
    )
    pending = evaluate_rollout(registry, log, policy=FAST_POLICY, actor="tests", apply=False)
    assert pending.verdict is not None
    assert pending.verdict.action == "abort"
    assert registry.require_champion().rollout is not None  # apply=False changes nothing

    result = evaluate_rollout(registry, log, policy=FAST_POLICY, actor="tests")
    assert result.applied
    assert result.verdict is not None
    assert "error rate 25.00% vs champion 0.00%" in result.verdict.reason
    pointer = registry.require_champion()
    assert (pointer.version, pointer.rollout) == (champ, None)
    assert registry.history()[-1]["action"] == "rollout_abort"
    # Nothing left to evaluate.
    assert evaluate_rollout(registry, log, policy=FAST_POLICY, actor="tests").verdict is None


def test_health_shows_the_rollout_and_both_versions_traffic_and_live_quality(
    tmp_path: Path, champion: BuiltModel, candidate: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry, _ = serve(tmp_path, clock)
    with_candidate(registry, champion, candidate)
    record = champion.frame.iloc[0].tolist()
    answer(api, record, "warm-up")
    health = body_of(api.handle_admin(api_event("GET", "/health")))
    assert health["rollout"] == {"state": "none"}

    start_rollout(
        registry,
        candidate.card.version,
        mode="canary",
        fraction=0.5,
        reason="test",
        actor="tests",
        expected=registry.require_champion(),
    )
    clock.advance(REFRESH)
    ids = [f"req-{i}" for i in range(40)]
    for request_id in ids:
        answer(api, record, request_id)
    feedback = {"data": [{"request_id": i, "actual": 150.0} for i in ids]}
    response = api.handle_predict(api_event("POST", "/feedback", body=feedback))
    assert response["statusCode"] in (200, 202), response["body"]

    health = body_of(api.handle_admin(api_event("GET", "/health")))
    rollout = health["rollout"]
    assert health["model_version"] == champion.card.version
    assert {k: rollout[k] for k in ("state", "candidate", "fraction", "candidate_loaded")} == {
        "state": "canary",
        "candidate": candidate.card.version,
        "fraction": 0.5,
        "candidate_loaded": True,
    }
    on_candidate = sum(routes_to_candidate(i, 0.5) for i in ids)
    evidence = rollout["evidence"]
    assert evidence["candidate"]["requests"] == on_candidate
    assert evidence["champion"]["requests"] == len(ids) - on_candidate  # since it started
    quality = evidence["live_quality"]
    assert quality["metric"] == champion.card.metric
    assert quality["candidate_samples"] == on_candidate
    assert quality["champion"] is not None
    assert quality["candidate"] is not None
