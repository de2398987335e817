"""Live quality from feedback decides a rollout once the true outcomes come back."""

from __future__ import annotations

from pathlib import Path

from mlsys.eventlog import Event, SqliteEventLog
from mlsys.registry import ModelRegistry
from mlsys.rollout.evaluation import evaluate_rollout
from mlsys.rollout.policy import RolloutPolicy
from mlsys.rollout.quality import feedback_live_quality
from mlsys.rollout.state import start_rollout
from tests.unit.test_registry_store import make_card

POLICY = RolloutPolicy(min_requests=10, min_bake_seconds=0.0, min_breach_samples=30)


def setup(tmp_path: Path, *, mode: str) -> tuple[ModelRegistry, SqliteEventLog]:
    registry = ModelRegistry.open(str(tmp_path / "registry"), model_name="m")
    for version in ("v1", "v2"):
        registry.register(make_card(version), b"onnx")
    first = registry.promote("v1", reason="first", actor="t", expected=None)
    start_rollout(
        registry,
        "v2",
        mode="canary" if mode == "canary" else "shadow",
        fraction=0.5 if mode == "canary" else None,
        reason="t",
        actor="t",
        expected=first,
    )
    return registry, SqliteEventLog(tmp_path / "log.sqlite3")


def feedback(request_ids: list[str], actual: float) -> Event:
    items = [{"request_id": r, "index": 0, "actual": actual + i} for i, r in enumerate(request_ids)]
    return Event(type="feedback", model_version="v1", data={"items": items})


def test_a_canary_whose_answers_prove_wrong_is_aborted(tmp_path: Path) -> None:
    registry, log = setup(tmp_path, mode="canary")
    champion_ids = [f"c{i}" for i in range(40)]
    candidate_ids = [f"k{i}" for i in range(40)]
    events = [
        *(
            Event(
                type="prediction",
                model_version="v1",
                request_id=r,
                data={"endpoint": "stream", "outputs": 100.0 + i, "latency_ms": 1.0},
            )
            for i, r in enumerate(champion_ids)
        ),
        *(
            Event(
                type="prediction",
                model_version="v2",
                request_id=r,
                data={"endpoint": "stream", "outputs": 50.0, "latency_ms": 1.0},
            )
            for r in candidate_ids
        ),
    ]
    log.append_many(events)
    log.append(feedback(champion_ids, 100.0))
    log.append(feedback(candidate_ids, 100.0))
    quality = feedback_live_quality(registry)
    pointer = registry.require_champion()
    assert pointer.rollout is not None
    live = quality(log, pointer.rollout, "v1")
    assert live is not None
    assert (live.metric, live.higher_is_better, live.candidate_samples) == ("r2", True, 40)
    assert live.champion == 1.0
    assert live.candidate is not None
    assert live.candidate < 0.0

    result = evaluate_rollout(registry, log, policy=POLICY, actor="t", live_quality=quality)
    assert result.verdict is not None
    assert result.verdict.action == "abort"
    assert "live r2" in result.verdict.reason
    assert registry.require_champion().version == "v1"


def test_shadow_outputs_are_scored_on_the_same_requests(tmp_path: Path) -> None:
    registry, log = setup(tmp_path, mode="shadow")
    ids = [f"r{i}" for i in range(40)]
    for i, r in enumerate(ids):
        log.append(
            Event(
                type="prediction",
                model_version="v1",
                request_id=r,
                data={"endpoint": "stream", "outputs": 10.0 + i, "latency_ms": 1.0},
            )
        )
        log.append(
            Event(
                type="shadow",
                model_version="v2",
                request_id=r,
                data={
                    "endpoint": "stream",
                    "candidate_version": "v2",
                    "champion_version": "v1",
                    "candidate": {"outputs": 10.0 + i},
                    "deviation": 0.0,
                    "candidate_latency_ms": 1.0,
                    "records": 1,
                },
            )
        )
    log.append(feedback(ids, 10.0))
    pointer = registry.require_champion()
    assert pointer.rollout is not None
    live = feedback_live_quality(registry)(log, pointer.rollout, "v1")
    assert live is not None
    assert (live.champion, live.candidate, live.candidate_samples) == (1.0, 1.0, 40)


def test_no_feedback_means_no_live_quality(tmp_path: Path) -> None:
    registry, log = setup(tmp_path, mode="canary")
    pointer = registry.require_champion()
    assert pointer.rollout is not None
    assert feedback_live_quality(registry)(log, pointer.rollout, "v1") is None


def test_the_join_reads_at_most_its_bound_of_events_and_bytes(tmp_path: Path) -> None:
    registry, log = setup(tmp_path, mode="canary")
    ids = [f"r{i}" for i in range(400)]
    log.append_many(
        [
            Event(
                type="prediction",
                model_version="v1" if i % 2 else "v2",
                request_id=r,
                data={"endpoint": "stream", "outputs": 1.0, "latency_ms": 1.0},
            )
            for i, r in enumerate(ids)
        ]
    )
    log.append(feedback(ids, 1.0))
    pointer = registry.require_champion()
    assert pointer.rollout is not None

    whole = feedback_live_quality(registry)(log, pointer.rollout, "v1")
    assert whole is not None
    assert (whole.truncated, whole.events_read, whole.candidate_samples) == (False, 401, 200)

    by_count = feedback_live_quality(registry, max_events=100)(log, pointer.rollout, "v1")
    assert by_count is not None
    assert by_count.truncated
    assert by_count.events_read == 1 + 100  # the feedback event, then 100 predictions
    assert by_count.candidate_samples < 100

    # A budget the one feedback event fits in: predictions stop at the same byte count.
    budget = len(log.query(limit=1, event_type="feedback").events[0].to_json())
    by_bytes = feedback_live_quality(registry, max_bytes=budget)(log, pointer.rollout, "v1")
    assert by_bytes is not None
    assert by_bytes.truncated
    assert by_bytes.bytes_read <= 2 * budget
    assert 1 < by_bytes.events_read < 401
