"""The local server's own HTTP handling, over real sockets on 127.0.0.1.

Whatever a client sends, the answer is the API's JSON error shape, and a
request the server cannot frame closes the connection instead of leaving
bytes behind to be read as the next request.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_inference import server
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.cli import main as mlsys_main
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import BuiltModel, build_regression, publish


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("server")
    settings = Settings(
        registry_uri=str(root / "registry"), log_uri=f"sqlite:///{root}/log.sqlite3"
    )
    built: BuiltModel = build_regression(version="20260101T000000Z-ssssss")
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), built)
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    httpd = server.create_server(api, host="127.0.0.1", port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def exchange(
    address: tuple[str, int], raw: bytes, *, method: str = "POST"
) -> tuple[http.client.HTTPResponse, bytes, bytes]:
    """Send raw bytes; the response, its body, and what the server sent after it
    (b"" once it closed the connection, as it must after a framing error)."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(raw)
        response = http.client.HTTPResponse(conn, method=method)
        response.begin()
        body = response.read()
        after = b"<kept open>"
        if response.getheader("Connection") == "close":
            try:
                after = conn.recv(65536)
            except TimeoutError:
                after = b"<still open>"
    return response, body, after


def error_of(response: http.client.HTTPResponse, body: bytes) -> dict[str, Any]:
    assert response.getheader("Content-Type") == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "details"}
    return payload["error"]  # type: ignore[no-any-return]


ROW = json.dumps({"data": [0.01] * 10}).encode()


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_bad_content_length_is_a_json_400_and_closes(
    address: tuple[str, int], length: str
) -> None:
    raw = f"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    response, body, after = exchange(address, raw + ROW)
    error = error_of(response, body)
    assert (response.status, error["code"]) == (400, "bad_request")
    assert error["message"] == (f"Content-Length must be one non-negative integer, got {length!r}")
    assert after == b""


def test_a_chunked_body_is_refused_with_411_not_parsed_as_the_next_request(
    address: tuple[str, int],
) -> None:
    chunked = f"{len(ROW):x}\r\n".encode() + ROW + b"\r\n0\r\n\r\n"
    raw = b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    response, body, after = exchange(address, raw)
    error = error_of(response, body)
    assert (response.status, error["code"]) == (411, "length_required")
    assert "Content-Length" in error["message"]
    assert response.getheader("Connection") == "close"
    assert after == b""


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_get_the_apis_405_with_allow(
    address: tuple[str, int], method: str
) -> None:
    raw = f"{method} /stream HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    response, body, _ = exchange(address, raw, method=method)
    assert response.status == 405
    assert response.getheader("Allow") == "POST"
    assert response.getheader("Content-Type") == "application/json"
    if method == "HEAD":
        assert body == b""
    else:
        assert error_of(response, body)["code"] == "method_not_allowed"


def test_a_body_over_the_servers_cap_is_a_json_413(address: tuple[str, int]) -> None:
    declared = server.MAX_REQUEST_BYTES + 1
    raw = f"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode()
    response, body, _ = exchange(address, raw)
    error = error_of(response, body)
    assert (response.status, error["code"]) == (413, "payload_too_large")
    assert error["message"].startswith(f"request body is {declared} bytes")


def test_a_request_line_the_server_cannot_parse_is_json(address: tuple[str, int]) -> None:
    response, body, after = exchange(address, b"GET /health HTTP/7.0\r\n\r\n")
    error = error_of(response, body)
    assert (response.status, error["code"]) == (505, "http_version_not_supported")
    assert after == b""


def test_a_gzip_body_is_served(address: tuple[str, int]) -> None:
    compressed = gzip.compress(ROW)
    head = (
        "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(compressed)}\r\n\r\n"
    )
    response, body, _ = exchange(address, head.encode() + compressed)
    assert response.status == 200
    assert isinstance(json.loads(body)["result"], float)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "99999", "argument --port: must be an integer from 0 to 65535, got '99999'"),
        ("--port", "http", "argument --port: must be an integer from 0 to 65535, got 'http'"),
        ("--host", "not a host", "argument --host: must be an IP address or host name"),
    ],
)
def test_serve_rejects_a_bad_address_in_one_line(
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        mlsys_main(["serve", option, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlsys serve: error: {message}")
    assert len(err.strip().splitlines()) == 1


def test_serve_on_an_address_not_of_this_machine_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mlsys_main(
        [
            "serve",
            "--registry",
            str(tmp_path),
            "--log",
            f"sqlite:///{tmp_path}/log.sqlite3",
            "--host",
            "192.0.2.1",  # TEST-NET-1: never assigned to a local interface
            "--port",
            "0",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsys serve: error: cannot listen on 192.0.2.1:0: ")
    assert len(err.splitlines()) == 1
