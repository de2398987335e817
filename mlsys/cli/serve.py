"""``mlsys serve``: the prediction API on this machine (see :mod:`lambda_inference.local.server`).

Options: where the model and the log are (``--registry``, ``--model-name``, ``--log``),
the address (``--host``, ``--port``; ``--port 0`` picks a free port and prints it), the
number of worker processes, keep-alive and request timeouts, the log delivery (``sync`` by
default: an acknowledged event is committed) and the host names browsers may use
(``--allowed-host``). A bad address or URI is a one-line error (exit 2) before anything
listens; an address other than loopback gets a warning (the API has no authentication).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import sys
from dataclasses import replace
from typing import Any

from lambda_inference.local.server import (
    BAD_ADDRESS_ERRNOS,
    DEFAULT_REQUEST_TIMEOUT,
    SERVE_LOG_DELIVERIES,
    ServeOptions,
    build_api,
    default_workers,
    listen,
    serve,
)
from mlsys.cli.common import BAD_INPUT_EXIT, FAILURE_EXIT, add_location_arguments
from mlsys.settings import LOCAL_REFRESH_SECONDS, Settings

MAX_PORT = 65535
EXAMPLES = """examples:
  mlsys serve                                http://127.0.0.1:8080 (GET / lists the routes)
  mlsys serve --port 0                       any free port (printed on start)
  curl -s -X POST localhost:8080/stream -H 'Content-Type: application/json' \\
    -d '{"data": [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, -0.003, 0.02, -0.02]}'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_location_arguments(parser, log_help="system log")
    parser.add_argument(
        "--host",
        type=host_argument,
        default="127.0.0.1",
        help="address to bind",
    )
    parser.add_argument(
        "--port", type=port_argument, default=8080, help="port 0-65535 (0 picks a free one)"
    )
    parser.add_argument(
        "--workers",
        type=_bounded_int(1, 256),
        default=None,
        help="worker processes (default: one per available core)",
    )
    parser.add_argument(
        "--keepalive",
        type=_bounded_int(1, 30),
        default=15,
        help="seconds an idle kept-alive connection stays open (1-30)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_bounded_int(1, 30),
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds from a connection's arrival (or its next request's first byte) within "
        "which the request line, headers and body must arrive; then 408 (1-30)",
    )
    parser.add_argument(
        "--log-delivery",
        choices=SERVE_LOG_DELIVERIES,
        default="sync",
        help="how requests write system-log events: sync (default; committed before the "
        "response, concurrent requests share a commit, so an acknowledged event survives a "
        "crash) or background (queued and written in batches by a writer thread per worker: "
        "faster, but a killed worker loses what it had queued)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        type=host_argument,
        default=[],
        metavar="NAME",
        help="a host name browsers may address this server by, besides IP addresses, "
        "localhost and --host (repeatable; others get 403, against DNS rebinding)",
    )


def _bounded_int(low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        value = int(raw) if raw.strip().isascii() and raw.strip().isdigit() else -1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {low} to {high}, got {raw!r}"
            )
        return value

    return parse


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


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def serve_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The flags over the settings. A directory registry's pointer is a local file:
    re-reading it every second is cheap, so a promotion shows up at once instead of after
    the interval warm Lambdas use (``MLSYS_MODEL_REFRESH_SECONDS``, 30 s by default)."""
    registry_uri = args.registry or settings.registry_uri
    refresh = settings.model_refresh_seconds
    if not registry_uri.startswith("s3://"):
        refresh = min(refresh, LOCAL_REFRESH_SECONDS)
    return replace(
        settings,
        registry_uri=registry_uri,
        log_uri=args.log_uri or settings.log_uri,
        model_name=args.model_name or settings.model_name,
        log_delivery=args.log_delivery,
        model_refresh_seconds=refresh,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = serve_settings(args, settings)
    build_api(settings)  # a bad registry or log URI is the CLI's error, before listening
    try:
        listener = listen(args.host, args.port)
    except (OSError, OverflowError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        print(
            f"mlsys serve: error: cannot listen on {args.host}:{args.port}: {reason}",
            file=sys.stderr,
        )
        # In use, not an address of this machine, privileged port, unknown host
        # name: the user's choice of address. Anything else is an operational failure.
        bad_address = isinstance(exc, socket.gaierror | OverflowError) or (
            isinstance(exc, OSError) and exc.errno in BAD_ADDRESS_ERRNOS
        )
        return BAD_INPUT_EXIT if bad_address else FAILURE_EXIT
    options = ServeOptions(
        workers=args.workers or default_workers(),
        keepalive_seconds=args.keepalive,
        request_timeout_seconds=args.request_timeout,
        allowed_hosts=tuple(args.allowed_host),
        bound_host=args.host,
    )
    host, port = listener.getsockname()[:2]
    if not _is_loopback(str(host)):
        print(
            f"mlsys serve: warning: listening on {host}, not a loopback address: anyone who "
            "can reach it can predict, read and empty the log (the API has no authentication)",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"mlsys serve: model {settings.model_name!r} from {settings.registry_uri}, "
        f"log {settings.log_uri} ({settings.log_delivery} delivery), "
        f"{options.workers} worker(s)",
        flush=True,
    )
    print(f"listening on http://{_url_host(str(host))}:{port}", flush=True)
    return serve(settings, options, listener)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
