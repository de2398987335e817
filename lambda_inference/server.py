"""``mlsys serve``: the Lambda handlers on a local HTTP server.

Each HTTP request becomes the API Gateway REST (v1 proxy) event API Gateway
would send, and goes through the same :class:`~lambda_inference.handler.Api`,
so local and AWS behaviour cannot drift. One service (one onnxruntime session,
one SQLite connection serialised by a lock) is shared by the server's threads.

System-log events use ``background`` delivery by default (``--log-delivery``):
a request only queues its event and one writer thread appends the queue to the
store in batches. The admin routes flush the queue before reading or clearing,
and :meth:`LocalServer.server_close` (run on Ctrl-C and SIGTERM) drains it, so
no event is lost when the server stops.
"""

from __future__ import annotations

import argparse
import base64
import errno
import ipaddress
import re
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lambda_inference.handler import JSON_HEADERS, Api
from lambda_inference.http import error_body, to_json
from lambda_inference.monitor_page import PATH as MONITOR_PATH
from lambda_inference.monitor_page import monitor_page
from lambda_inference.service import InferenceService
from mlsys.cli import add_location_arguments
from mlsys.settings import Settings

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Bodies above this are refused before reading (the service's own limit is lower)."""


@dataclass(frozen=True)
class LocalContext:
    """The part of Lambda's context object the handlers read."""

    aws_request_id: str
    function_name: str = "mlsys-local"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = "local"


def build_event(
    *,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    request_id: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The API Gateway REST (v1 proxy) event for one HTTP request."""
    parts = urlsplit(target)
    multi_query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text: str | None = body.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "stage": "local",
            "path": parts.path,
            "resourcePath": parts.path,
            "httpMethod": method,
            "identity": {"sourceIp": source_ip},
        },
        "body": (text if text is not None else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and text is None,
    }


DISCARD_SECONDS = 0.5
DISCARD_BYTES = 1024 * 1024
"""How long and how much the server reads after an error before it closes."""

SERVER_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}
"""Codes for the errors the HTTP server itself answers (before any handler runs)."""


def _monitor_page(api: Api, method: str, path: str) -> tuple[int, bytes, dict[str, str]] | None:
    """``GET /monitor`` (HTML, not a Lambda route), or ``None`` for every other request."""
    target = urlsplit(path)
    if method not in ("GET", "HEAD") or target.path.rstrip("/") != MONITOR_PATH:
        return None
    return monitor_page(api.service, {k: v[-1] for k, v in parse_qs(target.query).items()})


def make_handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlsys"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self._read_body()
            if body is None:
                return  # answered with an error; the connection closes
            if (page := _monitor_page(api, self.command, self.path)) is not None:
                self._send(*page)
                return
            request_id = str(uuid.uuid4())
            event = build_event(
                method=self.command,
                target=self.path,
                headers=dict(self.headers.items()),
                body=body,
                request_id=request_id,
                source_ip=self.client_address[0],
            )
            response = api.handle_local(event, LocalContext(aws_request_id=request_id))
            self._send(
                int(response["statusCode"]),
                str(response.get("body") or "").encode(),
                response.get("headers") or {},
            )

        def _read_body(self) -> bytes | None:
            """The request body, or ``None`` after answering a framing error.

            Chunked bodies are refused (411) rather than half-read: a body the
            server did not consume would be parsed as the next request.
            """
            if self.headers.get("Transfer-Encoding"):
                self.send_error(
                    411,
                    "Transfer-Encoding is not supported; send the body with a Content-Length",
                )
                return None
            raw = (self.headers.get("Content-Length") or "0").strip()
            if not raw.isdigit() or len(self.headers.get_all("Content-Length") or ()) > 1:
                self.send_error(
                    400,
                    f"Content-Length must be one non-negative integer, got {raw[:40]!r}",
                )
                return None
            length = int(raw)
            if length > MAX_REQUEST_BYTES:
                self.send_error(
                    413,
                    f"request body is {length} bytes; this server reads at most "
                    f"{MAX_REQUEST_BYTES}",
                )
                return None
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload: bytes, headers: Mapping[str, Any]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """Every error the server itself produces, as the API's JSON error body.

            ``BaseHTTPRequestHandler`` calls this for requests it cannot parse
            (bad request line, oversized headers, unknown HTTP version); the
            connection is closed because the rest of the stream cannot be trusted.
            """
            self.close_connection = True
            if self.request_version == "HTTP/0.9":
                # The request line did not parse, so no version was read: answer
                # with a status line and headers anyway, as every client expects.
                self.request_version = self.protocol_version
            phrase = self.responses.get(code, ("error", ""))[0]
            body = to_json(
                error_body(
                    SERVER_ERROR_CODES.get(code, "http_error"),
                    message or explain or phrase,
                    {"status": code},
                )
            ).encode()
            self._send(code, body, {**JSON_HEADERS, "Connection": "close"})
            self._discard_unread()

        def _discard_unread(self) -> None:
            """Read (a bounded amount of) what the client is still sending before
            the connection closes: closing a socket with unread data resets it,
            and the client could lose the error response it has not read yet."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(DISCARD_SECONDS)
                budget = DISCARD_BYTES
                while budget > 0:
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    budget -= len(chunk)
            except OSError:
                pass  # the client went away: nothing left to protect

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return  # the system log records requests; keep the console quiet

    return Handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, log_help="system log")
    parser.add_argument(
        "--host",
        type=host_argument,
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=port_argument, default=8080, help="port 0-65535 (0 picks a free one)"
    )
    parser.add_argument(
        "--log-delivery",
        choices=SERVE_LOG_DELIVERIES,
        default="background",
        help="how requests write system-log events: background (default; queued and "
        "written in batches by a writer thread) or sync (written in the request)",
    )


def port_argument(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_PORT}, got {raw!r}")
    return port


def host_argument(raw: str) -> str:
    """An IP address or a DNS host name (resolved when binding)."""
    host = raw.strip()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise argparse.ArgumentTypeError(
                f"must be an IP address or host name, got {raw!r}"
            ) from None
    return host


MAX_PORT = 65535
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
BAD_INPUT_EXIT = 2
"""The CLI's exit status for bad input or configuration (see :mod:`mlsys.cli`)."""
_BAD_ADDRESS_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


SERVE_LOG_DELIVERIES = ("background", "sync")
"""``stdout`` is left out: locally nothing would ingest the printed events."""


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server whose :meth:`server_close` also drains the system log."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api  # before binding: a failed bind calls server_close()
        super().__init__(address, make_handler(api))

    def server_close(self) -> None:
        super().server_close()
        self.api.close()


def create_server(api: Api, *, host: str, port: int) -> LocalServer:
    return LocalServer((host, port), api)


@contextmanager
def _sigterm_stops_serving() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``serve_forever`` unwinds and drains the log."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Once: a second SIGTERM must not cut short the (bounded) drain that follows.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous: Callable[[int, FrameType | None], Any] | int | None = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = replace(
        settings,
        registry_uri=args.registry or settings.registry_uri,
        log_uri=args.log_uri or settings.log_uri,
        model_name=args.model_name or settings.model_name,
        log_delivery=args.log_delivery,
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    try:
        server = create_server(api, host=args.host, port=args.port)
    except (OSError, OverflowError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        print(
            f"mlsys serve: error: cannot listen on {args.host}:{args.port}: {reason}",
            file=sys.stderr,
        )
        # In use, not an address of this machine, privileged port, unknown host
        # name: the user's choice of address. Anything else is an operational failure.
        bad_address = isinstance(exc, socket.gaierror | OverflowError) or (
            isinstance(exc, OSError) and exc.errno in _BAD_ADDRESS_ERRNOS
        )
        return BAD_INPUT_EXIT if bad_address else 1
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(
        f"mlsys serve: model {settings.model_name!r} from {settings.registry_uri}, "
        f"log {settings.log_uri} ({settings.log_delivery} delivery)",
        flush=True,
    )
    print(f"listening on http://{host}:{port}", flush=True)
    with _sigterm_stops_serving():
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()  # drains the queued log events
    return 0
