"""``mlsys serve``: the Lambda handlers behind uvicorn workers under gunicorn's arbiter.

Why this server (measured, ``make bench`` and issue 18): gunicorn's ``gthread``
workers (what ``mlsys serve`` ran before) give each connection a thread while
its request trickles in, so 600 slow clients sending a header line every 5 s
left 9 legitimate ``/health`` probes unanswered for 10 s. Here each worker
process runs an asyncio event loop (uvloop) with uvicorn's httptools protocol
(:mod:`lambda_inference.local.protocol`): request line, headers and the whole
body are read on the loop, at the cost of a socket per slow client, and only a
complete request goes to one of the process's request threads
(:class:`~lambda_inference.local.adapter.HttpAdapter`). On the same 2-core
machine, same run, 4 keep-alive clients on a constant JSON body: gthread ~5,300
req/s, gunicorn's own ASGI worker with the same thread hand-off ~7,200, uvicorn
(httptools, uvloop) ~9,100. Not chosen: granian (its Rust core buffers a body
before the application can refuse it from its length, and its errors cannot be
the API's JSON), waitress (one process, no request deadline), hypercorn (h11 in
pure Python, slower).

gunicorn stays as the process manager (``--workers``, default one per core): it
forks the workers, replaces one that dies, and on SIGTERM lets each drain. What
this module adds:

* the socket is bound by :func:`listen` before gunicorn starts, so a bad address
  is the CLI's one-line error (exit 2) and ``--port 0`` can print the chosen port
  (:mod:`mlsys.cli.serve`, which also warns when the address is not loopback);
* the worker class (:class:`Worker`): uvicorn with the hardened protocol
  (request deadline from a connection's arrival, JSON errors, header bounds);
* each worker builds its own service (onnxruntime session, SQLite connection);
  with ``--log-delivery background`` the writers share a :class:`SharedProgress`
  so a ``GET /log`` answered by one worker sees events other workers
  acknowledged, and each worker drains its queue before it exits.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from lambda_inference.events import EventSink, StoreSink
from lambda_inference.handler import Api
from lambda_inference.local.adapter import THREADS, HttpAdapter
from lambda_inference.local.origin import BrowserPolicy
from lambda_inference.local.protocol import protocol_class
from lambda_inference.local.sink import BackgroundSink, SharedProgress, SlotProgress
from lambda_inference.service import InferenceService
from mlsys.eventlog import EventLog, open_event_log_for
from mlsys.settings import Settings

BACKLOG = 4096
"""Pending connections the kernel queues (capped by ``net.core.somaxconn``)."""
GRACEFUL_SECONDS = 20
"""How long a stopping worker lets in-flight requests finish."""
CHECKPOINT_SECONDS = 0.5
"""How often a worker checkpoints the SQLite log's WAL, off the request path."""
DEFAULT_REQUEST_TIMEOUT = 30
"""``--request-timeout`` unless given."""
SERVE_LOG_DELIVERIES = ("sync", "background")
"""``stdout`` is left out: locally nothing would ingest the printed events."""
BAD_ADDRESS_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    workers: int
    keepalive_seconds: int
    request_timeout_seconds: int
    allowed_hosts: tuple[str, ...] = ()
    bound_host: str = "127.0.0.1"
    threads: int = THREADS
    backlog: int = BACKLOG


class Worker(UvicornWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """A gunicorn worker process running uvicorn with :mod:`lambda_inference.local.protocol`."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        "ws": "none",
        "lifespan": "off",
        "server_header": False,
        "access_log": False,
        "proxy_headers": False,  # the peer is the client: no X-Forwarded-For trusted
        "timeout_graceful_shutdown": GRACEFUL_SECONDS - 2,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        timeout = getattr(self.cfg, "mlsys_request_timeout", DEFAULT_REQUEST_TIMEOUT)
        self.config.http = protocol_class(request_timeout=timeout)


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
            "backlog": options.backlog,
            "keepalive": options.keepalive_seconds,
            "graceful_timeout": GRACEFUL_SECONDS,
            "timeout": 60,
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
            policy=BrowserPolicy.for_server(self.options.bound_host, self.options.allowed_hosts),
            threads=self.options.threads,
        )


def _drain_log(arbiter: Any, worker: Any) -> None:
    application = getattr(worker, "wsgi", None)
    if isinstance(application, HttpAdapter):
        application.close()


def build_api(settings: Settings, *, progress: SlotProgress | None = None) -> Api:
    """The service one server process runs (metrics off: no CloudWatch agent locally).

    Its events go through one connection whose WAL checkpoints run on a thread of
    their own (an fsync in a checkpoint would otherwise stall the durable writes).
    """
    log = _cached(lambda: open_event_log_for(settings, checkpoint_seconds=CHECKPOINT_SECONDS))
    sink: EventSink
    if settings.log_delivery == "background":
        sink = BackgroundSink(log, shared=progress)
    else:
        sink = StoreSink(log)
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
