"""``mlsys serve`` translates HTTP requests into API Gateway v1 events."""

from __future__ import annotations

import argparse
import base64
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lambda_inference import server
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.settings import Settings


def test_event_carries_method_path_query_headers_and_body() -> None:
    event = server.build_event(
        method="GET",
        target="/log?limit=5&type=error&type=training",
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
    event = server.build_event(
        method="POST", target="/stream", headers={}, body=b"\xff\x00", request_id="r"
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"


def test_port_in_use_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        parser = argparse.ArgumentParser()
        server.add_arguments(parser)
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
        assert server.run(args, Settings()) == 2  # bad input: the address is taken
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsys serve: error: cannot listen on 127.0.0.1:")
    assert len(err.splitlines()) == 1


def test_in_process_server_answers_with_the_handlers_json(tmp_path: Path) -> None:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    httpd = server.create_server(api, host="127.0.0.1", port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/health"
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=10)
        assert caught.value.code == 503
        assert caught.value.headers["Content-Type"] == "application/json"
        assert json.loads(caught.value.read())["error"]["code"] == "no_champion"
    finally:
        httpd.shutdown()
        httpd.server_close()
