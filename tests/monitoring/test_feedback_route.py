"""POST /feedback through API Gateway events: validation names the item, events are logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambda_inference.handler import Api
from tests.inference_support import api_event, body_of
from tests.monitoring.support import Trained, make_api


def call(api: Api, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    response = api.handle_local(api_event(method, path, body=body, **kwargs))
    return response["statusCode"], body_of(response)


@pytest.fixture
def reg_api(regressor: Trained, tmp_path: Path) -> Api:
    return make_api(regressor, f"sqlite:///{tmp_path}/log.sqlite3")


@pytest.fixture
def cls_api(classifier: Trained, tmp_path: Path) -> Api:
    return make_api(classifier, f"sqlite:///{tmp_path}/log.sqlite3")


def test_feedback_is_accepted_logged_listed_and_cleared(reg_api: Api) -> None:
    status, body = call(
        reg_api,
        "POST",
        "/feedback",
        {
            "data": [
                {"request_id": "a", "actual": 1.5},
                {"request_id": "b", "index": 3, "actual": 2},
            ]
        },
        request_id="fb-1",
    )
    assert status == 200
    assert body == {"result": {"accepted": 2}, "request_id": "fb-1"}
    status, log = call(reg_api, "GET", "/log", query={"type": "feedback"})
    assert status == 200
    (event,) = log["result"]
    assert event["type"] == "feedback"
    assert event["request_id"] == "fb-1"
    assert event["data"]["items"] == [
        {"request_id": "a", "index": 0, "actual": 1.5},
        {"request_id": "b", "index": 3, "actual": 2},
    ]
    assert call(reg_api, "GET", "/emptyLog")[0] == 200
    assert call(reg_api, "GET", "/log", query={"type": "feedback"})[1]["result"] == []


def test_one_item_form(reg_api: Api) -> None:
    status, body = call(reg_api, "POST", "/feedback", {"data": {"request_id": "a", "actual": 0}})
    assert (status, body["result"]) == (200, {"accepted": 1})


@pytest.mark.parametrize(
    ("item", "member"),
    [
        ({"request_id": "a", "actual": "high"}, "actual"),
        ({"request_id": "a", "actual": True}, "actual"),
        ({"request_id": "a", "actual": None}, "actual"),
        ({"request_id": "a"}, "actual"),
        ({"request_id": "", "actual": 1}, "request_id"),
        ({"request_id": 7, "actual": 1}, "request_id"),
        ({"request_id": "a", "index": -1, "actual": 1}, "index"),
        ({"request_id": "a", "index": 1.5, "actual": 1}, "index"),
        ({"request_id": "a", "actual": 1, "label": 2}, "label"),
    ],
)
def test_regression_feedback_errors_name_the_item_and_member(
    reg_api: Api, item: dict[str, Any], member: str
) -> None:
    good = {"request_id": "ok", "actual": 1.0}
    status, body = call(reg_api, "POST", "/feedback", {"data": [good, item]})
    assert status == 400
    assert body["error"]["code"] == "invalid_feedback"
    assert body["error"]["message"].startswith("feedback item 1:")
    assert body["error"]["details"] == {"item": 1, "member": member}
    # Nothing of a refused request is logged.
    assert call(reg_api, "GET", "/log", query={"type": "feedback"})[1]["result"] == []


def test_classifier_feedback_must_be_a_known_class(cls_api: Api) -> None:
    assert (
        call(cls_api, "POST", "/feedback", {"data": {"request_id": "a", "actual": "mid"}})[0] == 200
    )
    status, body = call(
        cls_api, "POST", "/feedback", {"data": {"request_id": "a", "actual": "huge"}}
    )
    assert status == 400
    assert "'huge' is not a class" in body["error"]["message"]
    assert body["error"]["details"] == {"item": 0, "member": "actual"}


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"data": []}, "empty_batch", 400),
        ({"data": [1]}, "invalid_request", 400),
        ({"feedback": []}, "invalid_request", 400),
    ],
)
def test_malformed_feedback_bodies(reg_api: Api, body: Any, code: str, status: int) -> None:
    got_status, got = call(reg_api, "POST", "/feedback", body)
    assert (got_status, got["error"]["code"]) == (status, code)


def test_too_many_items_is_413(regressor: Trained, tmp_path: Path) -> None:
    from lambda_inference.service import InferenceService  # noqa: PLC0415
    from mlsys.settings import Settings  # noqa: PLC0415

    settings = Settings(
        registry_uri=str(regressor.registry),
        model_name=regressor.model_name,
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
        max_batch_records=3,
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    items = [{"request_id": str(i), "actual": 1} for i in range(4)]
    status, body = call(api, "POST", "/feedback", {"data": items})
    assert (status, body["error"]["code"]) == (413, "too_many_records")


def test_large_feedback_is_split_into_bounded_events(reg_api: Api) -> None:
    items = [{"request_id": f"request-{i:05d}", "actual": i * 0.5} for i in range(1000)]
    assert call(reg_api, "POST", "/feedback", {"data": items})[1]["result"] == {"accepted": 1000}
    logged = call(reg_api, "GET", "/log", query={"type": "feedback", "limit": "100"})[1]["result"]
    assert len(logged) == 5
    assert sorted(i["request_id"] for e in logged for i in e["data"]["items"]) == [
        i["request_id"] for i in items
    ]


def test_feedback_is_in_the_openapi_document(reg_api: Api, cls_api: Api) -> None:
    document = call(reg_api, "GET", "/openapi.json")[1]
    post = document["paths"]["/feedback"]["post"]
    item = post["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert item["oneOf"][0]["properties"]["actual"]["type"] == "number"
    assert "400" in post["responses"]
    assert "feedback" in document["paths"]["/log"]["get"]["parameters"][1]["schema"]["enum"]
    classes = call(cls_api, "GET", "/openapi.json")[1]["paths"]["/feedback"]["post"]
    schema = classes["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]["data"]["oneOf"][0]["properties"]["actual"]["enum"]) == {
        "high",
        "mid",
        "low",
    }


def test_feedback_is_a_predict_route(reg_api: Api) -> None:
    event = api_event("POST", "/feedback", body={"data": {"request_id": "a", "actual": 1}})
    assert reg_api.handle_predict(event)["statusCode"] == 200
    assert reg_api.handle_admin(event)["statusCode"] == 404
