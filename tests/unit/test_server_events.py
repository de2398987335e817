"""``mlsys serve``'s adapter turns HTTP requests into API Gateway v1 events."""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.local.adapter import HttpAdapter, build_event
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


def call_adapter(adapter: HttpAdapter, environ: dict[str, Any]) -> tuple[str, dict[str, str], Any]:
    started: list[Any] = []
    chunks = adapter(environ, lambda status, headers: started.append((status, dict(headers))))
    body = b"".join(chunks)
    return started[0][0], started[0][1], json.loads(body) if body else None


def environ_for(method: str, path: str, body: bytes = b"", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.input": io.BytesIO(body),
        **extra,
    }


def test_the_adapter_answers_with_the_handlers_json(tmp_path: Path) -> None:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    adapter = HttpAdapter(build_api(settings), max_body_bytes=100)
    status, headers, body = call_adapter(adapter, environ_for("GET", "/health"))
    assert status.startswith("503 ")
    assert headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == "no_champion"
    # Over the limit from Content-Length alone: the body stream is never read.
    unread = environ_for("POST", "/stream", CONTENT_LENGTH="101")
    unread["wsgi.input"] = None
    status, _, body = call_adapter(adapter, unread)
    assert (status[:3], body["error"]["code"]) == ("413", "payload_too_large")
    adapter.close()


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
