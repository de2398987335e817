"""Rollout state in the registry: one compare-and-swap with the champion, local and on S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsys.errors import ConcurrentUpdateError, ConfigError, RegistryError
from mlsys.registry import ModelRegistry
from mlsys.rollout.state import NoRolloutError, end_rollout, rollout_state, start_rollout
from mlsys.storage import ObjectStore, open_store
from tests.training_support import mocked_bucket
from tests.unit.test_registry_store import make_card

BUCKET = "mlsys-test-rollout"


@pytest.fixture(params=["local", "s3"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModelRegistry]:
    if request.param == "local":
        store: ObjectStore = open_store(str(tmp_path / "registry"))
        yield _filled(store)
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    with mocked_bucket(monkeypatch, BUCKET):
        yield _filled(open_store(f"s3://{BUCKET}/prefix"))


def _filled(store: ObjectStore) -> ModelRegistry:
    registry = ModelRegistry(store, model_name="m")
    for version in ("v1", "v2", "v3"):
        registry.register(make_card(version), f"onnx-{version}".encode())
    registry.promote("v1", reason="first", actor="t", expected=None)
    return registry


def test_a_canary_is_stored_in_the_pointer_and_survives_a_reread(registry: ModelRegistry) -> None:
    champion = registry.require_champion()
    started = start_rollout(
        registry, "v2", mode="canary", fraction=0.3, reason="try", actor="t", expected=champion
    )
    reread = registry.require_champion()
    assert reread.version == "v1"
    assert reread.rollout == started.rollout
    assert reread.rollout is not None
    assert (reread.rollout.mode, reread.rollout.candidate) == ("canary", "v2")
    state = rollout_state(reread)
    assert {k: state[k] for k in ("state", "champion", "candidate", "fraction")} == {
        "state": "canary",
        "champion": "v1",
        "candidate": "v2",
        "fraction": 0.3,
    }
    assert state["started"] == reread.rollout.started


def test_a_losing_rollout_writer_is_rejected_and_changes_nothing(
    registry: ModelRegistry,
) -> None:
    seen = registry.require_champion()
    start_rollout(
        registry, "v2", mode="shadow", fraction=None, reason="a", actor="a", expected=seen
    )
    with pytest.raises(ConcurrentUpdateError):
        start_rollout(
            registry, "v3", mode="canary", fraction=0.5, reason="b", actor="b", expected=seen
        )
    with pytest.raises(ConcurrentUpdateError):
        registry.promote("v3", reason="b", actor="b", expected=seen)
    now = registry.require_champion()
    assert now.rollout is not None
    assert (now.version, now.rollout.candidate, now.rollout.mode) == ("v1", "v2", "shadow")


def test_complete_makes_the_candidate_champion_in_one_write(registry: ModelRegistry) -> None:
    seen = registry.require_champion()
    start_rollout(
        registry, "v2", mode="canary", fraction=0.1, reason="go", actor="t", expected=seen
    )
    done = end_rollout(registry, complete=True, reason="looks good", actor="t")
    assert (done.version, done.rollout, done.previous) == ("v2", None, ("v1",))
    history = registry.history()
    assert [(e["action"], e["version"], e["candidate"]) for e in history] == [
        ("promote", "v1", None),
        ("rollout_canary", "v1", "v2"),
        ("rollout_complete", "v2", "v2"),
    ]
    # Rollback after a completed rollout returns to the champion before it.
    assert registry.rollback(reason="undo", actor="t").version == "v1"


def test_abort_keeps_the_champion_and_discards_the_rollout(registry: ModelRegistry) -> None:
    seen = registry.require_champion()
    start_rollout(
        registry, "v2", mode="canary", fraction=0.1, reason="go", actor="t", expected=seen
    )
    aborted = end_rollout(registry, complete=False, reason="errors", actor="t")
    assert (aborted.version, aborted.rollout) == ("v1", None)
    assert registry.history()[-1]["action"] == "rollout_abort"
    assert registry.history()[-1]["reason"] == "errors"
    with pytest.raises(NoRolloutError):
        end_rollout(registry, complete=False, reason="again", actor="t")


def test_a_stale_end_loses_against_a_newer_state(registry: ModelRegistry) -> None:
    seen = registry.require_champion()
    started = start_rollout(
        registry, "v2", mode="canary", fraction=0.1, reason="go", actor="t", expected=seen
    )
    end_rollout(registry, complete=False, reason="first writer", actor="a", expected=started)
    with pytest.raises(ConcurrentUpdateError):
        end_rollout(registry, complete=True, reason="second writer", actor="b", expected=started)
    assert registry.require_champion().version == "v1"


def test_rollouts_of_the_champion_or_of_unknown_versions_are_refused(
    registry: ModelRegistry,
) -> None:
    seen = registry.require_champion()
    with pytest.raises(RegistryError, match="already the champion"):
        start_rollout(
            registry, "v1", mode="canary", fraction=0.1, reason="x", actor="t", expected=seen
        )
    with pytest.raises(RegistryError, match="no version"):
        start_rollout(
            registry, "v9", mode="canary", fraction=0.1, reason="x", actor="t", expected=seen
        )
    assert registry.require_champion().rollout is None


def test_a_direct_promotion_ends_a_rollout(registry: ModelRegistry) -> None:
    seen = registry.require_champion()
    started = start_rollout(
        registry, "v2", mode="canary", fraction=0.1, reason="go", actor="t", expected=seen
    )
    promoted = registry.promote("v3", reason="hotfix", actor="t", expected=started)
    assert (promoted.version, promoted.rollout) == ("v3", None)


def test_a_path_as_model_name_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid model name"):
        ModelRegistry.open(str(tmp_path), model_name="../../x")
