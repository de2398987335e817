"""``mlsys serve``: the Lambda handlers behind gunicorn (pre-forked workers, threads).

Why gunicorn (``gthread`` workers): it is the most used Python WSGI server,
pure Python (no compiler, installs anywhere the project does), and gives what
``http.server`` lacked -- several worker processes (``--workers``, default one
per core), a listen backlog in the thousands, TCP_NODELAY on every connection
(no Nagle stall on kept-alive connections), idle kept-alive connections closed
after ``--keepalive`` seconds, a request body streamed to the application (so
the limit is enforced from ``Content-Length`` before reading), and a graceful
drain of in-flight requests on SIGTERM. Measured on the same 2-core machine in
one run (``make bench``, 4 keep-alive clients): a constant JSON body at ~5,900
req/s on gunicorn against ~90 req/s on the standard library's threaded server
(its Nagle stall: 44 ms per kept-alive request), and ``/stream`` at 0.5-0.7x
the constant app across runs. Not chosen (not measured here): waitress (one
process, so one core for the GIL-bound handlers) and uvicorn/hypercorn (ASGI
servers; the handlers are synchronous).

What this module adds to gunicorn:

* the socket is bound here, before gunicorn starts, so a bad address is the
  CLI's one-line error (exit 2) and ``--port 0`` can print the chosen port;
* a worker class whose connections get a read deadline: the request line,
  headers and body must arrive within ``--request-timeout`` seconds of the
  first byte, else a JSON 408 and the connection closes (gunicorn itself has
  none, so a client that declares ``Content-Length: 100`` and sends 2 bytes
  would hold a thread forever);
* every error gunicorn answers itself (bad request line, oversized header)
  is the API's JSON error body;
* each worker builds its own service (onnxruntime session, SQLite connection,
  ``background`` log writer); the writers share a :class:`SharedProgress` so a
  ``GET /log`` answered by one worker sees events other workers acknowledged;
  each worker drains its queue before it exits (SIGTERM, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
import weakref
from dataclasses import dataclass
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from lambda_inference.handler import Api
from lambda_inference.http import error_body, to_json
from lambda_inference.local.adapter import HttpAdapter
from lambda_inference.local.sink import BackgroundSink, SharedProgress, SlotProgress
from lambda_inference.service import InferenceService
from mlsys.eventlog import EventLog, open_event_log_for
from mlsys.settings import Settings

BACKLOG = 4096
"""Pending connections the kernel queues (capped by ``net.core.somaxconn``)."""
THREADS_PER_WORKER = 8
"""onnxruntime releases the GIL while it runs, so a few threads per process help."""
GRACEFUL_SECONDS = 20
"""How long a stopping worker lets in-flight requests finish."""
SERVE_LOG_DELIVERIES = ("background", "sync")
"""``stdout`` is left out: locally nothing would ingest the printed events."""
SERVER_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    408: "request_timeout",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
}
"""Codes for the errors gunicorn answers itself (before any handler runs)."""
BAD_ADDRESS_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    workers: int
    keepalive_seconds: int
    request_timeout_seconds: int
    threads: int = THREADS_PER_WORKER
    backlog: int = BACKLOG


# --- connections with a read deadline ------------------------------------------------

_read_deadlines: weakref.WeakKeyDictionary[socket.socket, float] = weakref.WeakKeyDictionary()
"""Per connection being read: the monotonic time its request must have arrived by."""


_timed_out: weakref.WeakKeyDictionary[socket.socket, bool] = weakref.WeakKeyDictionary()
"""Connections whose request missed its deadline: the worker answers them 408."""


class RequestTimeoutError(ConnectionResetError):
    """The request missed its deadline. A connection reset to gunicorn, which then
    drops the request quietly; the worker answers it (see :meth:`Worker.handle`)."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "the request did not arrive in time")


class _DeadlineSocket(socket.socket):
    """A connection whose reads stop at its request's deadline (see :class:`Worker`)."""

    __slots__ = ()
    send_timeout = 30.0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        deadline = _read_deadlines.get(self)
        if deadline is None:
            return super().recv(bufsize, flags)
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            super().settimeout(remaining)
            return super().recv(bufsize, flags)
        except TimeoutError:
            _timed_out[self] = True
            raise RequestTimeoutError from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        super().settimeout(self.send_timeout)
        super().sendall(data, flags)


class Worker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's threaded worker with a read deadline per request and JSON errors."""

    def init_process(self) -> None:
        # Process-wide, and this process is only this worker.
        gunicorn_util.write_error = _write_json_error
        gunicorn_util.close_graceful = _close_promptly
        super().init_process()

    def handle(self, conn: Any) -> Any:
        sock = conn.sock
        if type(sock) is socket.socket:
            sock.__class__ = _DeadlineSocket  # same layout: only recv/sendall differ
        timeout = self.cfg.mlsys_request_timeout
        _read_deadlines[sock] = time.monotonic() + timeout
        try:
            result = super().handle(conn)
        finally:
            _read_deadlines.pop(sock, None)
        if _timed_out.pop(sock, False):
            message = f"the request did not arrive within {timeout} s"
            with contextlib.suppress(OSError):
                _write_json_error(sock, 408, "Request Timeout", message)
            return False  # gunicorn closes the connection
        return result


def _close_promptly(sock: socket.socket, *args: Any, **kwargs: Any) -> None:
    """Close without lingering on the worker's main loop.

    gunicorn's graceful close waits up to 2 s *on the main loop* for the peer
    to close its side: 500 clients that keep their sockets open after the
    response stall the worker for minutes (measured: the master then kills
    it). Here: send FIN, discard only what the client already sent (so the
    kernel has no unread data to answer with a reset), close.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        for _ in range(16):
            if not sock.recv(65536):
                break
    except OSError:
        pass  # nothing (more) to read, or the peer is gone
    finally:
        sock.close()


def _write_json_error(sock: socket.socket, status: int, reason: str, message: str) -> None:
    body = to_json(
        error_body(
            SERVER_ERROR_CODES.get(status, "http_error"), message or reason, {"status": status}
        )
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


# --- the gunicorn application -------------------------------------------------------


class MlsysApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from ``mlsys serve``'s options, one service per worker."""

    def __init__(self, settings: Settings, options: ServeOptions, listener: socket.socket) -> None:
        self.settings = settings
        self.options = options
        self.listener = listener
        self.progress = SharedProgress(slots=options.workers * 2 + 2)
        self.slot: SlotProgress | None = None
        """This worker's slot (set after the fork)."""
        super().__init__()

    def load_config(self) -> None:
        options = self.options
        for key, value in {
            "bind": [f"fd://{self.listener.fileno()}"],
            "workers": options.workers,
            "worker_class": f"{Worker.__module__}.{Worker.__qualname__}",
            "threads": options.threads,
            "backlog": options.backlog,
            "keepalive": options.keepalive_seconds,
            "graceful_timeout": GRACEFUL_SECONDS,
            "timeout": 60,
            "permit_unconventional_http_method": True,  # lowercase `get` reaches the 405
            "loglevel": "warning",
            "accesslog": None,
            "proc_name": "mlsys-serve",
            "pre_fork": self._assign_slot,
            "post_fork": self._claim_slot,
            "worker_exit": _drain_log,
        }.items():
            self.cfg.set(key, value)
        self.cfg.mlsys_request_timeout = options.request_timeout_seconds

    def _assign_slot(self, arbiter: Any, worker: Any) -> None:
        """In the master: a progress slot no live worker holds."""
        taken = {getattr(w, "mlsys_slot", None) for w in arbiter.WORKERS.values()}
        worker.mlsys_slot = next(s for s in range(self.progress.slots) if s not in taken)

    def _claim_slot(self, arbiter: Any, worker: Any) -> None:
        self.slot = self.progress.claim(worker.mlsys_slot)

    def load(self) -> HttpAdapter:
        """In each worker, after the fork: its own service."""
        return HttpAdapter(
            build_api(self.settings, progress=self.slot),
            max_body_bytes=self.settings.max_body_bytes,
        )


def _drain_log(arbiter: Any, worker: Any) -> None:
    application = getattr(worker, "wsgi", None)
    if isinstance(application, HttpAdapter):
        application.close()


def build_api(settings: Settings, *, progress: SlotProgress | None = None) -> Api:
    """The service one server process runs (metrics off: no CloudWatch agent locally)."""
    sink = None
    if settings.log_delivery == "background":
        sink = BackgroundSink(_cached(lambda: open_event_log_for(settings)), shared=progress)
    return Api(InferenceService.from_settings(settings, emit_metrics=False, sink=sink))


def _cached(open_log: Any) -> Any:
    """``open_log`` called once; the writer thread reuses its connection."""
    opened: list[EventLog] = []

    def get() -> EventLog:
        if not opened:
            opened.append(open_log())
        return opened[0]

    return get


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def listen(host: str, port: int, *, backlog: int = BACKLOG) -> socket.socket:
    """The listening socket; OSError (or gaierror/OverflowError) if the address is unusable."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, options: ServeOptions, listener: socket.socket) -> int:
    """Run the server on ``listener`` until it is stopped; the master's exit status."""
    try:
        MlsysApplication(settings, options, listener).run()
    except SystemExit as stopped:  # gunicorn's master exits through sys.exit
        return int(stopped.code or 0)
    return 0
