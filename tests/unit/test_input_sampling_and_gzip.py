"""Issue 12's runtime side: sampled input logging (MLSYS_LOG_INPUTS=sampled) and gzip
bodies sent as ``Content-Type: application/gzip`` (what passes API Gateway intact)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.errors import PayloadTooLargeError
from lambda_inference.events import sampled_input_mode
from lambda_inference.handler import MAX_GZIP_MEMBERS, Api, gunzip
from lambda_inference.service import InferenceService
from mlsys.errors import ConfigError
from mlsys.registry import ModelRegistry
from mlsys.settings import load_settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-ssssss")


def make_api(tmp_path: Path, built: BuiltModel, **env: str) -> Api:
    settings = load_settings(
        {
            "MLSYS_REGISTRY_URI": str(tmp_path / "registry"),
            "MLSYS_LOG_URI": f"sqlite:///{tmp_path}/log.sqlite3",
            **env,
        }
    )
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), built)
    return Api(InferenceService.from_settings(settings, emit_metrics=False))


def logged(api: Api) -> list[dict[str, Any]]:
    response = api.handle_admin(api_event("GET", "/log", query={"type": "prediction"}))
    return list(body_of(response)["result"])


def test_sampling_keeps_about_the_rate_and_decides_the_same_way_for_a_request() -> None:
    ids = [f"req-{i}" for i in range(4000)]
    modes = [sampled_input_mode("sampled", sample_rate=0.05, request_id=i) for i in ids]
    assert 0.04 < modes.count("full") / len(ids) < 0.06
    assert set(modes) == {"full", "digest"}
    assert modes == [sampled_input_mode("sampled", sample_rate=0.05, request_id=i) for i in ids]
    assert {sampled_input_mode("sampled", sample_rate=0.0, request_id=i) for i in ids} == {"digest"}
    assert {sampled_input_mode("sampled", sample_rate=1.0, request_id=i) for i in ids} == {"full"}
    # The other modes do not sample.
    assert sampled_input_mode("full", sample_rate=0.0, request_id="x") == "full"
    assert sampled_input_mode("digest", sample_rate=1.0, request_id="x") == "digest"


def test_sampled_mode_logs_inputs_for_sampled_requests_and_a_digest_for_the_rest(
    tmp_path: Path, regression: BuiltModel
) -> None:
    api = make_api(
        tmp_path, regression, MLSYS_LOG_INPUTS="sampled", MLSYS_LOG_INPUTS_SAMPLE_RATE="0.5"
    )
    record = [0.01] * 10
    ids = [f"r{i}" for i in range(12)]
    for request_id in ids:
        event = api_event("POST", "/stream", body={"data": record}, request_id=request_id)
        assert api.handle_predict(event)["statusCode"] == 200
    by_id = {e["request_id"]: e["data"] for e in logged(api)}
    for request_id in ids:
        full = sampled_input_mode("sampled", sample_rate=0.5, request_id=request_id) == "full"
        assert ("inputs" in by_id[request_id]) is full
        assert ("inputs_sha256" in by_id[request_id]) is not full
    assert any("inputs" in d for d in by_id.values())
    assert any("inputs_sha256" in d for d in by_id.values())


def test_the_sample_rate_is_validated_with_the_variable_named() -> None:
    with pytest.raises(ConfigError, match="MLSYS_LOG_INPUTS_SAMPLE_RATE must be between 0 and 1"):
        load_settings({"MLSYS_LOG_INPUTS_SAMPLE_RATE": "5"})
    with pytest.raises(ConfigError, match="MLSYS_LOG_INPUTS must be one of full, digest, sampled"):
        load_settings({"MLSYS_LOG_INPUTS": "some"})
    assert load_settings({}).log_inputs == "full"  # locally: everything, it costs nothing


def test_a_gzip_body_typed_application_gzip_is_predicted(
    tmp_path: Path, regression: BuiltModel
) -> None:
    api = make_api(tmp_path, regression)
    compressed = gzip.compress(json.dumps({"data": [[0.01] * 10, [0.02] * 10]}).encode())
    # As API Gateway delivers a binary media type: base64, flagged.
    event = api_event(
        "POST",
        "/batch",
        raw_body=base64.b64encode(compressed).decode(),
        headers={"Content-Type": "application/gzip"},
    )
    event["isBase64Encoded"] = True
    response = api.handle_predict(event)
    assert response["statusCode"] == 200, body_of(response)
    assert len(body_of(response)["result"]) == 2
    # Not gzip after all: a JSON 400 naming the problem, never a 500.
    event["body"] = base64.b64encode(b'{"data": []}').decode()
    response = api.handle_predict(event)
    assert response["statusCode"] == 400
    assert "gzip" in body_of(response)["error"]["message"]


def gzip_event(compressed: bytes) -> dict[str, Any]:
    """A gzip body as API Gateway delivers a binary media type: base64, flagged."""
    event = api_event(
        "POST",
        "/batch",
        raw_body=base64.b64encode(compressed).decode(),
        headers={"Content-Type": "application/gzip"},
    )
    event["isBase64Encoded"] = True
    return event


def test_gzip_members_are_capped_so_inflating_stays_linear(
    tmp_path: Path, regression: BuiltModel
) -> None:
    """Issue 18: 295,000 empty members and one record, 5.9 MB, under the body limit
    (its base64 form is over the event limit: a 413 before any inflating), and
    200,000 (4 MB), which fits the event: a 400 after the 101st member."""
    api = make_api(tmp_path, regression)
    record = gzip.compress(json.dumps({"data": [[0.01] * 10]}).encode())
    bomb = gzip.compress(b"") * 295_000 + record
    assert len(bomb) < api.service.limits.max_body_bytes
    response = api.handle_predict(gzip_event(bomb))
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (413, "payload_too_large")
    response = api.handle_predict(gzip_event(gzip.compress(b"") * 200_000 + record))
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (400, "invalid_content_encoding")
    assert error["details"] == {"max_members": MAX_GZIP_MEMBERS}
    # Up to the cap, members are one body (what `cat a.gz b.gz` makes).
    body = json.dumps({"data": [[0.01] * 10, [0.02] * 10]}).encode()
    split = [gzip.compress(body[:7])] + [gzip.compress(b"")] * 98 + [gzip.compress(body[7:])]
    response = api.handle_predict(gzip_event(b"".join(split)))
    assert response["statusCode"] == 200, body_of(response)
    assert len(body_of(response)["result"]) == 2


def test_gunzip_checks_the_expanded_size_while_inflating() -> None:
    zeros = gzip.compress(bytes(50_000_000))  # ~50 KB that would expand to 50 MB
    with pytest.raises(PayloadTooLargeError):
        gunzip(zeros, limit=1_000_000)
    assert gunzip(zeros[:-8] + zeros[-8:], limit=50_000_000) == bytes(50_000_000)
    assert gunzip(gzip.compress(b"a") + gzip.compress(b"b"), limit=10) == b"ab"
