"""Hostile and unusual requests through the real handlers (API Gateway REST v1 events).

Each case is one a user (or a misbehaving client) can send; the assertions are
what they see: the status, the error code and the message, and that the system
log keeps a bounded record of it.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_inference import entrypoints as handler
from lambda_inference.events import MAX_EVENT_DATA_BYTES
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.eventlog import events_from_lines
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish

CLOUDWATCH_EVENT_LIMIT = 256 * 1024
DYNAMODB_ITEM_LIMIT = 400 * 1024


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-hhhhhh")


def make_api(tmp_path: Path, built: BuiltModel, **overrides: Any) -> Api:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
        **overrides,
    )
    registry = ModelRegistry.open(settings.registry_uri, model_name="default")
    if registry.champion() is None:
        publish(registry, built)
    return Api(InferenceService.from_settings(settings, emit_metrics=False))


@pytest.fixture
def api(tmp_path: Path, regression: BuiltModel) -> Api:
    return make_api(tmp_path, regression)


def send(api: Api, path: str, raw: str | bytes, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    if isinstance(raw, bytes):
        event = api_event("POST", path, raw_body=base64.b64encode(raw).decode(), **kwargs)
        event["isBase64Encoded"] = True
    else:
        event = api_event("POST", path, raw_body=raw, **kwargs)
    response = api.handle_predict(event)
    body = body_of(response)
    return response["statusCode"], body.get("error", body)


def row(value: Any) -> str:
    return json.dumps({"data": [value] * 10})


# --- JSON the stdlib accepts but orjson refuses ------------------------------------


def test_deeply_nested_json_is_malformed_not_an_internal_error(api: Api) -> None:
    status, error = send(api, "/stream", '{"data":' + "[" * 2000 + "]" * 2000 + "}")
    assert (status, error["code"]) == (400, "malformed_json")
    assert error["message"].startswith("request body is not valid JSON: depth limit exceeded")


@pytest.mark.parametrize(
    ("raw", "orjson_says"),
    [
        ('{"data": "\\ud800"}', "no low surrogate in string"),
        ('\ufeff{"data": [1,2,3,4,5,6,7,8,9,10]}', "byte order mark"),
    ],
)
def test_json_only_the_stdlib_accepts_is_malformed_with_orjsons_reason(
    api: Api, raw: str, orjson_says: str
) -> None:
    status, error = send(api, "/stream", raw)
    assert (status, error["code"]) == (400, "malformed_json")
    assert orjson_says in error["message"]
    assert "NaN" not in error["message"]


def test_integer_too_large_for_a_double_names_record_and_feature(api: Api) -> None:
    huge = "9" * 400
    raw = '{"data": [[1,2,3,4,5,6,7,8,9,10], [1,2,3,' + huge + ",5,6,7,8,9,10]]}"
    status, error = send(api, "/batch", raw)
    assert (status, error["code"]) == (400, "invalid_number")
    assert error["details"] == {"record": 1, "feature": "bp"}
    assert error["message"] == (
        "record 1: feature 'bp' value 99999999999999999999... (400 digits) is outside "
        "the float32 range"
    )


def test_nan_is_still_reported_with_its_path(api: Api) -> None:
    status, error = send(api, "/stream", '{"data": [1,2,3,4,5,6,7,8,9,NaN]}')
    assert (status, error["code"]) == (400, "invalid_number")
    assert error["details"] == {"path": "$.data[9]"}


# --- query and model output ---------------------------------------------------------


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-10:00"])
def test_since_outside_the_utc_range_is_an_invalid_query(api: Api, since: str) -> None:
    response = api.handle_admin(api_event("GET", "/log", query={"since": since}))
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (400, "invalid_query")
    assert error["details"] == {"parameter": "since"}
    assert error["message"].startswith("since must be an ISO-8601 time")
    assert since in error["message"]


def test_an_overflowing_prediction_is_not_blamed_on_nulls(api: Api) -> None:
    status, error = send(api, "/batch", json.dumps({"data": [[0.01] * 10, [3e38] * 10]}))
    assert (status, error["code"]) == (422, "prediction_not_finite")
    assert error["details"]["record"] == 1
    assert error["message"].startswith("record 1: the model's output overflowed")
    assert "null" not in error["message"]


# --- sizes: nothing a client sends is echoed in full -------------------------------


def test_a_huge_value_is_echoed_shortened_in_the_response_and_the_event(
    tmp_path: Path, regression: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(tmp_path, regression, log_delivery="stdout")
    huge = "x" * 1_000_000
    record = dict.fromkeys(regression.frame.columns, 0.01) | {"bmi": huge}
    event = api_event("POST", "/stream", body={"data": record})
    response = api.handle_predict(event)
    assert response["statusCode"] == 400
    assert len(response["body"]) < 1000
    error = body_of(response)["error"]
    assert error["code"] == "invalid_type"
    assert error["message"] == (
        f"record 0: feature 'bmi' is numeric; got string '{'x' * 99}... (1000002 chars)"
    )
    status, unknown = send(api, "/stream", json.dumps({"data": {huge: 1}}))
    assert (status, unknown["code"]) == (400, "unknown_feature")
    assert len(unknown["details"]["feature"]) < 200
    lines = capsys.readouterr().out.splitlines()
    events = events_from_lines(lines)
    assert [e.data["code"] for e in events] == ["invalid_type", "unknown_feature"]
    assert all(len(line) < 2000 for line in lines)


def test_the_biggest_allowed_requests_log_events_within_cloudwatch_and_dynamodb_limits(
    tmp_path: Path, regression: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(tmp_path, regression, log_delivery="stdout")
    limits = api.service.limits
    # Inputs under the digest threshold that grow when re-encoded ("1e15" -> 1000000000000000.0),
    # then the largest body and batch the service accepts.
    growing = '{"data": [' + ",".join(
        ["[1e15,1e15,1e15,1e15,1e15,1e15,1e15,1e15,1e15,1e15]"] * 1200
    )
    record = "[" + ",".join([f"{0.0123456789:.{15}f}" + "1" * 30] * 10) + "]"
    count = limits.max_batch_records
    padding = limits.max_body_bytes - len('{"data": []}') - count * (len(record) + 1) + 1
    assert padding > 0
    largest = '{"data": [' + ",".join([record] * count) + "]" + " " * padding + "}"
    assert len(largest) == limits.max_body_bytes
    for raw in (growing + "]}", largest):
        status, _ = send(api, "/batch", raw)
        assert status == 200
    status, _ = send(api, "/stream", largest)  # the largest failed request
    assert status == 400
    lines = capsys.readouterr().out.splitlines()
    events = events_from_lines(lines)
    assert [e.type for e in events] == ["prediction", "prediction", "error"]
    assert events[0].data["inputs"]["omitted_bytes"] > MAX_EVENT_DATA_BYTES
    for line, event in zip(lines, events, strict=True):
        assert len(line.encode()) < CLOUDWATCH_EVENT_LIMIT // 2
        # The DynamoDB log stores the event as ASCII-escaped JSON.
        assert len(json.dumps(event.to_dict(), separators=(",", ":"))) < DYNAMODB_ITEM_LIMIT // 2


# --- the request itself: events, encodings, media types -----------------------------


def test_an_unreadable_event_is_a_json_400(api: Api) -> None:
    event = api_event("POST", "/stream", raw_body="not base64!")
    event["isBase64Encoded"] = True
    response = api.handle_predict(event)
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (400, "invalid_event")
    assert error["message"].startswith("the Lambda event is not a readable API Gateway request")
    event = api_event("GET", "/health")
    event["headers"] = ["not", "a", "mapping"]
    response = api.handle_admin(event)
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (400, "invalid_event")


@pytest.fixture
def bad_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("MLSYS_REGISTRY_URI", str(tmp_path / "registry"))
    monkeypatch.setenv("MLSYS_LOG_URI", f"sqlite:///{tmp_path}/log.sqlite3")
    monkeypatch.setenv("MLSYS_MAX_BATCH_RECORDS", "abc")
    handler.reset_default_api()
    yield
    handler.reset_default_api()


@pytest.mark.usefixtures("bad_environment")
def test_a_bad_environment_variable_is_a_json_503_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for entry, path in ((handler.handle_predict, "/stream"), (handler.handle_admin, "/health")):
        response = entry(api_event("GET", path, request_id="cfg-1"), None)
        error = body_of(response)["error"]
        assert (response["statusCode"], error["code"]) == (503, "invalid_config")
        assert error["message"] == "MLSYS_MAX_BATCH_RECORDS must be an integer, got 'abc'"
        assert error["details"] == {"request_id": "cfg-1"}
    logged = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert logged == [("inference", "ERROR", error["message"])] * 2  # the Powertools logger


def test_gzip_bodies_are_decompressed_within_the_body_limit(
    tmp_path: Path, regression: BuiltModel
) -> None:
    api = make_api(tmp_path, regression, max_body_bytes=4096)
    gzipped = {"Content-Encoding": "gzip"}
    body = json.dumps({"data": [0.01] * 10}).encode()
    status, result = send(api, "/stream", gzip.compress(body), headers=gzipped)
    assert status == 200
    assert isinstance(result["result"], float)
    bomb = gzip.compress(b'{"data": "' + b" " * 1_000_000 + b'"}')
    assert len(bomb) < 4096
    status, error = send(api, "/stream", bomb, headers=gzipped)
    assert (status, error["code"]) == (413, "payload_too_large")
    assert error["message"] == "the decompressed request body exceeds the limit of 4096 bytes"
    status, error = send(api, "/stream", gzip.compress(body)[:-9], headers=gzipped)
    assert (status, error["code"]) == (400, "malformed_json")
    assert "gzip" in error["message"]
    status, error = send(api, "/stream", body, headers={"Content-Encoding": "br"})
    assert (status, error["code"]) == (415, "unsupported_content_encoding")
    assert error["message"].startswith("Content-Encoding 'br' is not supported")


def test_a_form_body_from_curl_is_told_how_to_send_json(api: Api) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, error = send(api, "/stream", '{"data": 1}', headers=form)
    assert (status, error["code"]) == (415, "unsupported_media_type")
    assert error["message"] == (
        "Content-Type must be application/json, got 'application/x-www-form-urlencoded' "
        "(with curl, add -H 'Content-Type: application/json')"
    )
