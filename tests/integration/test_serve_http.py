"""``mlsys serve`` (gunicorn, several workers) over real sockets on 127.0.0.1.

Whatever a client sends, the answer is the API's JSON error shape; slow and
idle connections are closed; bodies over the limit are refused from their
``Content-Length`` before they are read; every method a route does not serve
is a 405 with ``Allow``; SIGTERM lets in-flight requests finish and writes
every acknowledged event.
"""

from __future__ import annotations

import gzip
import http.client
import json
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mlsys.cli import main as mlsys_main
from tests.serve_support import ServeProcess, publish_regression

pytestmark = pytest.mark.slow
ROW = json.dumps({"data": [0.01] * 10}).encode()
TIMEOUT = 2  # --keepalive and --request-timeout of the module's server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    registry, log_uri = publish_regression(tmp_path_factory.mktemp("serve"))
    server = ServeProcess(
        registry,
        log_uri,
        "--workers",
        "2",
        "--keepalive",
        str(TIMEOUT),
        "--request-timeout",
        str(TIMEOUT),
    )
    yield server
    assert server.stop() == 0


def exchange(
    address: tuple[str, int], raw: bytes, *, method: str = "POST"
) -> tuple[http.client.HTTPResponse, bytes, bytes]:
    """Send raw bytes; the response, its body, and what the server sent after it
    (b"" once it closed the connection)."""
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
    return payload["error"]  # type: ignore[no-any-return]


def post_head(length: int | str, path: str = "/stream") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_kept_alive_connection_serves_many_requests(served: ServeProcess) -> None:
    connection = http.client.HTTPConnection(*served.address, timeout=10)
    for _ in range(20):
        connection.request(
            "POST", "/stream", body=ROW, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200
        assert isinstance(json.loads(response.read())["result"], float)
    connection.close()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PUT", "PATCH", "OPTIONS", "PROPFIND"])
def test_every_method_a_route_does_not_serve_is_a_json_405_with_allow(
    served: ServeProcess, method: str
) -> None:
    raw = f"{method} /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    response, body, _ = exchange(served.address, raw, method=method)
    assert response.status == 405
    assert response.getheader("Allow") == "POST"
    error = error_of(response, body)
    assert error["code"] == "method_not_allowed"
    assert error["message"].startswith(f"{method} is not allowed on /stream")


def test_the_root_lists_every_route_with_its_summary(served: ServeProcess) -> None:
    connection = http.client.HTTPConnection(*served.address, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    routes = json.loads(response.read())["routes"]
    connection.close()
    paths = {route["path"] for route in routes}
    assert paths >= {"/stream", "/batch", "/feedback", "/log", "/health", "/monitor"}
    assert all(route["summary"] for route in routes)


@pytest.mark.parametrize("method", ["get", "FOO"])
def test_a_method_that_is_no_http_method_is_a_json_400(served: ServeProcess, method: str) -> None:
    raw = f"{method} /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    response, body, after = exchange(served.address, raw, method="GET")
    error = error_of(response, body)
    assert (response.status, error["code"]) == (400, "bad_request")
    assert "method" in error["message"]
    assert after == b""


def test_head_is_a_405_without_a_body(served: ServeProcess) -> None:
    response, body, _ = exchange(
        served.address, b"HEAD /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method="HEAD"
    )
    assert (response.status, response.getheader("Allow"), body) == (405, "POST", b"")


def test_a_body_over_the_limit_is_refused_from_its_content_length_before_reading(
    served: ServeProcess,
) -> None:
    # Only the headers are sent: the answer cannot have waited for 60 MB.
    response, body, after = exchange(served.address, post_head(60_000_000, "/batch"))
    error = error_of(response, body)
    assert (response.status, error["code"]) == (413, "payload_too_large")
    assert error["details"] == {"bytes": 60_000_000, "limit": 6_000_000}
    assert response.getheader("Connection") == "close"
    assert after == b""


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_bad_content_length_is_a_json_400_and_closes(served: ServeProcess, length: str) -> None:
    response, body, after = exchange(served.address, post_head(length) + ROW)
    error = error_of(response, body)
    assert (response.status, error["code"]) == (400, "bad_request")
    assert after == b""


def test_a_request_line_the_server_cannot_parse_is_json(served: ServeProcess) -> None:
    response, body, after = exchange(served.address, b"GET /health HTTP/7.0\r\n\r\n")
    error = error_of(response, body)
    assert (response.status, error["code"]) == (400, "bad_request")
    assert after == b""


def test_chunked_and_gzip_bodies_are_served(served: ServeProcess) -> None:
    chunked = f"{len(ROW):x}\r\n".encode() + ROW + b"\r\n0\r\n\r\n"
    raw = (
        b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked
    )
    response, body, _ = exchange(served.address, raw)
    assert response.status == 200
    compressed = gzip.compress(ROW)
    head = (
        "POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(compressed)}\r\n\r\n"
    )
    response, body, _ = exchange(served.address, head.encode() + compressed)
    assert response.status == 200
    assert isinstance(json.loads(body)["result"], float)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (post_head(2**64), "Content-Length overflow"),
        (post_head(10**30), "Content-Length overflow"),
        (
            b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
            "Chunk size overflow",
        ),
        (
            b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: identity, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "Transfer-Encoding 'identity, chunked' is not supported",
        ),
        (
            b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "Transfer-Encoding can't be present with Content-Length",
        ),
        (post_head("2\r\nContent-Length: 3"), "Duplicate Content-Length"),
    ],
)
def test_a_request_that_cannot_be_framed_is_a_json_400_at_once(
    served: ServeProcess, head: bytes, reason: str
) -> None:
    # The connection stays open on the client's side: the answer cannot be a timeout.
    response, body, after = exchange(served.address, head)
    error = error_of(response, body)
    assert (response.status, error["code"]) == (400, "bad_request")
    assert reason in error["message"]
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert after == b""


@pytest.mark.parametrize(
    ("members", "status", "code"),
    [(295_000, 413, "payload_too_large"), (200_000, 400, "invalid_content_encoding")],
)
def test_a_gzip_body_of_many_empty_members_is_refused_at_once(
    served: ServeProcess, members: int, status: int, code: str
) -> None:
    bomb = gzip.compress(b"") * members + gzip.compress(ROW)
    head = (
        "POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    )
    response, body, _ = exchange(served.address, head.encode() + bomb)
    assert (response.status, error_of(response, body)["code"]) == (status, code)


def test_over_long_headers_and_targets_are_refused(served: ServeProcess) -> None:
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70))
    response, body, _ = exchange(
        served.address, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n"
    )
    assert (response.status, error_of(response, body)["code"]) == (431, "headers_too_large")
    response, body, _ = exchange(
        served.address, b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
    )
    assert (response.status, error_of(response, body)["code"]) == (414, "uri_too_long")


def closed_within(conn: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes the connection (within ``seconds``)."""
    conn.settimeout(seconds)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def test_a_half_sent_body_is_answered_408_and_closed(served: ServeProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as conn:
        conn.sendall(post_head(100) + b"{}")
        received = closed_within(conn, TIMEOUT * 5)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in received


def test_half_sent_headers_are_answered_408_and_closed(served: ServeProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as conn:
        conn.sendall(b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        received = closed_within(conn, TIMEOUT * 5)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in received


def test_a_client_trickling_headers_is_cut_off_at_the_deadline_of_its_arrival(
    served: ServeProcess,
) -> None:
    """A header line every half second would go on for 10 s; the deadline (2 s) counts
    from the connection's arrival, however steadily the client keeps sending."""
    with socket.create_connection(served.address, timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        lines_sent = 0
        received = b""
        for lines_sent in range(1, 21):
            time.sleep(0.5)
            try:
                conn.sendall(b"X-Slow-%d: 1\r\n" % lines_sent)
            except OSError:
                break  # closed by the server
            conn.settimeout(0.01)
            try:
                received = conn.recv(65536)
            except TimeoutError:
                continue
            break
        conn.settimeout(10)
        received += closed_within(conn, 10) if received else b""
    assert received.startswith(b"HTTP/1.1 408 "), (lines_sent, received[:100])
    assert lines_sent < 20


def test_stalled_connections_do_not_hold_back_other_requests(served: ServeProcess) -> None:
    """More stalled clients than the server has request threads (2 workers x 8):
    each costs a socket, so /health is still answered."""
    stalled = [socket.create_connection(served.address, timeout=10) for _ in range(60)]
    try:
        for number, conn in enumerate(stalled):
            if number % 2:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:
                conn.sendall(post_head(1000) + b'{"data":')
        for _ in range(5):
            assert served.call("GET", "/health")[0] == 200
    finally:
        for conn in stalled:
            conn.close()


def test_an_idle_connection_is_closed(served: ServeProcess) -> None:
    with socket.create_connection(served.address, timeout=10) as conn:
        # gunicorn waits 5 s for a first byte, then the keep-alive timeout.
        assert closed_within(conn, 5 + TIMEOUT * 5) == b""


def test_five_hundred_simultaneous_connections_are_all_answered(served: ServeProcess) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    connections = [socket.create_connection(served.address, timeout=30) for _ in range(500)]
    try:
        for conn in connections:
            conn.sendall(request)
        statuses = [closed_within(conn, 30).split(b" ", 2)[1] for conn in connections]
    finally:
        for conn in connections:
            conn.close()
    assert statuses == [b"200"] * 500


def test_sigterm_finishes_in_flight_requests_and_writes_their_events(tmp_path: Path) -> None:
    registry, log_uri = publish_regression(tmp_path)
    server = ServeProcess(registry, log_uri, "--workers", "2")
    with socket.create_connection(server.address, timeout=30) as conn:
        conn.sendall(post_head(len(ROW)) + ROW[:5])  # in flight when SIGTERM arrives
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.sendall(ROW[5:])
        response = http.client.HTTPResponse(conn, method="POST")
        response.begin()
        answered = json.loads(response.read())
    assert response.status == 200
    assert server.stop() == 0
    log_path = log_uri.removeprefix("sqlite:///")
    with closing(sqlite3.connect(log_path)) as connection:
        stored = [
            json.loads(body)["request_id"]
            for (body,) in connection.execute("SELECT body FROM events WHERE type='prediction'")
        ]
    assert stored == [answered["request_id"]]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "99999", "argument --port: must be an integer from 0 to 65535, got '99999'"),
        ("--host", "not a host", "argument --host: must be an IP address or host name"),
        ("--workers", "0", "argument --workers: must be an integer from 1 to 256, got '0'"),
        ("--keepalive", "60", "argument --keepalive: must be an integer from 1 to 30, got '60'"),
        (
            "--request-timeout",
            "٣",
            "argument --request-timeout: must be an integer from 1 to 30, got '٣'",
        ),
    ],
)
def test_serve_rejects_bad_options_in_one_line(
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


def test_a_non_loopback_address_is_served_with_a_warning_and_host_names_are_checked(
    tmp_path: Path,
) -> None:
    registry, log_uri = publish_regression(tmp_path)
    server = ServeProcess(
        registry, log_uri, "--workers", "1", "--host", "0.0.0.0", "--allowed-host", "ml.internal"
    )
    try:
        address = ("127.0.0.1", server.address[1])
        statuses = {}
        for host in ("ml.internal", "ML.INTERNAL.", "127.0.0.1", "rebound.example", "localhost"):
            raw = f"GET /health HTTP/1.1\r\nHost: {host}:{address[1]}\r\n\r\n".encode()
            statuses[host] = exchange(address, raw, method="GET")[0].status
    finally:
        assert server.stop() == 0
    assert statuses == {
        "ml.internal": 200,
        "ML.INTERNAL.": 200,
        "127.0.0.1": 200,
        "rebound.example": 403,
        "localhost": 200,
    }
    warnings = [line for line in server.output if "warning" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("mlsys serve: warning: listening on 0.0.0.0, not a loopback")
