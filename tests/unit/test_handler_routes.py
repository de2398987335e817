"""Every route and error case of the API, through API Gateway REST (v1) events.

Real ONNX models in a real local registry, a real SQLite log; nothing faked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from lambda_inference.handler import Api
from lambda_inference.routes import ROUTES
from lambda_inference.service import InferenceService
from mlsys.contract import CATEGORICAL_INPUT, NUMERIC_INPUT, ModelCard
from mlsys.eventlog import events_from_lines
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import (
    BuiltModel,
    api_event,
    body_of,
    build_classifier,
    build_regression,
    publish,
)


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-aaaaaa")


@pytest.fixture(scope="module")
def classifier() -> BuiltModel:
    return build_classifier(version="20260101T000000Z-cccccc", model_name="churn")


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(tmp_path: Path) -> MakeApi:
    def make(built: BuiltModel | None = None, **overrides: Any) -> Api:
        model_name = built.card.model_name if built else "default"
        settings = Settings(
            registry_uri=str(tmp_path / "registry"),
            model_name=model_name,
            log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
            **overrides,
        )
        if built is not None:
            publish(ModelRegistry.open(settings.registry_uri, model_name=model_name), built)
        return Api(InferenceService.from_settings(settings, emit_metrics=False))

    return make


def records_of(built: BuiltModel, rows: int) -> list[dict[str, Any]]:
    frame = built.frame.iloc[:rows].astype(object)
    return frame.where(frame.notna(), None).to_dict("records")  # type: ignore[no-any-return]


def post(api: Api, path: str, data: Any, **kwargs: Any) -> tuple[int, Any]:
    response = api.handle_predict(api_event("POST", path, body={"data": data}, **kwargs))
    return response["statusCode"], body_of(response)


def admin(api: Api, method: str, path: str, **query: str) -> tuple[int, Any]:
    response = api.handle_admin(api_event(method, path, query=query or None))
    return response["statusCode"], body_of(response)


# --- predictions ----------------------------------------------------------------


def test_stream_object_and_array_records_match_the_model(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression)
    record = records_of(regression, 1)[0]
    status, body = post(api, "/stream", record, request_id="abc-123")
    assert status == 200
    assert body["result"] == pytest.approx(regression.expected[0], rel=1e-4)
    assert body["model_version"] == regression.card.version
    assert body["request_id"] == "abc-123"
    status, as_array = post(api, "/stream", list(record.values()))
    assert status == 200
    assert as_array["result"] == body["result"]


def test_batch_of_object_and_array_records(make_api: MakeApi, regression: BuiltModel) -> None:
    api = make_api(regression)
    records = records_of(regression, 200)
    status, objects = post(api, "/batch", records)
    assert status == 200
    np.testing.assert_allclose(objects["result"], regression.expected[:200], rtol=1e-4)
    status, arrays = post(api, "/batch", [list(r.values()) for r in records])
    assert status == 200
    assert arrays["result"] == objects["result"]
    assert arrays["model_version"] == regression.card.version


def test_classifier_returns_labels_and_probabilities_with_nulls_and_unknown_categories(
    make_api: MakeApi, classifier: BuiltModel
) -> None:
    api = make_api(classifier)
    status, body = post(api, "/stream", {"age": None, "colour": "purple", "income": 51.5})
    assert status == 200
    assert body["result"] in {"no", "yes", "maybe"}
    assert set(body["probabilities"]) == {"no", "yes", "maybe"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["result"] == max(body["probabilities"], key=body["probabilities"].get)
    records = records_of(classifier, 300)
    assert any(r["age"] is None for r in records)
    assert any(r["colour"] is None for r in records)
    status, batch = post(api, "/batch", records)
    assert status == 200
    assert batch["result"] == classifier.expected
    assert len(batch["probabilities"]) == 300


@pytest.mark.parametrize("build", [build_regression, build_classifier])
def test_an_old_per_feature_model_in_the_registry_is_still_served(
    make_api: MakeApi, build: Callable[..., BuiltModel]
) -> None:
    """Models exported before the tensor layout (one input per feature, and a card
    without ``input_layout``) keep answering, by name and by position."""
    old = build(version="20250101T000000Z-000000", layout="per_feature")
    card = old.card.to_dict()
    del card["input_layout"]  # as written by the older code
    assert ModelCard.from_dict(card).input_layout == "per_feature"
    assert {i.name for i in onnx.load_from_string(old.model_bytes).graph.input} == {
        f.input_name for f in old.card.features
    }
    api = make_api(old)
    records = records_of(old, 50)
    status, objects = post(api, "/batch", records)
    assert status == 200
    status, arrays = post(api, "/batch", [list(r.values()) for r in records])
    assert status == 200
    assert arrays["result"] == objects["result"]
    if old.card.is_classifier:
        assert objects["result"] == old.expected[:50]
    else:
        np.testing.assert_allclose(objects["result"], old.expected[:50], rtol=1e-4)
    status, one = post(api, "/stream", records[0])
    assert status == 200
    expected = objects["result"][0]
    assert one["result"] == (expected if old.card.is_classifier else pytest.approx(expected))


def test_training_exports_one_tensor_per_feature_kind(classifier: BuiltModel) -> None:
    graph = onnx.load_from_string(classifier.model_bytes).graph
    assert classifier.card.input_layout == "tensor"
    shapes = {
        i.name: [d.dim_value or d.dim_param or None for d in i.type.tensor_type.shape.dim]
        for i in graph.input
    }
    assert shapes.keys() == {NUMERIC_INPUT, CATEGORICAL_INPUT}
    assert shapes[NUMERIC_INPUT][1] == 2  # age, income
    assert shapes[CATEGORICAL_INPUT][1] == 1  # colour


def test_one_feature_model_accepts_a_bare_number(make_api: MakeApi) -> None:
    built = build_regression(version="20260101T000000Z-111111", model_name="single", features=1)
    api = make_api(built)
    value = float(built.frame.iloc[0, 0])
    status, bare = post(api, "/stream", value)
    assert status == 200
    assert bare["result"] == pytest.approx(built.expected[0], rel=1e-4)
    assert post(api, "/stream", {"age": value})[1]["result"] == bare["result"]
    status, batch = post(api, "/batch", [value, [value], {"age": value}])
    assert status == 200
    assert len(set(batch["result"])) == 1


def test_json_that_only_declares_its_content_type_with_charset_is_accepted(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression)
    record = records_of(regression, 1)[0]
    status, _ = post(
        api, "/stream", record, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert status == 200
    encoded = base64.b64encode(json.dumps({"data": record}).encode()).decode()
    event = api_event("POST", "/stream", raw_body=encoded)
    event["isBase64Encoded"] = True
    assert api.handle_predict(event)["statusCode"] == 200


# --- errors ---------------------------------------------------------------------


def error_of(response_body: Any) -> dict[str, Any]:
    assert set(response_body) == {"error"}
    assert set(response_body["error"]) == {"code", "message", "details"}
    return response_body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "raw", "status", "code", "fragment"),
    [
        ("/stream", '{"data": {"age": 1', 400, "malformed_json", "not valid JSON"),
        ("/stream", '{"data": {"age": NaN}}', 400, "invalid_number", "$.data.age"),
        (
            "/batch",
            '{"data": [[1,2,3,4,5,6,7,8,9,Infinity]]}',
            400,
            "invalid_number",
            "$.data[0][9]",
        ),
        ("/stream", '{"records": []}', 400, "invalid_request", '"data"'),
        ("/batch", '{"data": []}', 400, "empty_batch", "empty"),
        ("/batch", '{"data": {"age": 1}}', 400, "invalid_request", "array of records"),
        ("/stream", '{"data": "x"}', 400, "invalid_record", "object keyed by feature name"),
    ],
)
def test_malformed_requests(
    make_api: MakeApi,
    regression: BuiltModel,
    path: str,
    raw: str,
    status: int,
    code: str,
    fragment: str,
) -> None:
    api = make_api(regression)
    response = api.handle_predict(api_event("POST", path, raw_body=raw))
    assert response["statusCode"] == status
    error = error_of(body_of(response))
    assert error["code"] == code
    assert fragment in error["message"]


def test_feature_errors_name_the_feature_and_record(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression)
    good = records_of(regression, 3)
    missing = [good[0], good[1], {k: v for k, v in good[2].items() if k != "bmi"}]
    cases = [
        (missing, "missing_feature", {"record": 2, "feature": "bmi"}),
        (
            [good[0], {**good[1], "colour": "red"}],
            "unknown_feature",
            {"record": 1, "feature": "colour"},
        ),
        ([{**good[0], "s5": "high"}], "invalid_type", {"record": 0, "feature": "s5"}),
        ([good[0], {**good[1], "s5": True}], "invalid_type", {"record": 1, "feature": "s5"}),
        ([good[0], list(good[1].values())[:9]], "invalid_record", {"record": 1}),
    ]
    for records, code, where in cases:
        status, body = post(api, "/batch", records)
        error = error_of(body)
        assert (status, error["code"]) == (400, code), error
        assert {k: error["details"][k] for k in where} == where
        assert f"record {where['record']}" in error["message"]


def test_size_limits_give_413(make_api: MakeApi, regression: BuiltModel) -> None:
    api = make_api(regression, max_batch_records=5, max_body_bytes=2048)
    records = [list(r.values()) for r in records_of(regression, 6)]
    status, body = post(api, "/batch", records)
    assert (status, error_of(body)["code"]) == (413, "too_many_records")
    assert error_of(body)["details"] == {"records": 6, "limit": 5}
    status, body = post(api, "/batch", [records[0]] * 5 + ["x" * 3000])
    assert (status, error_of(body)["code"]) == (413, "payload_too_large")


def test_wrong_media_type_route_and_method(make_api: MakeApi, regression: BuiltModel) -> None:
    api = make_api(regression)
    response = api.handle_predict(
        api_event(
            "POST",
            "/stream",
            raw_body="data=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    assert response["statusCode"] == 415
    assert error_of(body_of(response))["code"] == "unsupported_media_type"
    # Without a Content-Type: what a cross-origin page can send (fetch, mode "no-cors").
    for path in ("/stream", "/feedback"):
        event = api_event("POST", path, raw_body='{"data": []}')
        del event["headers"]["Content-Type"]
        response = api.handle_predict(event)
        assert response["statusCode"] == 415
        assert error_of(body_of(response))["message"].startswith("Content-Type is required")
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    response = api.handle_predict(api_event("GET", "/stream"))
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "POST"
    assert error_of(body_of(response))["code"] == "method_not_allowed"
    for handler in (api.handle_predict, api.handle_admin):
        response = handler(api_event("GET", "/predict"))
        assert response["statusCode"] == 404
        assert error_of(body_of(response))["code"] == "not_found"
    assert api.handle_admin(api_event("PUT", "/log"))["statusCode"] == 405


def test_no_champion_is_503_and_a_broken_champion_is_503(
    make_api: MakeApi, regression: BuiltModel, tmp_path: Path
) -> None:
    api = make_api()
    status, body = post(api, "/stream", [1.0] * 10)
    assert (status, error_of(body)["code"]) == (503, "no_champion")
    assert admin(api, "GET", "/health")[0] == 503
    assert admin(api, "GET", "/openapi.json")[0] == 503

    registry = ModelRegistry.open(str(tmp_path / "registry"), model_name="broken")
    broken = BuiltModel(
        card=regression.card.__class__.from_dict(
            {**regression.card.to_dict(), "model_name": "broken"}
        ),
        model_bytes=b"not an onnx model",
        frame=regression.frame,
        expected=regression.expected,
    )
    publish(registry, broken)
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        model_name="broken",
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    status, body = post(api, "/stream", [1.0] * 10)
    assert (status, error_of(body)["code"]) == (503, "model_unavailable")
    assert regression.card.version in error_of(body)["message"]


def test_every_error_is_logged_as_an_error_event(make_api: MakeApi, regression: BuiltModel) -> None:
    api = make_api(regression)
    api.handle_predict(api_event("POST", "/batch", raw_body='{"data": []}', request_id="r-e1"))
    api.handle_predict(api_event("GET", "/nowhere", request_id="r-e2"))
    admin(api, "GET", "/log", limit="zero")
    status, body = admin(api, "GET", "/log", type="error")
    assert status == 200
    logged = {(e["request_id"], e["data"]["code"], e["data"]["status"]) for e in body["result"]}
    assert ("r-e1", "empty_batch", 400) in logged
    assert ("r-e2", "not_found", 404) in logged
    assert any(code == "invalid_query" for _, code, _ in logged)


# --- the system log -------------------------------------------------------------


def test_predictions_are_logged_with_inputs_outputs_and_version(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression)
    record = records_of(regression, 1)[0]
    _, body = post(api, "/stream", record, request_id="p-1")
    status, log = admin(api, "GET", "/log", type="prediction")
    assert status == 200
    event = log["result"][0]
    assert event["request_id"] == "p-1"
    assert event["model_version"] == regression.card.version
    assert event["data"]["inputs"] == record
    assert event["data"]["outputs"] == body["result"]
    assert event["data"]["latency_ms"] > 0


def test_digest_mode_logs_the_body_hash_instead_of_inputs(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression, log_inputs="digest")
    raw = json.dumps({"data": records_of(regression, 1)[0]})
    api.handle_predict(api_event("POST", "/stream", raw_body=raw))
    event = admin(api, "GET", "/log")[1]["result"][0]
    assert "inputs" not in event["data"]
    assert event["data"]["inputs_sha256"] == hashlib.sha256(raw.encode()).hexdigest()


def test_log_is_newest_first_paginated_filtered_and_emptied(
    make_api: MakeApi, regression: BuiltModel
) -> None:
    api = make_api(regression)
    record = records_of(regression, 1)[0]
    for i in range(5):
        post(api, "/stream", record, request_id=f"p-{i}")
    api.handle_predict(api_event("POST", "/stream", raw_body="{", request_id="bad"))
    seen: list[str] = []
    token: str | None = None
    while True:
        query = {"limit": "2", "type": "prediction", **({"next": token} if token else {})}
        status, page = admin(api, "GET", "/log", **query)
        assert status == 200
        assert len(page["result"]) <= 2
        seen += [e["request_id"] for e in page["result"]]
        token = page["next"]
        if token is None:
            break
    assert seen == [f"p-{i}" for i in reversed(range(5))]
    everything = admin(api, "GET", "/log")[1]["result"]
    assert [e["request_id"] for e in everything[:2]] == ["bad", "p-4"]
    first_time = everything[-1]["time"]
    assert len(admin(api, "GET", "/log", since=everything[1]["time"])[1]["result"]) == 2
    assert len(admin(api, "GET", "/log", since=first_time)[1]["result"]) == 6

    status, body = admin(api, "GET", "/emptyLog")
    assert (status, body["result"]) == (200, "log emptied")
    assert admin(api, "GET", "/log")[1] == {"result": [], "next": None}
    post(api, "/stream", record, request_id="after")
    status, body = admin(api, "DELETE", "/log")
    assert (status, body["result"]) == (200, "log emptied")
    assert admin(api, "GET", "/log")[1]["result"] == []


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"type": "debug"}, "type"),
        ({"since": "yesterday"}, "since"),
        ({"page": "2"}, None),
    ],
)
def test_bad_log_queries_are_400(
    make_api: MakeApi, regression: BuiltModel, query: dict[str, str], parameter: str | None
) -> None:
    status, body = admin(make_api(regression), "GET", "/log", **query)
    assert (status, error_of(body)["code"]) == (400, "invalid_query")
    if parameter:
        assert error_of(body)["details"]["parameter"] == parameter


def test_forged_next_token_is_400(make_api: MakeApi, regression: BuiltModel) -> None:
    status, body = admin(make_api(regression), "GET", "/log", next="not-a-token")
    assert (status, error_of(body)["code"]) == (400, "invalid_next_token")


# --- health, OpenAPI, delivery, metrics -------------------------------------------


def test_health_and_openapi_describe_the_champion(
    make_api: MakeApi, classifier: BuiltModel
) -> None:
    api = make_api(classifier)
    status, health = admin(api, "GET", "/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["model_version"] == classifier.card.version
    status, doc = admin(api, "GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    record = doc["components"]["schemas"]["RecordObject"]
    assert record["required"] == ["age", "colour", "income"]
    assert record["properties"]["colour"]["examples"] == ["blue", "green", "red"]
    assert "null" in record["properties"]["age"]["type"]
    assert doc["components"]["schemas"]["Prediction"] == {"enum": ["no", "yes", "maybe"]}
    assert set(doc["paths"]) >= {"/stream", "/batch", "/log", "/emptyLog", "/health"}


def test_every_route_in_the_table_is_served_and_documented(
    make_api: MakeApi, classifier: BuiltModel
) -> None:
    """The route table is the one list: each route dispatches (never 404/405) on the
    function its auth class names, and the OpenAPI document lists exactly the table."""
    api = make_api(classifier)
    for route in ROUTES:
        handle = api.handle_predict if route.auth == "predict" else api.handle_admin
        other = api.handle_admin if route.auth == "predict" else api.handle_predict
        event = {"httpMethod": route.method, "path": route.path, "body": "{}"}
        assert handle(event)["statusCode"] not in (404, 405), route
        assert other(event)["statusCode"] == 404, route
    _, doc = admin(api, "GET", "/openapi.json")
    documented = {(m.upper(), p) for p, methods in doc["paths"].items() for m in methods}
    assert documented == {(route.method, route.path) for route in ROUTES}


def test_stdout_delivery_prints_events_the_ingest_path_can_parse(
    tmp_path: Path, regression: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        log_delivery="stdout",
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
    )
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), regression)
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    post(api, "/stream", records_of(regression, 1)[0], request_id="out-1")
    api.handle_predict(api_event("POST", "/batch", raw_body='{"data": []}', request_id="out-2"))
    lines = capsys.readouterr().out.splitlines()
    events = events_from_lines(lines)
    assert [(e.type, e.request_id) for e in events] == [("prediction", "out-1"), ("error", "out-2")]
    assert all(json.loads(line).keys() == {"mlsys_event"} for line in lines)
    # stdout delivery never touched the store
    assert admin(api, "GET", "/log")[1]["result"] == []


def test_emf_metrics_carry_model_version_and_error_code(
    tmp_path: Path, regression: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), regression)
    api = Api(InferenceService.from_settings(settings, emit_metrics=True))
    post(api, "/batch", records_of(regression, 3))
    api.handle_predict(api_event("POST", "/batch", raw_body='{"data": []}'))
    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    by_metric = {}
    for doc in documents:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "mlsys"
            for metric in directive["Metrics"]:
                by_metric.setdefault(metric["Name"], doc)
    assert by_metric["Records"]["Records"] in (3, [3])
    assert by_metric["ColdStart"]["ColdStart"] in (1, [1])
    assert by_metric["Requests"]["ModelVersion"] == regression.card.version
    assert len(by_metric["PredictionValue"]["PredictionValue"]) == 3
    assert by_metric["ModelLoadTime"]["ModelVersion"] == regression.card.version
    assert by_metric["Errors"]["ErrorCode"] == "empty_batch"
    assert by_metric["Latency"]["service"] == "inference"


def test_proxy_resource_events_route_by_path(make_api: MakeApi, regression: BuiltModel) -> None:
    api = make_api(regression)
    event = api_event("POST", "/stream", body={"data": records_of(regression, 1)[0]})
    event["resource"] = "/{proxy+}"
    assert api.handle_predict(event)["statusCode"] == 200
