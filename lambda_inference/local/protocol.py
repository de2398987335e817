"""HTTP/1.1 on the event loop for ``mlsys serve``: uvicorn's httptools protocol, hardened.

uvicorn parses requests on an asyncio (uvloop) event loop, so a connection that
trickles in costs a socket and a parser, not a thread; the application
(:mod:`lambda_inference.local.adapter`) reads the whole body on the loop too and
only then hands the request to a thread. This subclass adds what a server facing
careless or hostile clients needs and uvicorn leaves out:

* a **request deadline**: the request line, headers and body must arrive within
  ``request_timeout`` seconds of the connection's arrival (for the next request
  on a kept-alive connection: of its first byte), else a JSON 408 and the
  connection closes. uvicorn itself has none, so a client sending one header
  line every few seconds would hold its connection forever. A connection that
  never sent a byte is closed without an answer (a browser's pre-connected
  socket);
* **bounds**: at most :data:`MAX_HEAD_BYTES` of request line and headers (431)
  and :data:`MAX_URL_BYTES` of URL (414); without them httptools buffers any
  length;
* every error the server answers itself is the API's JSON error body
  (uvicorn's are plain text), with the parser's reason: ``Content-Length`` past
  2^64, a chunk size past 64 bits, conflicting framing headers, an unknown
  method are each a 400 at once, never a 5xx or a wait;
* ``CONNECT`` (which the parser treats as a tunnel) is the 405 any other
  method a route does not serve gets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lambda_inference.handler import ALL_ROUTES
from lambda_inference.http import error_body, to_json

MAX_HEAD_BYTES = 64 * 1024
"""Request line plus headers (gunicorn allowed 100 fields of 8 KB; browsers send ~1-2 KB)."""
MAX_URL_BYTES = 8 * 1024
"""The request target, path and query string."""
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),)
"""Sent with every response: no browser may sniff an error body into HTML or script."""
SERVER_ERRORS = {
    400: ("Bad Request", "bad_request"),
    404: ("Not Found", "not_found"),
    405: ("Method Not Allowed", "method_not_allowed"),
    408: ("Request Timeout", "request_timeout"),
    414: ("URI Too Long", "uri_too_long"),
    431: ("Request Header Fields Too Large", "headers_too_large"),
}
"""Statuses the server answers itself, before any handler runs: reason phrase and error code."""


class _RefusedError(Exception):
    """Raised from a parser callback: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(
    status: int, message: str, *, code: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A complete ``Connection: close`` response with the API's JSON error body."""
    reason, default_code = SERVER_ERRORS.get(status, ("Error", "http_error"))
    body = to_json(error_body(code or default_code, message, {"status": status})).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in (*SECURITY_HEADERS, *headers)]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class MlsysHttpProtocol(HttpToolsProtocol):
    """One connection; see the module docstring. Configured by :func:`protocol_class`."""

    request_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        """Bytes received since the current request began, until its headers are complete."""
        self._in_head = True
        self._header_bytes = 0
        """Header names and values of the current request, counted by the parser callback."""
        self._message_open = False
        """A request has begun and not fully arrived."""
        self._handling = False
        """A request fully arrived and its response is not complete: no deadline runs."""
        self._received = False
        """Bytes arrived since the connection opened or the last response completed."""

    # --- the request deadline ------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._request_timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # answered early (e.g. a 413); the rest never came
                self.transport.close()
                return
            cycle.disconnected = True  # the application's receive() now returns a disconnect
            cycle.message_event.set()
        if not self._received:
            self.transport.close()  # opened and never used: nothing to answer
            return
        self._refuse(408, f"the request did not arrive within {self.request_timeout:g} s")

    # --- reading ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # answered and closing: what the client still sends is discarded
        self._received = True
        if not self._handling:
            self._arm_deadline()
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except _RefusedError as refused:
            self._refuse(refused.status, refused.message)
        except httptools.HttpParserCallbackError as error:
            context = error.__context__
            if isinstance(context, _RefusedError):
                self._refuse(context.status, context.message)
            else:
                raise
        except httptools.HttpParserUpgrade:
            self._upgrade_refused()
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed HTTP request: {error}")
        else:
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_open = True
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _RefusedError(414, f"the request target exceeds {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        # The check in data_received sees bytes as they arrive; this one sees a whole
        # head that arrived in one read (the parser finishes it before the read returns).
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            raise _RefusedError(431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._message_open = False
        self._handling = True
        self._disarm_deadline()

    def on_response_complete(self) -> None:
        self._handling = False
        self._in_head = True
        self._head_bytes = 0
        self._received = self._message_open
        super().on_response_complete()
        if self._message_open:  # the next request began while this one was answered
            self._arm_deadline()

    # --- answering without the application --------------------------------------------
    def _upgrade_refused(self) -> None:
        """``CONNECT`` (a tunnel request): the 405 of any other unserved method."""
        method = self.parser.get_method().decode("latin-1")
        path = self.url.decode("latin-1").split("?", 1)[0]
        methods = ALL_ROUTES.get(path.rstrip("/") if len(path) > 1 else path)
        if methods is None:
            self._refuse(404, f"no route {path[:200]}", code="not_found")
            return
        allowed = ", ".join(methods)
        self._refuse(
            405, f"{method} is not allowed on {path}; use {allowed}", headers=(("Allow", allowed),)
        )

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    def _refuse(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer ``status`` with a JSON error and close (the request cannot be framed)."""
        self._disarm_deadline()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self.transport.write(error_response(status, message, code=code, headers=headers))
        self.transport.close()


def protocol_class(*, request_timeout: float) -> type[MlsysHttpProtocol]:
    """:class:`MlsysHttpProtocol` with this server's request deadline (uvicorn takes a class)."""
    return type(
        "MlsysHttpProtocol", (MlsysHttpProtocol,), {"request_timeout": float(request_timeout)}
    )
