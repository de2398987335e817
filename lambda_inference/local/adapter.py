"""HTTP to the Lambda handlers: one WSGI request becomes the API Gateway event.

Each request becomes the API Gateway REST (v1 proxy) event API Gateway would
send and goes through the same :class:`~lambda_inference.handler.Api` as on
AWS, so local and AWS behaviour cannot drift. The adapter adds only what a
socket server needs before any handler runs:

* the body limit is enforced from ``Content-Length`` before the body is read
  (413, connection closed); a body without a length (chunked) is read up to
  the limit and refused past it;
* ``HEAD`` is answered like any method the route does not serve (405 with
  ``Allow``), without a body;
* ``GET /monitor`` (local only, not a Lambda route) is the monitor's HTML report
  (:mod:`lambda_inference.local.monitor_page`);
* ``GET /`` lists every route this server answers (:func:`route_index`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from lambda_inference.handler import JSON_HEADERS, Api, route_listing
from lambda_inference.http import error_body, to_json
from lambda_inference.local.monitor_page import PATH as MONITOR_PATH
from lambda_inference.local.monitor_page import monitor_page

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = Mapping[str, Any]

HTTP_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


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
    """The adapter answers before any handler runs (body too large, unreadable)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class HttpAdapter:
    """The WSGI application: HTTP in, :meth:`Api.handle_local` event, HTTP out."""

    def __init__(self, api: Api, *, max_body_bytes: int) -> None:
        self.api = api
        self.max_body_bytes = max_body_bytes

    def close(self) -> None:
        """Write the queued system-log events (the worker is exiting)."""
        self.api.close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ["REQUEST_METHOD"])
        try:
            body = self._read_body(environ)
        except RequestRefusedError as refused:
            payload = to_json(error_body(refused.code, refused.message, refused.details))
            # Closed: the unread body must not be read (or parsed as the next request).
            # gunicorn drops an application's Connection header; its response
            # object (what start_response is bound to) can be told to close.
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if callable(force_close):
                force_close()
            return self._respond(start_response, method, refused.status, payload, JSON_HEADERS)
        path = _path(environ)
        query = str(environ.get("QUERY_STRING") or "")
        if method in ("GET", "HEAD") and path.rstrip("/") == MONITOR_PATH:
            status, page, page_headers = monitor_page(
                self.api.service, {k: v[-1] for k, v in parse_qs(query).items()}
            )
            return self._respond(start_response, method, status, page, page_headers)
        if method in ("GET", "HEAD") and path == "/":
            return self._respond(start_response, method, 200, to_json(route_index()), JSON_HEADERS)
        request_id = str(uuid.uuid4())
        event = build_event(
            method=method,
            path=path,
            query=query,
            headers=_headers(environ),
            body=body,
            request_id=request_id,
            source_ip=str(environ.get("REMOTE_ADDR") or "127.0.0.1"),
        )
        response = self.api.handle_local(event, LocalContext(aws_request_id=request_id))
        return self._respond(
            start_response,
            method,
            int(response["statusCode"]),
            str(response.get("body") or ""),
            response.get("headers") or {},
        )

    def _read_body(self, environ: Environ) -> bytes:
        raw = str(environ.get("CONTENT_LENGTH") or "").strip()
        stream = environ["wsgi.input"]
        limit = self.max_body_bytes
        if raw:
            length = int(raw)  # the server already refused a malformed Content-Length
            if length > limit:
                raise RequestRefusedError(
                    413,
                    "payload_too_large",
                    f"request body is {length} bytes; the limit is {limit}",
                    {"bytes": length, "limit": limit},
                )
            return self._read(stream, length)
        if not environ.get("wsgi.input_terminated"):
            return b""  # no Content-Length and a stream without an end (PEP 3333): no body
        body = self._read(stream, limit + 1)  # chunked (or no body): read to the limit
        if len(body) > limit:
            raise RequestRefusedError(
                413,
                "payload_too_large",
                f"request body exceeds the limit of {limit} bytes",
                {"limit": limit},
            )
        return body

    @staticmethod
    def _read(stream: Any, size: int) -> bytes:
        # A read that misses the request deadline raises; the server answers 408.
        return bytes(stream.read(size)) if size else b""

    @staticmethod
    def _respond(
        start_response: StartResponse,
        method: str,
        status: int,
        payload: str | bytes,
        headers: Mapping[str, Any],
    ) -> list[bytes]:
        data = payload.encode() if isinstance(payload, str) else payload
        listed = [(str(k), str(v)) for k, v in headers.items()]
        listed.append(("Content-Length", str(len(data))))
        start_response(f"{status} {HTTP_REASONS.get(status, 'Status')}", listed)
        return [b""] if method == "HEAD" else [data]


def _path(environ: Environ) -> str:
    # WSGI gives PATH_INFO latin-1 decoded; API Gateway gives the UTF-8 path.
    raw = str(environ.get("PATH_INFO") or "/")
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _headers(environ: Environ) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = str(value)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = str(environ[key])
    return headers
