"""Requests and responses inside Lambda's 6 MB invocation payload (issue 18), at real sizes.

A body reaches the function inside the API Gateway event, base64-encoded (gzip) or as
an escaped JSON string, so the limit that matters is the event's; the handler refuses
with 413 every body that would come close, instead of leaving it to fail before the
function as a gateway error. A ``GET /log`` page stops early with a ``next`` token
before its serialised response would pass 5 MB.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.edge import (
    LAMBDA_PAYLOAD_BYTES,
    MAX_EVENT_BODY_BYTES,
    MAX_LOG_RESPONSE_BYTES,
    event_body_bytes,
)
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.eventlog import Event, SqliteEventLog
from mlsys.registry import ModelRegistry
from mlsys.settings import load_settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-ssssss")


@pytest.fixture
def api(tmp_path: Path, regression: BuiltModel) -> Api:
    settings = load_settings(
        {
            "MLSYS_REGISTRY_URI": str(tmp_path / "registry"),
            "MLSYS_LOG_URI": f"sqlite:///{tmp_path}/log.sqlite3",
            "MLSYS_LOG_DELIVERY": "stdout",
        }
    )
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), regression)
    return Api(InferenceService.from_settings(settings, emit_metrics=False))


def invoke_size(payload: dict[str, Any]) -> int:
    """Bytes of an event or response as the Lambda runtime serialises it."""
    return len(json.dumps(payload))


def precise_rows(count: int) -> list[list[float]]:
    """Numeric records whose numbers have many digits (JSON allows any precision)."""
    rng = random.Random(7)
    return [[float(f"0.0{rng.randrange(10**15):015d}") for _ in range(10)] for _ in range(count)]


def test_a_json_body_that_escapes_past_the_event_limit_is_413_not_a_gateway_error(
    api: Api,
) -> None:
    # 3.1 MB of JSON whose string holds escaped quotes: each \\" is 2 bytes in the body
    # and 4 in the event. It fits Lambda's payload (so it reaches the function) but
    # not the event limit.
    quoted = '\\"' * 1_560_000
    raw = '{"data": {"age": "' + quoted + '"}}'
    event = api_event("POST", "/stream", raw_body=raw)
    assert MAX_EVENT_BODY_BYTES < invoke_size(event) <= LAMBDA_PAYLOAD_BYTES
    response = api.handle_predict(event)
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (413, "payload_too_large")
    assert error["details"]["event_bytes"] == len(json.dumps(raw)) - 2
    assert "escaped JSON string" in error["message"]


def test_a_numeric_batch_just_under_the_limits_is_served(api: Api) -> None:
    raw = json.dumps({"data": precise_rows(10_000)})
    assert 2_000_000 < len(raw) < 6_000_000
    event = api_event("POST", "/batch", raw_body=raw)
    assert invoke_size(event) <= LAMBDA_PAYLOAD_BYTES
    response = api.handle_predict(event)
    assert response["statusCode"] == 200, body_of(response)
    assert len(body_of(response)["result"]) == 10_000


@pytest.mark.parametrize(("compressed_bytes", "status"), [(4_500_000, 200), (4_700_000, 413)])
def test_a_gzip_body_counts_at_its_base64_size(
    api: Api, compressed_bytes: int, status: int
) -> None:
    raw = json.dumps({"data": precise_rows(9_000)}).encode()
    # Stored, not deflated (level 0), and padded with whitespace to the wanted size.
    body = raw[:-1] + b" " * (compressed_bytes - len(raw) - 18 - 5 * 2) + b"}"
    compressed = gzip.compress(body, compresslevel=0)
    event = api_event(
        "POST",
        "/batch",
        raw_body=base64.b64encode(compressed).decode(),
        headers={"Content-Type": "application/gzip"},
    )
    event["isBase64Encoded"] = True
    assert invoke_size(event) <= LAMBDA_PAYLOAD_BYTES
    response = api.handle_predict(event)
    assert response["statusCode"] == status, body_of(response)
    if status == 413:
        assert body_of(response)["error"]["details"]["event_bytes"] == len(event["body"])


def test_event_body_bytes_counts_escapes_only_when_they_could_matter() -> None:
    assert event_body_bytes("é" * 10, base64_encoded=False) == 10  # cannot matter at this size
    big = "é" * 600_000
    assert event_body_bytes(big, base64_encoded=False) == 6 * 600_000
    assert event_body_bytes("x" * 100, base64_encoded=True) == 100


def fill_log(path: Path) -> int:
    """510 feedback events of ~19 KB and 1,000 /batch prediction events of ~7 KB."""
    log = SqliteEventLog(path)
    rng = random.Random(3)
    feedback = [
        Event(
            type="feedback",
            request_id=f"f{n}",
            data={
                "items": [
                    {"request_id": f"req-{n}-{i}-" + "x" * 120, "index": i, "actual": rng.random()}
                    for i in range(100)
                ]
            },
        )
        for n in range(510)
    ]
    batches = [
        Event(
            type="prediction",
            request_id=f"b{n}",
            data={"endpoint": "batch", "outputs": [rng.random() for _ in range(350)]},
        )
        for n in range(1000)
    ]
    assert 15_000 < len(feedback[0].to_json()) < 25_000
    assert 5_000 < len(batches[0].to_json()) < 9_000
    log.append_many(feedback + batches)
    log.close()
    return len(feedback) + len(batches)


def test_log_pages_stop_before_the_lambda_response_limit_and_lose_nothing(
    api: Api, tmp_path: Path
) -> None:
    stored = fill_log(tmp_path / "log.sqlite3")
    seen: list[str] = []
    query: dict[str, str] = {"limit": "1000"}
    pages = 0
    while True:
        response = api.handle_admin(api_event("GET", "/log", query=query))
        assert response["statusCode"] == 200
        assert invoke_size(response) <= MAX_LOG_RESPONSE_BYTES < LAMBDA_PAYLOAD_BYTES
        page = body_of(response)
        seen += [event["id"] for event in page["result"]]
        pages += 1
        if page["next"] is None:
            break
        query = {"limit": "1000", "next": page["next"]}
    assert len(seen) == len(set(seen)) == stored
    assert pages >= 4  # ~16 MB of events: no page could hold 1,000 of them
