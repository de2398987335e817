"""``mlsys serve``'s adapter turns HTTP requests into API Gateway v1 events."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.local.adapter import HttpAdapter, build_event
from lambda_inference.local.origin import BrowserPolicy
from lambda_inference.local.server import build_api
from mlsys.cli import serve
from mlsys.settings import Settings


def test_event_carries_method_path_query_headers_and_body() -> None:
    event = build_event(
        method="GET",
        path="/log",
        query="limit=5&type=error&type=training",
        headers={"Accept": "application/json"},
        body=b"",
        request_id="r-1",
    )
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/log"
    assert event["queryStringParameters"] == {"limit": "5", "type": "training"}
    assert event["multiValueQueryStringParameters"]["type"] == ["error", "training"]
    assert event["requestContext"]["requestId"] == "r-1"
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_encoded_like_api_gateway() -> None:
    event = build_event(
        method="POST", path="/stream", query="", headers={}, body=b"\xff\x00", request_id="r"
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"


def call_adapter(
    adapter: HttpAdapter,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    chunks: list[bytes] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request through the ASGI application: status, headers, JSON body.
    ``chunks`` (instead of ``body``) arrive one receive() each; None means the
    client disconnected."""
    sent: list[dict[str, Any]] = []
    pending = list(chunks) if chunks is not None else [body]
    all_headers = {"host": "127.0.0.1:8080", **(headers or {})}
    if chunks is None and body:
        all_headers.setdefault("content-length", str(len(body)))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        if not pending:
            raise AssertionError("the body was read past its end")
        chunk = pending.pop(0)
        if chunk is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(adapter(scope, receive, send))
    if not sent:
        return 0, {}, None
    start, content = sent
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    payload = content["body"]
    return start["status"], names, json.loads(payload) if payload else None


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[HttpAdapter]:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    made = HttpAdapter(build_api(settings), max_body_bytes=100)
    yield made
    made.close()


def test_the_adapter_answers_with_the_handlers_json(adapter: HttpAdapter) -> None:
    status, headers, body = call_adapter(adapter, "GET", "/health")
    assert status == 503
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert body["error"]["code"] == "no_champion"


def test_a_body_over_the_limit_is_refused_from_its_length_without_reading_it(
    adapter: HttpAdapter,
) -> None:
    # receive() would fail the test if the adapter read the body.
    status, headers, body = call_adapter(
        adapter, "POST", "/stream", headers={"content-length": "101"}, chunks=[]
    )
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert headers["connection"] == "close"


def test_a_chunked_body_is_read_to_the_limit_and_refused_past_it(adapter: HttpAdapter) -> None:
    status, headers, body = call_adapter(
        adapter,
        "POST",
        "/stream",
        headers={"transfer-encoding": "chunked", "content-type": "application/json"},
        chunks=[b"x" * 60, b"x" * 60],
    )
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert headers["connection"] == "close"


@pytest.mark.parametrize("coding", ["identity, chunked", "gzip, chunked", "chunked, chunked"])
def test_a_transfer_coding_other_than_chunked_is_a_400(adapter: HttpAdapter, coding: str) -> None:
    status, headers, body = call_adapter(
        adapter, "POST", "/stream", headers={"transfer-encoding": coding}, chunks=[]
    )
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert headers["connection"] == "close"


def test_a_client_that_leaves_mid_body_gets_no_answer_and_runs_no_handler(
    adapter: HttpAdapter,
) -> None:
    status, _, _ = call_adapter(
        adapter, "POST", "/stream", headers={"content-length": "50"}, chunks=[b"{", None]
    )
    assert status == 0


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"host": "attacker.example:8080"}, "DNS rebinding"),
        ({"origin": "http://attacker.example"}, "cross-origin request"),
        ({"origin": "http://127.0.0.1:9999"}, "cross-origin request"),
        ({"origin": "null"}, "cross-origin request"),
        ({"sec-fetch-site": "cross-site"}, "another site"),
        ({"sec-fetch-site": "same-site"}, "another site"),
    ],
)
def test_browser_requests_from_elsewhere_are_403_and_logged(
    adapter: HttpAdapter, headers: dict[str, str], reason: str
) -> None:
    status, response_headers, body = call_adapter(adapter, "GET", "/emptyLog", headers=headers)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert reason in body["error"]["message"]
    assert response_headers["x-content-type-options"] == "nosniff"
    logged = adapter.api.service.event_log().query(limit=5).events
    assert [(e.type, e.data["status"], e.data["route"]) for e in logged] == [
        ("error", 403, "GET /emptyLog")
    ]


def test_a_bug_in_the_adapter_is_still_a_json_500(
    adapter: HttpAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(adapter, "_handle", broken)
    status, headers, body = call_adapter(adapter, "GET", "/health")
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert headers["content-type"] == "application/json"


def test_same_origin_and_non_browser_requests_pass_the_browser_checks() -> None:
    policy = BrowserPolicy.for_server("my-box.lan", ["ml.internal"])
    for headers in (
        {},
        {"host": "127.0.0.1:8080"},
        {"host": "[::1]:8080"},
        {"host": "LOCALHOST:8080", "origin": "http://localhost:8080"},
        {"host": "api.localhost"},
        {"host": "my-box.lan:8080", "sec-fetch-site": "same-origin"},
        {"host": "ml.internal.", "sec-fetch-site": "none"},
        {"host": "192.168.1.5:8080", "origin": "http://192.168.1.5:8080"},
    ):
        assert policy.refusal(headers) is None, headers
    assert policy.refusal({"host": "other.lan"}) is not None
    assert BrowserPolicy.for_server("0.0.0.0").allowed_names == frozenset({"localhost"})


def test_port_in_use_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        parser = argparse.ArgumentParser()
        serve.add_arguments(parser)
        args = parser.parse_args(
            [
                "--registry",
                str(tmp_path),
                "--port",
                str(port),
                "--log",
                f"sqlite:///{tmp_path}/log.sqlite3",
            ]
        )
        assert serve.run(args, Settings()) == 2  # bad input: the address is taken
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsys serve: error: cannot listen on 127.0.0.1:")
    assert len(err.splitlines()) == 1
