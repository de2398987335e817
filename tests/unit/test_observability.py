"""One observability module: request ids on every log line, the request's EMF
metrics in the same JSON line as its system-log event, tracing only where active."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_inference import entrypoints
from lambda_inference.handler import Api
from lambda_inference.observability import inject_request_context, logger
from lambda_inference.service import InferenceService
from mlsys.eventlog import events_from_lines
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings, load_settings
from tests.inference_support import api_event, body_of, build_classifier, publish


class Context:
    function_name = "mlsys-predict"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:mlsys-predict"
    aws_request_id = "lambda-request-1"


def test_log_lines_carry_the_lambda_and_api_gateway_request_ids() -> None:
    stream = io.StringIO()
    handler = logger.handlers[0]
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        entry = inject_request_context(lambda event, context: logger.info("inside"))
        entry(api_event("GET", "/health", request_id="gateway-7"), Context())
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["correlation_id"] == "gateway-7"
    assert line["function_request_id"] == "lambda-request-1"
    assert line["function_name"] == "mlsys-predict"


@pytest.fixture
def printed(tmp_path: Path) -> tuple[Api, io.StringIO]:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
        log_delivery="stdout",
    )
    publish(
        ModelRegistry.open(settings.registry_uri, model_name="default"),
        build_classifier(version="20260101T000000Z-oooooo"),
    )
    stdout = io.StringIO()
    return Api(InferenceService.from_settings(settings, stdout=stdout)), stdout


def test_a_prediction_is_one_line_both_event_and_emf_metrics(
    printed: tuple[Api, io.StringIO],
) -> None:
    api, stdout = printed
    response = api.handle_predict(api_event("POST", "/stream", body={"data": record(api)}))
    assert response["statusCode"] == 200
    lines = [line for line in stdout.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1
    document: dict[str, Any] = json.loads(lines[0])
    # What the CloudWatch subscription filter { $.mlsys_event.type = "*" } and the
    # ingest handler read...
    (event,) = events_from_lines(lines)
    assert event.request_id == body_of(response)["request_id"] == "req-1"
    # ...and what CloudWatch extracts as metrics from the same line.
    directives = document["_aws"]["CloudWatchMetrics"]
    assert {d["Namespace"] for d in directives} == {"mlsys"}
    names = {m["Name"] for d in directives for m in d["Metrics"]}
    assert names == {"Requests", "Records", "Latency", "PredictedClass"}
    assert (document["Requests"], document["Records"], document["PredictedClass"]) == (1, 1, 1)
    assert document["ModelVersion"] == "20260101T000000Z-oooooo"
    assert document["Class"] == body_of(response)["result"]


def record(api: Api) -> dict[str, Any]:
    features = api.service.tracker.current().card.features
    return {f.name: 1.0 if f.kind == "numeric" else "a" for f in features}


def test_tracing_is_on_only_where_lambda_has_active_tracing() -> None:
    assert load_settings({}).tracing is False
    assert load_settings({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}).tracing is True
    disabled = {"AWS_XRAY_DAEMON_ADDRESS": "x", "POWERTOOLS_TRACE_DISABLED": "true"}
    assert load_settings(disabled).tracing is False


class LiveAliasContext(Context):
    """What Lambda passes when the ``live`` alias runs version 7."""

    function_version = "7"


def server_errors(output: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [d for d in documents if "ServerErrors" in d]


def test_a_5xx_counts_for_the_function_version_that_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The handler answers every failure itself, so Lambda's Errors metric stays at zero:
    # the code canary's rollback alarm needs this count (infra/deployment.py).
    settings = Settings(registry_uri=str(tmp_path / "empty"), log_uri=f"sqlite:///{tmp_path}/l")
    api = Api(InferenceService.from_settings(settings))
    capsys.readouterr()
    unavailable = api.handle_admin(api_event("GET", "/health"), LiveAliasContext())
    assert unavailable["statusCode"] == 503
    (metric,) = server_errors(capsys.readouterr().out)
    assert metric["ServerErrors"] == [1.0]
    assert (metric["service"], metric["FunctionName"], metric["FunctionVersion"]) == (
        "inference",
        "mlsys-predict",
        "7",
    )
    (directive,) = metric["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlsys"
    assert directive["Dimensions"] == [["service", "FunctionName", "FunctionVersion"]]
    # A client's mistake is no server error; without a Lambda version nothing is counted.
    bad = api.handle_predict(api_event("POST", "/stream", raw_body="{"), LiveAliasContext())
    assert bad["statusCode"] == 400
    assert api.handle_admin(api_event("GET", "/health"), Context())["statusCode"] == 503
    assert api.handle_admin(api_event("GET", "/health"), None)["statusCode"] == 503
    assert server_errors(capsys.readouterr().out) == []


def test_a_container_that_cannot_start_its_service_counts_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLSYS_LOG_DELIVERY", "carrier-pigeon")
    entrypoints.reset_default_api()
    try:
        response = entrypoints.handle_predict(
            api_event("POST", "/stream", body={}), LiveAliasContext()
        )
    finally:
        entrypoints.reset_default_api()
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "invalid_config"
    (metric,) = server_errors(capsys.readouterr().out)
    assert metric["FunctionVersion"] == "7"
