"""What the OpenAPI document promises, through the real handlers: duplicate JSON
keys are refused naming the key, ``/log`` parameters are ASCII digits or
RFC 3339 times and never empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambda_inference.edge import parse_predict_body
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import api_event, body_of, build_regression, publish

ROW = "[0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    registry = ModelRegistry.open(settings.registry_uri, model_name="default")
    publish(registry, build_regression(version="20260101T000000Z-kkkkkk"))
    return Api(InferenceService.from_settings(settings, emit_metrics=False))


def predict(api: Api, raw: str) -> tuple[int, Any]:
    response = api.handle_predict(api_event("POST", "/stream", raw_body=raw))
    return response["statusCode"], body_of(response)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (f'{{"data": {ROW}, "data": {ROW}}}', "data"),
        (
            '{"data": {"age": 1, "sex": 1, "bmi": 1, "bp": 1, "s1": 1, "s2": 1, "s3": 1,'
            ' "s4": 1, "s5": 1, "s6": 1, "age": 2}}',
            "age",
        ),
        (f'{{"data" : {ROW} , "data":{ROW}}}', "data"),
    ],
)
def test_a_repeated_json_key_is_a_400_naming_it(api: Api, raw: str, key: str) -> None:
    status, body = predict(api, raw)
    assert (status, body["error"]["code"]) == (400, "duplicate_key")
    assert body["error"]["details"] == {"key": key}
    assert repr(key) in body["error"]["message"]


def test_colons_inside_strings_are_not_mistaken_for_keys(api: Api) -> None:
    status, body = predict(api, f'{{"data": {ROW}}}'.replace("0.01]", '0.01, "a:b"]'))
    assert status == 400  # 11 values for 10 features: the record's error, not duplicate_key
    assert body["error"]["code"] != "duplicate_key"
    status, _ = predict(api, f'{{"data": {ROW}}}')
    assert status == 200


def read_log(api: Api, **query: str) -> tuple[int, Any]:
    response = api.handle_admin(api_event("GET", "/log", query=query))
    return response["statusCode"], body_of(response)


@pytest.mark.parametrize("limit", ["5_0", "+5", " 5", "\uff15", "0", "1001", "5.0", ""])
def test_limit_is_ascii_digits_within_the_page_size(api: Api, limit: str) -> None:
    status, body = read_log(api, limit=limit)
    assert (status, body["error"]["code"]) == (400, "invalid_query")
    assert body["error"]["details"] == {"parameter": "limit"}


@pytest.mark.parametrize("name", ["type", "since", "next"])
def test_an_empty_parameter_is_rejected(api: Api, name: str) -> None:
    status, body = read_log(api, **{name: ""})
    assert (status, body["error"]["details"]) == (400, {"parameter": name})


@pytest.mark.parametrize(
    "since", ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2026-01-01 01:00:00 01:00"]
)
def test_since_takes_rfc3339_times_including_an_unencoded_plus(api: Api, since: str) -> None:
    assert read_log(api, since=since)[0] == 200


@pytest.mark.parametrize("since", ["2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z"])
def test_since_without_an_offset_or_a_real_date_is_rejected(api: Api, since: str) -> None:
    status, body = read_log(api, since=since)
    assert (status, body["error"]["details"]) == (400, {"parameter": "since"})


def test_the_document_states_what_the_server_enforces(api: Api) -> None:
    response = api.handle_admin(api_event("GET", "/openapi.json"))
    document = body_of(response)
    paths = document["paths"]
    for path in ("/stream", "/batch"):
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["additionalProperties"] is False
        assert {"400", "405", "413", "415", "422", "503"} <= set(operation["responses"])
    numeric = document["components"]["schemas"]["RecordObject"]["properties"]["age"]
    assert (numeric["minimum"], numeric["maximum"]) == (
        -3.4028234663852886e38,
        3.4028234663852886e38,
    )
    limit = next(p for p in paths["/log"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    assert set(paths["/health"]["get"]["responses"]) == {"200", "405", "503"}
    assert set(paths["/openapi.json"]["get"]["responses"]) == {"200", "405", "503"}


def feedback(api: Api, item: dict[str, Any]) -> tuple[int, Any]:
    response = api.handle_predict(api_event("POST", "/feedback", body={"data": item}))
    return response["statusCode"], body_of(response)


def test_feedback_index_is_an_integer_as_json_schema_counts_them(api: Api) -> None:
    assert feedback(api, {"request_id": "r", "index": 3.0, "actual": 1.5})[0] == 200
    for index in (3.5, 1e300, 2**53, -1):
        status, body = feedback(api, {"request_id": "r", "index": index, "actual": 1.5})
        assert (status, body["error"]["details"]) == (400, {"item": 0, "member": "index"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [[1.5, -2e-05, 3]]}', False),
        (b'{"data": [[1, null, 3]]}', False),
        (b'{"data": {"level": 1, "value": 2}}', False),
        (b'{"data": [[1, true, 3]]}', True),
        (b'{"data": [[1, false, 3]]}', True),
        (b'{"data": {"flag": false}}', True),
    ],
)
def test_boolean_scan_finds_exactly_true_and_false(body: bytes, expected: bool) -> None:
    # Booleans are not numbers: a body with them must never take the vectorised path.
    assert parse_predict_body(body, max_body_bytes=1_000_000).has_booleans is expected
