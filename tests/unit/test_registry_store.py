"""The object stores (local directory, S3 under moto) and the registry on top of them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlsys.contract import FeatureSpec, ModelCard
from mlsys.errors import ConcurrentUpdateError, ConfigError, RegistryError, VersionNotFoundError
from mlsys.registry import ModelRegistry, new_version_id
from mlsys.storage import LocalStore, ObjectNotFoundError, ObjectStore, S3Store, open_store
from tests.training_support import mocked_bucket

BUCKET = "mlsys-test-registry"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mocked_bucket(monkeypatch, BUCKET):
        yield


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(str(tmp_path / "registry"))
    request.getfixturevalue("aws")
    return open_store(f"s3://{BUCKET}/some/prefix")


def test_write_read_and_etags(store: ObjectStore) -> None:
    first = store.write("a/b.json", b"one")
    blob = store.read("a/b.json")
    assert blob.data == b"one"
    assert blob.etag == first
    second = store.write("a/b.json", b"two")
    assert second != first
    assert store.read("a/b.json").data == b"two"


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.read("nope.json")


def test_if_absent_and_if_match_are_compare_and_swap(store: ObjectStore) -> None:
    etag = store.write("p.json", b"v1", if_absent=True)
    with pytest.raises(ConcurrentUpdateError):
        store.write("p.json", b"v2", if_absent=True)
    newer = store.write("p.json", b"v2", if_match=etag)
    with pytest.raises(ConcurrentUpdateError):
        store.write("p.json", b"v3", if_match=etag)  # stale ETag loses
    assert store.read("p.json").data == b"v2"
    assert store.read("p.json").etag == newer


def test_read_if_changed_skips_unchanged_objects(store: ObjectStore) -> None:
    etag = store.write("c.json", b"x")
    assert store.read_if_changed("c.json", etag) is None
    store.write("c.json", b"y")
    changed = store.read_if_changed("c.json", etag)
    assert changed is not None
    assert changed.data == b"y"
    assert store.read_if_changed("c.json", None) is not None


def test_list_returns_sorted_keys_under_a_prefix_only(store: ObjectStore) -> None:
    for key in ("m/2.json", "m/1.json", "m/sub/3.json", "other/4.json"):
        store.write(key, b"{}", if_absent=True)
    assert store.list("m/") == ["m/1.json", "m/2.json", "m/sub/3.json"]
    assert store.list("missing/") == []


def test_local_store_hides_lock_files_and_rejects_escaping_keys(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write("k.json", b"1", if_absent=True)
    assert store.list("") == ["k.json"]
    with pytest.raises(RegistryError, match="escapes"):
        store.write("../outside.json", b"x")


def test_open_store_chooses_by_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/a/b/")
    assert isinstance(s3, S3Store)
    assert s3.uri == "s3://bucket/a/b"
    for bad in ("", "s3://", "gs://bucket/x"):
        with pytest.raises(ConfigError):
            open_store(bad)


# --- registry -----------------------------------------------------------------


def make_card(version: str, model_name: str = "m") -> ModelCard:
    return ModelCard(
        model_name=model_name,
        version=version,
        task="regression",
        target="y",
        features=(FeatureSpec(name="x", kind="numeric", input_name="f0"),),
        metric="r2",
        metrics={"challenger": {"r2": 0.5}},
    )


@pytest.fixture
def registry(store: ObjectStore) -> ModelRegistry:
    registry = ModelRegistry(store, model_name="m")
    for version in ("v1", "v2", "v3"):
        registry.register(make_card(version), f"onnx-{version}".encode())
    return registry


def test_versions_are_immutable_and_listed_in_order(registry: ModelRegistry) -> None:
    assert registry.versions() == ["v1", "v2", "v3"]
    assert registry.card("v2").version == "v2"
    assert registry.model_bytes("v2") == b"onnx-v2"
    with pytest.raises(RegistryError, match="immutable"):
        registry.register(make_card("v2"), b"other")
    assert registry.model_bytes("v2") == b"onnx-v2"
    with pytest.raises(VersionNotFoundError):
        registry.card("v9")
    with pytest.raises(RegistryError):
        registry.register(make_card("v4", model_name="other"), b"x")


def test_promote_rollback_and_history(registry: ModelRegistry) -> None:
    assert registry.champion() is None
    first = registry.promote("v1", reason="first", actor="t", expected=None)
    second = registry.promote("v2", reason="better", actor="t", expected=first)
    assert registry.require_champion().version == "v2"
    assert second.previous == ("v1",)
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("v2", reason="again", actor="t", expected=registry.champion())
    restored = registry.rollback(reason="bad", actor="t")
    assert restored.version == "v1"
    assert registry.require_champion().version == "v1"
    actions = [(h["action"], h["version"]) for h in registry.history()]
    assert actions == [("promote", "v1"), ("promote", "v2"), ("rollback", "v1")]
    with pytest.raises(RegistryError, match="no previous"):
        registry.rollback(reason="again", actor="t")


def test_promotion_against_a_stale_pointer_loses(registry: ModelRegistry) -> None:
    with pytest.raises(VersionNotFoundError):
        registry.promote("v9", reason="missing", actor="t", expected=None)
    seen = registry.promote("v1", reason="first", actor="t", expected=None)
    with pytest.raises(ConcurrentUpdateError):
        registry.promote("v2", reason="no champion?", actor="t", expected=None)
    registry.promote("v2", reason="winner", actor="a", expected=seen)
    with pytest.raises(ConcurrentUpdateError):
        registry.promote("v3", reason="loser", actor="b", expected=seen)
    assert registry.require_champion().version == "v2"
    assert len(registry.history()) == 2


def test_champion_if_changed(registry: ModelRegistry) -> None:
    with pytest.raises(VersionNotFoundError):
        registry.champion_if_changed(None)
    pointer = registry.promote("v1", reason="first", actor="t", expected=None)
    assert registry.champion_if_changed(pointer.etag) is None
    registry.promote("v2", reason="next", actor="t", expected=pointer)
    changed = registry.champion_if_changed(pointer.etag)
    assert changed is not None
    assert changed.version == "v2"


def test_training_runs_are_recorded_once(registry: ModelRegistry) -> None:
    registry.record_run("r1", {"promoted": False})
    registry.record_run("r2", {"promoted": True})
    assert [r["promoted"] for r in registry.runs()] == [False, True]
    with pytest.raises(ConcurrentUpdateError):
        registry.record_run("r1", {"promoted": True})


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_invalid_model_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(RegistryError):
        ModelRegistry(LocalStore(tmp_path), model_name=name)


def test_racing_first_promotions_have_exactly_one_winner(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalStore(tmp_path), model_name="m")
    versions = [f"v{i}" for i in range(8)]
    for version in versions:
        registry.register(make_card(version), b"x")
    barrier = threading.Barrier(len(versions))
    winners: list[str] = []

    def contend(version: str) -> None:
        barrier.wait()
        try:
            registry.promote(version, reason="race", actor=version, expected=None)
            winners.append(version)
        except ConcurrentUpdateError:
            pass

    threads = [threading.Thread(target=contend, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert registry.require_champion().version == winners[0]


def test_version_ids_created_in_one_second_sort_in_creation_order() -> None:
    base = datetime(2026, 11, 29, 3, 35, 0, tzinfo=UTC)
    ids = [new_version_id(base + timedelta(milliseconds=ms)) for ms in (0, 7, 250, 999)]
    assert sorted(ids) == ids
    assert ids[0].startswith("20261129T033500000Z-")
