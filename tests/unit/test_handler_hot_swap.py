"""Champion hot swap: a warm container picks up a new champion after the refresh interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish

REFRESH = 30.0


class ManualClock:
    """A monotonic clock the test moves by hand instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def first() -> BuiltModel:
    return build_regression(version="20260101T000000Z-000001", alpha=1.0)


@pytest.fixture(scope="module")
def second() -> BuiltModel:
    return build_regression(version="20260102T000000Z-000002", alpha=0.01)


def serve(tmp_path: Path, clock: ManualClock) -> tuple[Api, ModelRegistry]:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        model_refresh_seconds=REFRESH,
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
    )
    registry = ModelRegistry.open(settings.registry_uri, model_name="default")
    return Api(InferenceService.from_settings(settings, clock=clock, emit_metrics=False)), registry


def predict(api: Api, record: list[float]) -> tuple[int, dict[str, object]]:
    response = api.handle_predict(api_event("POST", "/stream", body={"data": record}))
    return response["statusCode"], body_of(response)


def test_new_champion_is_served_after_the_refresh_interval(
    tmp_path: Path, first: BuiltModel, second: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry = serve(tmp_path, clock)
    publish(registry, first)
    record = first.frame.iloc[0].tolist()
    status, body = predict(api, record)
    assert (status, body["model_version"]) == (200, first.card.version)
    assert body["result"] == pytest.approx(first.expected[0], rel=1e-4)

    publish(registry, second)
    clock.advance(REFRESH - 1)
    assert predict(api, record)[1]["model_version"] == first.card.version  # not re-checked yet
    clock.advance(1)
    status, body = predict(api, record)
    assert (status, body["model_version"]) == (200, second.card.version)
    assert body["result"] == pytest.approx(second.expected[0], rel=1e-4)
    assert body["result"] != pytest.approx(first.expected[0], rel=1e-4)

    registry.rollback(reason="bad model", actor="tests")
    clock.advance(REFRESH)
    assert predict(api, record)[1]["model_version"] == first.card.version
    health = body_of(api.handle_admin(api_event("GET", "/health")))
    assert health["model_version"] == first.card.version


def test_service_starts_without_a_champion_and_serves_once_one_appears(
    tmp_path: Path, first: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry = serve(tmp_path, clock)
    record = first.frame.iloc[0].tolist()
    status, body = predict(api, record)
    assert (status, body["error"]["code"]) == (503, "no_champion")
    publish(registry, first)
    clock.advance(REFRESH)
    assert predict(api, record)[0] == 200


def test_a_champion_that_fails_to_load_leaves_the_old_one_serving(
    tmp_path: Path, first: BuiltModel
) -> None:
    clock = ManualClock()
    api, registry = serve(tmp_path, clock)
    publish(registry, first)
    record = first.frame.iloc[0].tolist()
    assert predict(api, record)[0] == 200
    broken_card = first.card.from_dict(
        {**first.card.to_dict(), "version": "20260103T000000Z-bad000"}
    )
    registry.register(broken_card, b"\x00 truncated model")
    registry.promote(
        broken_card.version, reason="test", actor="tests", expected=registry.champion()
    )
    clock.advance(REFRESH)
    status, body = predict(api, record)
    assert (status, body["model_version"]) == (200, first.card.version)
