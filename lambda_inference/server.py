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
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
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


def make_handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlsys"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self.send_error(413, "request body too large")
                return
            body = self.rfile.read(length) if length else b""
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
            payload = str(response.get("body") or "").encode()
            self.send_response(int(response["statusCode"]))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return  # the system log records requests; keep the console quiet

    return Handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="registry URI (default: MLSYS_REGISTRY_URI)")
    parser.add_argument("--log", help="system log URI (default: MLSYS_LOG_URI)")
    parser.add_argument("--model-name", help="model to serve (default: MLSYS_MODEL_NAME)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument(
        "--log-delivery",
        choices=SERVE_LOG_DELIVERIES,
        default="background",
        help="how requests write system-log events: background (default; queued and "
        "written in batches by a writer thread) or sync (written in the request)",
    )


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
        log_uri=args.log or settings.log_uri,
        model_name=args.model_name or settings.model_name,
        log_delivery=args.log_delivery,
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False))
    try:
        server = create_server(api, host=args.host, port=args.port)
    except OSError as exc:
        print(
            f"mlsys serve: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
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
