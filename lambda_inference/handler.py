"""The HTTP API over API Gateway REST (v1 proxy) events: events in, proxy responses out.

:class:`Api` serves the routes of :mod:`lambda_inference.routes` for the Lambda entry
points (:mod:`lambda_inference.entrypoints`) and the local server:

``handle_predict``
    POST /stream, POST /batch, POST /feedback
``handle_admin``
    GET /log, GET /emptyLog, DELETE /log, GET /health, GET /openapi.json
``handle_log_ingest``
    CloudWatch Logs subscription events carrying ``{"mlsys_event": ...}`` lines,
    written to the system log in batches.

The handlers only translate: parse the event, call :class:`InferenceService`,
serialise the result, and turn any :class:`~mlsys.errors.MlsysError` into
``{"error": {...}}`` with the status from :func:`lambda_inference.http.status_for`.

Routing is a small table rather than Powertools' ``APIGatewayRestResolver``:
measured, the resolver adds ~11 us per request (the whole /stream budget is
~10x one onnxruntime call), and it keeps the current event in class-level state
(``BaseRouter.current_event``), which concurrent requests in the threaded local
server would overwrite. Powertools still provides logging and EMF metrics.

The service is created once per container on first use from
:func:`mlsys.settings.load_settings` (:mod:`lambda_inference.entrypoints`); tests build
an :class:`Api` around their own service instead. Reading the event and building the
service happen inside the same error mapping as the routes, so a malformed event is a JSON 400
(``invalid_event``) and a bad environment variable a JSON 503
(``invalid_config``, naming the variable), never a Lambda error that API
Gateway would turn into a bare 502.

Request bodies may be sent with ``Content-Encoding: gzip``; they are
decompressed here, bounded by the body limit (a larger result is a 413). Any
other encoding is a 415 ``unsupported_content_encoding``. Behind API Gateway
a compressed body only arrives intact if the REST API lists its media type in
``binaryMediaTypes``, so that it is passed on base64-encoded: there, send it as
``Content-Type: application/gzip`` (:data:`GZIP_MEDIA_TYPE`, listed by infra/serving.py).

Size limits: Lambda's synchronous invocation payload is 6 MiB for the whole event,
in which the body is base64-encoded (a gzip body: 4/3 of its size) or an escaped JSON
string. A body that makes the event larger never reaches the function, and the
caller would get API Gateway's error instead of this API's. So the handler refuses
(413 ``payload_too_large``, ``details.event_bytes``) every body that takes more than
:data:`~lambda_inference.edge.MAX_EVENT_BODY_BYTES` (6 MiB less 100 KB for the
rest of the event) in the event, as well as bodies over ``MLSYS_MAX_BODY_BYTES``
(default 6,000,000, counted decoded and decompressed); in practice a JSON body up to
~6 MB of numbers, or a gzip body up to ~4.6 MB compressed, is served. The same
limits apply locally (``mlsys serve`` builds the same event). A response, too, must
fit 6 MiB: ``GET /log`` pages stop early with a ``next`` token
(:data:`~lambda_inference.edge.MAX_LOG_RESPONSE_BYTES`). Clients with large batches
should split them (``MLSYS_MAX_BATCH_RECORDS`` per request) or gzip them.
"""

from __future__ import annotations

import base64
import gzip
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lambda_inference.edge import PredictBody, check_event_body, parse_log_query, parse_predict_body
from lambda_inference.errors import (
    InvalidEncodingError,
    InvalidEventError,
    MalformedJsonError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RouteNotFoundError,
    UnsupportedContentEncodingError,
    UnsupportedMediaTypeError,
)
from lambda_inference.http import INTERNAL_ERROR, error_body, status_for, to_json
from lambda_inference.observability import count_server_error, logger
from lambda_inference.routes import ROUTES, AuthClass, method_table, routes_for
from lambda_inference.service import Endpoint, InferenceService
from lambda_inference.validation import preview, preview_text
from mlsys.errors import MlsysError
from mlsys.eventlog import events_from_lines

JSON_HEADERS = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
"""``nosniff``: no browser may sniff a JSON (error) body into HTML or script."""


@dataclass(slots=True)
class Request:
    """One API Gateway request, read once (not frozen: see :class:`PredictBody`)."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    query: Mapping[str, str]
    body: bytes
    request_id: str
    raw_body: str = ""
    """The body as the event carries it (base64 when ``base64_encoded``)."""
    base64_encoded: bool = False

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    @classmethod
    def from_event(cls, event: Mapping[str, Any], context: Any) -> Request:
        """The request in an API Gateway event; :class:`InvalidEventError` if
        the event is not one (wrong member types, a body flagged base64 that is not)."""
        try:
            return cls._from_event(event, context)
        except (AttributeError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise InvalidEventError(
                f"the Lambda event is not a readable API Gateway request: {exc}"
            ) from None

    @classmethod
    def placeholder(cls, event: Any, context: Any) -> Request:
        """What an error response needs when the event itself could not be read."""
        return cls(
            method="?",
            path="?",
            headers={},
            query={},
            body=b"",
            request_id=request_id_of(event, context),
        )

    @classmethod
    def _from_event(cls, event: Mapping[str, Any], context: Any) -> Request:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw_body = event.get("body") or ""
        base64_encoded = bool(event.get("isBase64Encoded"))
        if base64_encoded:
            body = base64.b64decode(raw_body, validate=True)
        else:
            body = raw_body.encode() if isinstance(raw_body, str) else bytes(raw_body)
        request_id = request_id_of(event, context)
        # A resource like /stream is the route itself; with a {proxy+} resource (or a
        # custom-domain base path in `path`) fall back to the request path.
        resource = str(event.get("resource") or "")
        path = resource if resource and "{" not in resource else str(event.get("path") or "/")
        if len(path) > 1:
            path = path.rstrip("/")
        return cls(
            method=str(event.get("httpMethod") or "GET"),
            path=path,
            headers=headers,
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            body=body,
            request_id=str(request_id),
            raw_body=raw_body if isinstance(raw_body, str) else "",
            base64_encoded=base64_encoded,
        )


def request_id_of(event: Any, context: Any) -> str:
    """API Gateway's request id, else the Lambda request id, else a new one."""
    try:
        found = (event.get("requestContext") or {}).get("requestId")
    except AttributeError:
        found = None
    return str(found or getattr(context, "aws_request_id", None) or uuid.uuid4())


Route = Callable[[InferenceService, Request], tuple[int, Any]]


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        # Required: a browser can send a body without it (fetch with mode "no-cors")
        # from any page, but not with application/json (that needs a CORS preflight).
        raise UnsupportedMediaTypeError(
            "Content-Type is required: send the body as application/json "
            "(with curl, add -H 'Content-Type: application/json')",
            details={"content_type": None},
        )
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == GZIP_MEDIA_TYPE:
        return  # gzip-compressed JSON (how it passes API Gateway intact; _decoded_body)
    if media_type != "application/json" and not media_type.endswith("+json"):
        hint = " (with curl, add -H 'Content-Type: application/json')"
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, got {preview(content_type)}"
            + (hint if media_type in _CURL_FORM_TYPES else ""),
            details={"content_type": preview_text(content_type)},
        )


GZIP_MEDIA_TYPE = "application/gzip"
"""A body of this type is gzip-compressed JSON. The REST API lists it in
``binaryMediaTypes`` (infra/serving.py), so API Gateway hands it over base64-encoded,
byte for byte; ``Content-Type: application/json`` + ``Content-Encoding: gzip`` works
locally but not through API Gateway, which would validate or mangle the bytes."""

_CURL_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
"""What ``curl -d`` and ``curl -F`` send when no Content-Type is given."""


MAX_GZIP_MEMBERS = 100
"""A gzip body may be several members (``cat a.gz b.gz``); more than this is refused (400).
Without a cap, 295,000 empty members (5.9 MB, under the body limit) cost one
decompressor each: a request that takes seconds on one core."""
_INFLATE_CHUNK = 64 * 1024
"""Compressed bytes given to the decompressor at a time: what a member's end copies."""


def _decoded_body(request: Request, *, limit: int) -> bytes:
    """The body with its Content-Encoding undone: gzip, bounded by ``limit``."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == GZIP_MEDIA_TYPE and encoding in ("", "identity"):
        encoding = "gzip"
    if encoding in ("", "identity"):
        return request.body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedContentEncodingError(
            f"Content-Encoding {preview(encoding)} is not supported; send the body "
            "uncompressed or gzip-compressed",
            details={"content_encoding": preview_text(encoding), "supported": ["gzip"]},
        )
    if len(request.body) > limit:
        raise _inflated_too_large(limit)
    try:
        return gunzip(request.body, limit=limit)
    except zlib.error as exc:
        raise MalformedJsonError(f"the request body is not valid gzip: {exc}") from None


def _inflated_too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the decompressed request body exceeds the limit of {limit} bytes",
        details={"limit": limit},
    )


def gunzip(data: bytes, *, limit: int, max_members: int = MAX_GZIP_MEMBERS) -> bytes:
    """``data`` inflated, in time linear in its size and memory bounded by ``limit``.

    The output is checked while inflating (413 past ``limit``: a small "zip bomb"
    never expands beyond it), members are counted (400 past ``max_members``), and
    the input is fed in :data:`_INFLATE_CHUNK` slices of a memoryview, so the end
    of a member copies at most one slice (``unused_data``), not the rest of the body.
    """
    view = memoryview(data)
    out = bytearray()
    offset = members = 0
    while offset < len(view):
        members += 1
        if members > max_members:
            raise InvalidEncodingError(
                f"the gzip request body has more than {max_members} members; "
                "compress it as one stream",
                details={"max_members": max_members},
            )
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not member.eof:
            if offset >= len(view):
                raise MalformedJsonError("the gzip request body is truncated")
            chunk = view[offset : offset + _INFLATE_CHUNK]
            out += member.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit:
                raise _inflated_too_large(limit)
            offset += len(chunk) - len(member.unused_data) - len(member.unconsumed_tail)
    return bytes(out)


def _body(service: InferenceService, request: Request) -> PredictBody:
    """The parsed body of a POST route, within the body limit and Lambda's payload limit."""
    _require_json(request)
    check_event_body(request.raw_body, base64_encoded=request.base64_encoded)
    limit = service.limits.max_body_bytes
    return parse_predict_body(_decoded_body(request, limit=limit), max_body_bytes=limit)


def _predict(endpoint: Endpoint, service: InferenceService, request: Request) -> tuple[int, Any]:
    body = _body(service, request)
    return 200, service.predict(endpoint, body, request_id=request.request_id)


def _stream(service: InferenceService, request: Request) -> tuple[int, Any]:
    return _predict("stream", service, request)


def _batch(service: InferenceService, request: Request) -> tuple[int, Any]:
    return _predict("batch", service, request)


def _feedback(service: InferenceService, request: Request) -> tuple[int, Any]:
    return 200, service.feedback(_body(service, request), request_id=request.request_id)


def _log(service: InferenceService, request: Request) -> tuple[int, Any]:
    query = parse_log_query(request.query, max_log_page=service.limits.max_log_page)
    return 200, service.read_log(query)


def _clear(service: InferenceService, request: Request) -> tuple[int, Any]:
    return 200, {**service.clear_log(), "request_id": request.request_id}


def _health(service: InferenceService, request: Request) -> tuple[int, Any]:
    return 200, service.health()


def _openapi(service: InferenceService, request: Request) -> tuple[int, Any]:
    return 200, service.openapi()


ROUTE_HANDLERS: dict[str, Route] = {
    "stream": _stream,
    "batch": _batch,
    "feedback": _feedback,
    "log": _log,
    "clear": _clear,
    "health": _health,
    "openapi": _openapi,
}
"""The functions :data:`lambda_inference.routes.ROUTES` names."""


def _dispatch_table(auth: AuthClass | None = None) -> dict[str, dict[str, Route]]:
    chosen = ROUTES if auth is None else routes_for(auth)
    return {
        path: {method: ROUTE_HANDLERS[name] for method, name in methods.items()}
        for path, methods in method_table(chosen).items()
    }


PREDICT_ROUTES = _dispatch_table("predict")
ADMIN_ROUTES = _dispatch_table("admin")
ALL_ROUTES = _dispatch_table()


def route_listing() -> list[dict[str, str]]:
    """Every route's method, path and summary, in declaration order (``GET /`` locally)."""
    return [{"method": r.method, "path": r.path, "summary": r.summary} for r in ROUTES]


def respond(status: int, payload: Any, headers: Mapping[str, str] = JSON_HEADERS) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": to_json(payload),
        "isBase64Encoded": False,
    }


class Api:
    """The HTTP face of one :class:`InferenceService`, for Lambda and the local server."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service

    def close(self) -> None:
        """Write the service's queued log events (the local server, at shutdown)."""
        self.service.close()

    def handle_predict(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return self._dispatch(PREDICT_ROUTES, event, context)

    def handle_admin(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return self._dispatch(ADMIN_ROUTES, event, context)

    def handle_local(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Every route in one process, as the local server exposes them."""
        return self._dispatch(ALL_ROUTES, event, context)

    def handle_refused(
        self, event: Mapping[str, Any], error: MlsysError, context: Any = None
    ) -> dict[str, Any]:
        """The error response for a request refused before routing (the local
        server's browser checks), recorded in the log like any other error."""
        try:
            request = Request.from_event(event, context)
        except InvalidEventError:
            request = Request.placeholder(event, context)
        try:
            return self._error_response(error, request)
        finally:
            self.service.telemetry.flush()

    def handle_log_ingest(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Write events shipped by a CloudWatch Logs subscription to the system log.

        A store failure raises, so Lambda retries the (idempotent) batch;
        a payload that is not a subscription message is reported and dropped.
        """
        try:
            raw = base64.b64decode(event["awslogs"]["data"])
            message = orjson.loads(gzip.decompress(raw))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            logger.error("not a CloudWatch Logs subscription event", extra={"error": str(exc)})
            return {"ingested": 0, "error": "not a CloudWatch Logs subscription event"}
        if message.get("messageType") != "DATA_MESSAGE":
            return {"ingested": 0}  # CONTROL_MESSAGE: the subscription's connectivity check
        lines = [str(e.get("message", "")) for e in message.get("logEvents") or ()]
        count = self.service.ingest(events_from_lines(lines))
        return {"ingested": count}

    def _dispatch(
        self, routes: Mapping[str, Mapping[str, Route]], event: Mapping[str, Any], context: Any
    ) -> dict[str, Any]:
        self.service.telemetry.cold_start()
        request: Request | None = None
        try:
            request = Request.from_event(event, context)
            methods = routes.get(request.path)
            if methods is None:
                raise RouteNotFoundError(
                    f"no route {preview_text(request.path)}; this function serves "
                    f"{', '.join(routes)}",
                    details={"path": preview_text(request.path)},
                )
            route = methods.get(request.method)
            if route is None:
                raise MethodNotAllowedError(
                    f"{preview_text(request.method)} is not allowed on {request.path}; "
                    f"use {', '.join(methods)}",
                    allowed=tuple(methods),
                )
            status, payload = route(self.service, request)
            return respond(status, payload)
        except MlsysError as error:
            request = request or Request.placeholder(event, context)
            return self._error_response(error, request, context=context)
        except Exception:
            request = request or Request.placeholder(event, context)
            logger.exception("unhandled error", extra={"route": request.route})
            return self._error_response(
                MlsysError(
                    "internal error; see the function's logs for the request id",
                    details={"request_id": request.request_id},
                ),
                request,
                code="internal_error",
                context=context,
            )
        finally:
            self.service.telemetry.flush()

    def _error_response(
        self, error: MlsysError, request: Request, *, code: str | None = None, context: Any = None
    ) -> dict[str, Any]:
        status = status_for(error)
        code = code or error.code
        if status >= INTERNAL_ERROR:
            logger.error(error.message, extra={"code": code, "route": request.route})
            count_server_error(context)
        try:
            self.service.record_error(
                error, status=status, route=request.route, request_id=request.request_id
            )
        except Exception:
            logger.exception("could not record the error event")
        headers = dict(JSON_HEADERS)
        if isinstance(error, MethodNotAllowedError):
            headers["Allow"] = ", ".join(error.allowed)
        return respond(status, error_body(code, error.message, error.details), headers)
