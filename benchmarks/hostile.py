"""``mlsys serve`` under hostile and crashing clients, each beside a same-run baseline.

* **Slow clients** (issue 18): 600 connections each trickle one header line every
  5 s while 100 legitimate ``/health`` probes (10 at a time) are sent; reported:
  probes answered and their p50/p99 (target: all, p99 < 1 s), and when each
  stalled connection was closed, counted from its arrival (target: all within
  the request timeout). Baseline: the same attack on gunicorn's ``gthread``
  worker serving a constant body (the server ``mlsys serve`` ran before).
* **Durability** (see :mod:`benchmarks.serving` for the figures' use): SIGKILL of
  one worker, then of the whole process group, under 4 keep-alive clients;
  acknowledged events missing from the log afterwards, per delivery.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import selectors
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field

SLOW_CONNECTIONS = 600
TRICKLE_SECONDS = 5.0
PROBES = 100
PROBE_THREADS = 10
PROBE_TIMEOUT = 5.0
P99_TARGET_SECONDS = 1.0


@dataclass
class SlowClientOutcome:
    probe_seconds: list[float] = field(default_factory=list)
    """Latency of each answered probe."""
    probes_failed: int = 0
    closed_after: list[float] = field(default_factory=list)
    """Seconds from arrival to close, for each stalled connection the server closed."""
    answered_408: int = 0
    still_open: int = 0

    def p99(self) -> float:
        ordered = sorted(self.probe_seconds)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]


def _probe(address: tuple[str, int], outcome: SlowClientOutcome, count: int) -> None:
    for _ in range(count):
        start = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(*address, timeout=PROBE_TIMEOUT)
            connection.request("GET", "/health", headers={"Host": "127.0.0.1"})
            response = connection.getresponse()
            response.read()
            connection.close()
            ok = response.status == 200
        except OSError:
            ok = False
        if ok:
            outcome.probe_seconds.append(time.perf_counter() - start)
        else:
            outcome.probes_failed += 1


def _open_stalled(address: tuple[str, int], count: int) -> dict[socket.socket, float]:
    opened: dict[socket.socket, float] = {}
    for _ in range(count):
        conn = socket.create_connection(address, timeout=10)
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        conn.setblocking(False)
        opened[conn] = time.monotonic()
    return opened


def slow_clients(
    address: tuple[str, int], *, observe_seconds: float, connections: int = SLOW_CONNECTIONS
) -> SlowClientOutcome:
    """The attack on the server at ``address`` for ``observe_seconds`` after the last
    connection opened; see the module docstring."""
    outcome = SlowClientOutcome()
    stalled = _open_stalled(address, connections)
    selector = selectors.DefaultSelector()
    for conn in stalled:
        selector.register(conn, selectors.EVENT_READ)
    probes = [
        threading.Thread(target=_probe, args=(address, outcome, PROBES // PROBE_THREADS))
        for _ in range(PROBE_THREADS)
    ]
    for probe in probes:
        probe.start()
    end = time.monotonic() + observe_seconds
    next_line = time.monotonic() + TRICKLE_SECONDS
    line = 0
    while stalled and time.monotonic() < end:
        for key, _ in selector.select(timeout=0.05):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            _collect(conn, stalled, selector, outcome)
        if time.monotonic() >= next_line:
            line += 1
            for conn in list(stalled):
                with contextlib.suppress(OSError):  # closed: seen by the selector
                    conn.send(b"X-Trickle-%d: 1\r\n" % line)
            next_line += TRICKLE_SECONDS
    for probe in probes:
        probe.join()
    outcome.still_open = len(stalled)
    for conn in list(stalled):
        selector.unregister(conn)
        conn.close()
    selector.close()
    return outcome


def _collect(
    conn: socket.socket,
    stalled: dict[socket.socket, float],
    selector: selectors.BaseSelector,
    outcome: SlowClientOutcome,
) -> None:
    """Read what the server sent on a stalled connection; note when it closed."""
    try:
        data = conn.recv(65536)
        while data and not data.endswith(b"}"):
            more = conn.recv(65536)
            if not more:
                break
            data += more
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if data.startswith(b"HTTP/1.1 408 "):
        outcome.answered_408 += 1
    outcome.closed_after.append(time.monotonic() - stalled.pop(conn))
    selector.unregister(conn)
    conn.close()


def summary(outcome: SlowClientOutcome) -> str:
    answered = len(outcome.probe_seconds)
    p50 = statistics.median(outcome.probe_seconds) if answered else float("inf")
    latest = max(outcome.closed_after, default=float("nan"))
    return (
        f"{answered}/{answered + outcome.probes_failed} probes answered, p50 {p50 * 1e3:.0f} ms, "
        f"p99 {outcome.p99() * 1e3:.0f} ms; {len(outcome.closed_after)} stalled connections "
        f"closed ({outcome.answered_408} with a 408), latest {latest:.1f} s after arrival, "
        f"{outcome.still_open} still open"
    )


GZIP_BOMB_MEMBERS = 295_000
GZIP_TARGET_SECONDS = 1.0


GZIP_FITTING_MEMBERS = 200_000
"""As many as fit Lambda's event once base64-encoded (4 MB): refused by the member cap."""


def gzip_bomb(record: bytes, members: int = GZIP_BOMB_MEMBERS) -> bytes:
    """Issue 18's body: 295,000 empty gzip members, then ``record`` (5.9 MB); over the
    event limit once base64-encoded, so ``members=GZIP_FITTING_MEMBERS`` too."""
    return gzip.compress(b"") * members + gzip.compress(record)


def inflate_baseline(size: int) -> float:
    """Seconds ``gzip.decompress`` takes for one member of ``size`` compressed bytes
    (incompressible data): what any linear pass over a body that size costs."""
    one_member = gzip.compress(os.urandom(size), compresslevel=1)
    start = time.perf_counter()
    gzip.decompress(one_member)
    return time.perf_counter() - start


def post_gzip_bomb(address: tuple[str, int], path: str, bomb: bytes) -> tuple[int, float]:
    """(status, seconds) of the bomb posted to a server with ``Content-Encoding: gzip``."""
    connection = http.client.HTTPConnection(*address, timeout=600)
    start = time.perf_counter()
    connection.request(
        "POST",
        path,
        body=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - start
    connection.close()
    return response.status, elapsed
