"""HTTP to the Lambda handlers: one ASGI request becomes the API Gateway event.

Each request becomes the API Gateway REST (v1 proxy) event API Gateway would
send and goes through the same :class:`~lambda_inference.handler.Api` as on
AWS, so local and AWS behaviour cannot drift. :class:`HttpAdapter` is the ASGI
application uvicorn runs (:mod:`lambda_inference.local.protocol`); it does, on
the event loop, what a socket server needs before any handler runs:

* framing: a ``Transfer-Encoding`` other than exactly ``chunked`` is a 400
  (``identity, chunked`` would let two parsers frame the body differently);
* the body limit is enforced from ``Content-Length`` before the body is read
  (413, connection closed); a chunked body is read up to the limit and refused
  past it;
* browser requests from another origin or for another host name are a 403
  (:mod:`lambda_inference.local.origin`), recorded in the log like any error;
* the **whole body is read on the event loop**, and only then does the
  request go to a thread of the adapter's pool: a client that trickles its
  body in holds a socket, not a thread (the protocol's request deadline ends
  it);
* ``HEAD`` is answered like any method the route does not serve (405 with
  ``Allow``), without a body;
* ``GET /monitor`` (local only, not a Lambda route) is the monitor's HTML report
  (:mod:`lambda_inference.local.monitor_page`);
* ``GET /`` lists every route this server answers (:func:`route_index`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from lambda_inference.errors import ForbiddenError
from lambda_inference.handler import JSON_HEADERS, Api, route_listing
from lambda_inference.http import error_body, to_json
from lambda_inference.local.monitor_page import PATH as MONITOR_PATH
from lambda_inference.local.monitor_page import monitor_page
from lambda_inference.local.origin import BrowserPolicy
from lambda_inference.local.protocol import SECURITY_HEADERS
from lambda_inference.observability import logger

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
THREADS = 8
"""Request threads per server process: onnxruntime releases the GIL while it runs."""


MONITOR_SUMMARY = "Drift and live-quality report (HTML; ?since=24h), local server only"


def route_index() -> dict[str, Any]:
    """``GET /``: every route of the local server, the Lambda ones and ``/monitor``."""
    routes = route_listing()
    routes.append({"method": "GET", "path": MONITOR_PATH, "summary": MONITOR_SUMMARY})
    return {"service": "mlsys", "routes": routes}


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
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    request_id: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The API Gateway REST (v1 proxy) event for one HTTP request."""
    multi_query = parse_qs(query, keep_blank_values=True)
    try:
        text: str | None = body.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "resource": path,
        "path": path,
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
            "path": path,
            "resourcePath": path,
            "httpMethod": method,
            "identity": {"sourceIp": source_ip},
        },
        "body": (text if text is not None else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and text is None,
    }


class RequestRefusedError(Exception):
    """The adapter answers before any handler runs (framing, body too large)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass(frozen=True)
class HttpRequest:
    """What the adapter reads from an ASGI scope."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ``, ``."""
    client: str

    @classmethod
    def from_scope(cls, scope: Scope) -> HttpRequest:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        return cls(
            method=str(scope["method"]),
            path=_path(scope),
            query=bytes(scope.get("query_string") or b"").decode("latin-1"),
            headers=headers,
            client=str(client[0]) if client else "127.0.0.1",
        )

    @property
    def event_headers(self) -> dict[str, str]:
        """Header names as API Gateway passes them on (title case)."""
        return {name.title(): value for name, value in self.headers.items()}


Response = tuple[int, bytes, Mapping[str, str]]


class HttpAdapter:
    """The ASGI application: HTTP in, :meth:`Api.handle_local` event, HTTP out."""

    def __init__(
        self,
        api: Api,
        *,
        max_body_bytes: int,
        policy: BrowserPolicy | None = None,
        threads: int = THREADS,
    ) -> None:
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.policy = policy if policy is not None else BrowserPolicy()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mlsys-request")

    def close(self) -> None:
        """Finish the requests in the pool, then write the queued system-log events."""
        self._pool.shutdown(wait=True)
        self.api.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets, no lifespan events
        try:
            await self._serve(scope, receive, send)
        except Exception:
            # A bug here, not in a handler (the Api answers its own errors): still the
            # API's JSON shape, never uvicorn's plain-text 500.
            logger.exception("unhandled error in the HTTP adapter")
            payload = error_body("internal_error", "internal error; see the server's log")
            response = (500, to_json(payload).encode(), JSON_HEADERS)
            with contextlib.suppress(Exception):  # the response may have started
                await _send(send, str(scope.get("method")), response, close=True)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = HttpRequest.from_scope(scope)
        loop = asyncio.get_running_loop()
        try:
            expected = self._framing(request.headers)
            refusal = self.policy.refusal(request.headers)
            if refusal is not None:
                response = await loop.run_in_executor(self._pool, self._forbidden, request, refusal)
                await _send(send, request.method, response, close=expected != 0)
                return
            body = await self._read_body(receive, expected)
        except RequestRefusedError as refused:
            payload = to_json(error_body(refused.code, refused.message, refused.details))
            # Closed: an unread body must not be read (or parsed as the next request).
            response = (refused.status, payload.encode(), JSON_HEADERS)
            await _send(send, request.method, response, close=True)
            return
        except _DisconnectedError:
            return  # the client left, or the protocol answered (a 408) and closed
        response = await loop.run_in_executor(self._pool, self._handle, request, body)
        await _send(send, request.method, response)

    def _framing(self, headers: Mapping[str, str]) -> int | None:
        """The body's announced length (None: chunked); refuses what cannot be framed."""
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.strip().lower() != "chunked":
                raise RequestRefusedError(
                    400,
                    "bad_request",
                    f"Transfer-Encoding {coding[:100]!r} is not supported; send a "
                    "Content-Length or Transfer-Encoding: chunked alone",
                )
            return None
        raw = headers.get("content-length", "").strip()
        length = int(raw) if raw else 0  # the parser refused a malformed or oversized value
        limit = self.max_body_bytes
        if length > limit:
            raise RequestRefusedError(
                413,
                "payload_too_large",
                f"request body is {length} bytes; the limit is {limit}",
                {"bytes": length, "limit": limit},
            )
        return length

    async def _read_body(self, receive: Receive, expected: int | None) -> bytes:
        if expected == 0:
            return b""
        limit = self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestRefusedError(
                    413,
                    "payload_too_large",
                    f"request body exceeds the limit of {limit} bytes",
                    {"limit": limit},
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # --- in the request threads -------------------------------------------------------
    def _event(self, request: HttpRequest, body: bytes, request_id: str) -> dict[str, Any]:
        return build_event(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.event_headers,
            body=body,
            request_id=request_id,
            source_ip=request.client,
        )

    def _handle(self, request: HttpRequest, body: bytes) -> Response:
        if request.method in ("GET", "HEAD") and request.path.rstrip("/") == MONITOR_PATH:
            query = {k: v[-1] for k, v in parse_qs(request.query).items()}
            return monitor_page(self.api.service, query)
        if request.method in ("GET", "HEAD") and request.path == "/":
            return 200, to_json(route_index()).encode(), JSON_HEADERS
        request_id = new_request_id()
        event = self._event(request, body, request_id)
        response = self.api.handle_local(event, LocalContext(aws_request_id=request_id))
        return _lambda_response(response)

    def _forbidden(self, request: HttpRequest, reason: str) -> Response:
        request_id = new_request_id()
        event = self._event(request, b"", request_id)
        error = ForbiddenError(reason, details={"path": request.path[:200]})
        response = self.api.handle_refused(event, error, LocalContext(aws_request_id=request_id))
        return _lambda_response(response)


def new_request_id() -> str:
    """A random version-4 UUID, as API Gateway's request ids are, from :mod:`random`
    (reseeded in each forked worker): ``uuid.uuid4()`` reads the OS's random source,
    a system call per request. An id, not a secret."""
    digits = f"{random.getrandbits(128) & _UUID4_MASK | _UUID4_BITS:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_UUID4_MASK = ~(0xF000 << 64 | 0xC000 << 48)
_UUID4_BITS = 0x4000 << 64 | 0x8000 << 48


class _DisconnectedError(Exception):
    """The request will not complete: the client disconnected or timed out."""


def _lambda_response(response: Mapping[str, Any]) -> Response:
    body = response.get("body") or ""
    data = body.encode() if isinstance(body, str) else bytes(body)
    return int(response["statusCode"]), data, response.get("headers") or {}


async def _send(send: Send, method: str, response: Response, *, close: bool = False) -> None:
    status, data, headers = response
    listed = [(str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
    names = {name.lower() for name, _ in listed}
    listed += [
        (name.encode(), value.encode())
        for name, value in SECURITY_HEADERS
        if name.lower().encode() not in names
    ]
    listed.append((b"content-length", str(len(data)).encode()))
    if close:
        listed.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": listed})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})


def _path(scope: Scope) -> str:
    # ASGI gives the percent-decoded path as UTF-8 text; API Gateway gives the same.
    return str(scope.get("path") or "/")
