"""``mlsys serve`` over real HTTP on 127.0.0.1, each figure beside a same-run baseline.

* 4 keep-alive client threads on ``/stream`` (one record) and ``/batch`` (100
  records) vs a minimal app returning a constant JSON body on the same server
  (uvicorn workers under gunicorn, same settings, the same thread hand-off;
  targets: ``/stream`` >= 1/2 of the baseline's req/s with p50 < 3 ms and >= 900
  req/s, ``/batch`` >= 1/3), plus the constant app on gunicorn's ``gthread``
  worker (the server ``mlsys serve`` ran before issue 18) and on the standard
  library's ThreadingHTTPServer (before that: its keep-alive Nagle stall);
* durable events (issue 18): ``/stream`` with the default ``sync`` delivery
  (committed before the response) vs today's server (the ``mlsys serve`` of the
  commit before issue 18, run from ``git archive``: gthread, ``background``
  delivery; target >= 0.8x) and vs ``--log-delivery background`` on this server,
  same run, and the acknowledged events each delivery loses when a worker and then
  the whole server are SIGKILLed under load (target 0 for ``sync``);
* slow clients (:mod:`benchmarks.hostile`): 600 connections trickling a header
  line every 5 s, 100 ``/health`` probes (target: all answered, p99 < 1 s; every
  stalled connection closed within the request timeout of its arrival), vs the
  same attack on the ``gthread`` server;
* sequential keep-alive requests, p50 (target < 2 ms), vs the constant app;
* 500 simultaneous connections: resets and failures (target 0);
* 8 concurrent 60 MB bodies: the server's RSS increase (target < 50 MB).

The client runs on the same machine (2 cores shared with the server and, on
the development machine, with other work), so absolute figures are pessimistic;
the ratios to the baselines are what compare.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from benchmarks.hostile import (
    GZIP_BOMB_MEMBERS,
    GZIP_FITTING_MEMBERS,
    GZIP_TARGET_SECONDS,
    SlowClientOutcome,
    gzip_bomb,
    inflate_baseline,
    post_gzip_bomb,
    slow_clients,
)
from benchmarks.hostile import summary as slow_summary
from benchmarks.inference import ROOT, _train_default

CLIENT_THREADS = 4
SECONDS = 6.0
ROUNDS = 6
"""Each load runs as ROUNDS alternating slices of SECONDS / ROUNDS with its baseline."""
STREAM_RATIO_TARGET = 0.5
BATCH_RATIO_TARGET = 1 / 3
STREAM_P50_TARGET_MS = 3.0
STREAM_RATE_TARGET = 900.0
SEQUENTIAL_P50_TARGET_MS = 2.0
BURST = 500
BIG_BODIES = 8
BIG_BODY_BYTES = 60_000_000
RSS_TARGET_MB = 50.0
DURABLE_RATIO_TARGET = 0.8
REQUEST_TIMEOUT = 30
"""``mlsys serve``'s default; the slow-client attack watches for this long plus a margin."""
KILL_STEP = 300
"""Acknowledged requests before each SIGKILL (of one worker, then of the process group)."""
JSON = {"Content-Type": "application/json"}


@contextmanager
def _process(command: list[str], *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a server that prints ``listening on URL``; yield the URL; SIGTERM it."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("listening on "):
                url = line.split()[-1]
                break
        if not url:
            raise RuntimeError(f"{command[:4]} exited with {process.wait()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _gunicorn_constant(workers: int, *, gthread: bool = False) -> Iterator[str]:
    """The constant app on ``mlsys serve``'s worker class, or on gunicorn's ``gthread``."""
    port = _free_port()
    worker = (
        ["--worker-class", "gthread", "--threads", "8", "benchmarks.constant_app:app"]
        if gthread
        else [
            "--worker-class",
            "lambda_inference.local.server.Worker",
            "benchmarks.constant_app:asgi_app",
        ]
    )
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--backlog", "4096",
        "--keep-alive", "15", "--log-level", "warning", "--bind", f"127.0.0.1:{port}", *worker,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_ready(address: tuple[str, int], path: str = "/health") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(*address, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no server answered on {address}")


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _client(
    address: tuple[str, int], path: str, body: bytes, until: float, out: list[float]
) -> None:
    connection = http.client.HTTPConnection(*address, timeout=30)
    while time.perf_counter() < until:
        start = time.perf_counter()
        connection.request("POST", path, body=body, headers=JSON)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        out.append(time.perf_counter() - start)
    connection.close()


def load(
    url: str, path: str, body: bytes, *, threads: int = CLIENT_THREADS, seconds: float = SECONDS
) -> tuple[float, float]:
    """(requests/s, p50 seconds) of ``threads`` keep-alive clients for ``seconds``."""
    address = _address(url)
    _client(address, path, body, time.perf_counter() + 0.3, [])  # warm up
    samples: list[list[float]] = [[] for _ in range(threads)]
    until = time.perf_counter() + seconds
    workers = [
        threading.Thread(target=_client, args=(address, path, body, until, samples[i]))
        for i in range(threads)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = [s for chunk in samples for s in chunk]
    return len(every) / elapsed, statistics.median(every)


def burst(url: str, path: str, body: bytes, *, connections: int = BURST) -> dict[str, int]:
    """Open ``connections`` at once, send one request on each, count the outcomes."""
    address = _address(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    outcome = {"ok": 0, "reset": 0, "other": 0}
    sockets = []
    for _ in range(connections):
        try:
            sockets.append(socket.create_connection(address, timeout=60))
        except ConnectionError:
            outcome["reset"] += 1
    for conn in sockets:
        with contextlib.suppress(ConnectionError):  # counted when the answer is read
            conn.sendall(head + body)
    for conn in sockets:
        try:
            response = http.client.HTTPResponse(conn, method="POST")
            response.begin()
            response.read()
            outcome["ok" if response.status == 200 else "other"] += 1
        except ConnectionError:
            outcome["reset"] += 1
        except OSError:
            outcome["other"] += 1
        finally:
            conn.close()
    return outcome


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (the gunicorn master and workers)."""
    total = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _send_big_body(address: tuple[str, int], path: str) -> None:
    chunk = b"0" * 1_048_576
    try:
        with socket.create_connection(address, timeout=30) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {BIG_BODY_BYTES}\r\n\r\n".encode()
            )
            for _ in range(BIG_BODY_BYTES // len(chunk)):
                conn.sendall(chunk)
            conn.recv(65536)
    except OSError:
        pass  # refused (413) and closed while still sending: what is expected


def big_bodies(url: str, pid: int, path: str = "/batch") -> tuple[int, int]:
    """(RSS before, peak RSS increase) while 8 clients send 60 MB bodies at once."""
    address = _address(url)
    before = _tree_rss(pid)
    peak = before
    senders = [
        threading.Thread(target=_send_big_body, args=(address, path)) for _ in range(BIG_BODIES)
    ]
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders):
        peak = max(peak, _tree_rss(pid))
        time.sleep(0.02)
    return before, peak - before


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _serve(registry: str, log: str) -> list[str]:
    return [
        sys.executable, "-m", "mlsys", "serve", "--registry", registry, "--log", log,
        "--port", "0",
    ]  # fmt: skip


def _bodies(registry: str) -> tuple[bytes, bytes]:
    from mlsys.registry import ModelRegistry  # noqa: PLC0415

    card = ModelRegistry.open(registry, model_name="default").load_champion().card
    row = [0.01] * len(card.features)
    return orjson.dumps({"data": row}), orjson.dumps({"data": [row] * 100})


def interleaved(
    runs: dict[str, tuple[str, str, bytes, int]], *, rounds: int = ROUNDS
) -> dict[str, tuple[float, float]]:
    """Each named (url, path, body, threads) load, in turn, ``rounds`` times;
    the median rate and p50 of each. Alternating short runs lets a baseline and
    the measured server see the same background load on a shared machine."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (url, path, body, threads) in runs.items():
            samples[name].append(load(url, path, body, threads=threads, seconds=SECONDS / rounds))
    return {
        name: (
            statistics.median(rate for rate, _ in values),
            statistics.median(p50 for _, p50 in values),
        )
        for name, values in samples.items()
    }


def _url_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    url = next(line for line in process.stdout if line.startswith("listening on ")).split()[-1]
    _wait_ready(_address(url))
    return url


def _loads(urls: dict[str, str], stream: bytes, batch: bytes, figures: dict[str, Any]) -> None:
    """The interleaved keep-alive loads; see the module docstring."""
    pairs = {"const": urls["const"], "app": urls["app"]}
    stream_runs = {
        name: (urls[url_name], "/stream", stream, CLIENT_THREADS)
        for name, url_name in (
            ("stream", "app"),
            ("background", "background"),
            ("previous", "previous"),
            ("const", "const"),
            ("gthread", "gthread"),
        )
        if url_name in urls
    }
    figures.update(interleaved(stream_runs))
    for kind, body, threads in (("batch", batch, CLIENT_THREADS), ("seq", stream, 1)):
        path = "/batch" if kind == "batch" else "/stream"
        pair = interleaved({name: (url, path, body, threads) for name, url in pairs.items()})
        figures[kind], figures[f"const_{kind}"] = pair["app"], pair["const"]


PREVIOUS_SERVER_COMMIT = "0e01912c82bd35c89ff03e80e70e92b450aff84c"
"""The last commit before issue 18: ``mlsys serve`` on gunicorn's gthread workers with
``background`` delivery ("today's" server in the issue). The durable default is
compared with it in the same run."""


def _previous_server(workdir: Path, registry: str) -> subprocess.Popen[str] | None:
    """That commit's ``mlsys serve`` (from ``git archive``, on this environment's
    packages), or None where the history is not available (a shallow clone)."""
    tree = workdir / "previous"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_SERVER_COMMIT],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    command = [
        sys.executable, "-m", "mlsys.cli", "serve", "--registry", registry,
        "--log", f"sqlite:///{workdir}/previous.sqlite3", "--port", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tree, env=env)


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def measure(workdir: Path) -> dict[str, Any]:
    registry = str(workdir / "registry")
    _train_default(registry)
    stream, batch = _bodies(registry)
    workers = len(os.sched_getaffinity(0))
    figures: dict[str, Any] = {"workers": workers}
    with _process([sys.executable, "-m", "benchmarks.constant_app", "stdlib"]) as stdlib:
        figures["stdlib"] = load(stdlib, "/stream", stream, seconds=2.0)
    process = _start(_serve(registry, f"sqlite:///{workdir}/log.sqlite3"))
    background = _start(
        [*_serve(registry, f"sqlite:///{workdir}/bg.sqlite3"), "--log-delivery", "background"]
    )
    previous = _previous_server(workdir, registry)
    others = [server for server in (background, previous) if server is not None]
    try:
        url = _url_of(process)
        with _gunicorn_constant(workers) as const, _gunicorn_constant(workers, gthread=True) as old:
            urls = {"app": url, "background": _url_of(background), "const": const, "gthread": old}
            if previous is not None:
                urls["previous"] = _url_of(previous)
            _loads(urls, stream, batch, figures)
            for server in others:
                server.terminate()
            watch = REQUEST_TIMEOUT + 5
            figures["slow"] = slow_clients(_address(url), observe_seconds=watch)
            figures["slow_gthread"] = slow_clients(_address(old), observe_seconds=watch)
        figures["gzip"] = [
            (members, post_gzip_bomb(_address(url), "/stream", bomb), inflate_baseline(len(bomb)))
            for members in (GZIP_BOMB_MEMBERS, GZIP_FITTING_MEMBERS)
            for bomb in (gzip_bomb(stream, members),)
        ]
        figures["burst"] = burst(url, "/stream", stream)
        figures["rss"] = big_bodies(url, process.pid)
    finally:
        for server in (process, *others):
            server.terminate()
            server.wait(timeout=60)
    deliveries = ("sync", "background")
    figures["killed"] = {name: killed_under_load(workdir / name, name) for name in deliveries}
    return figures


def killed_under_load(workdir: Path, delivery: str) -> tuple[int, int]:
    """(acknowledged, lost): SIGKILL of one worker, then of the whole server, under
    4 keep-alive clients; lost = acknowledged requests whose event is not in the log."""
    from tests.serve_support import (  # noqa: PLC0415
        Load,
        ServeProcess,
        publish_regression,
        stored_request_ids,
    )

    workdir.mkdir(parents=True)
    registry, log_uri = publish_regression(workdir)
    server = ServeProcess(registry, log_uri, "--log-delivery", delivery, new_session=True)
    clients = Load(server.address)
    try:
        clients.wait_for(KILL_STEP)
        os.kill(server.workers()[0], signal.SIGKILL)
        clients.wait_for(len(clients.acknowledged) + KILL_STEP)
        os.killpg(server.process.pid, signal.SIGKILL)
        time.sleep(0.2)
    finally:
        acknowledged = clients.stop()
        server.process.wait(timeout=60)
    try:
        stored = stored_request_ids(log_uri)
    except sqlite3.OperationalError:  # killed before it ever wrote: no table yet
        stored = set()
    return len(acknowledged), len(acknowledged - stored)


Rate = tuple[float, float]
"""(requests/s, p50 seconds)."""


def _line(label: str, rate: Rate, extra: str = "") -> None:
    print(f"  {label:40} {rate[0]:8,.0f} req/s {rate[1] * 1e3:6.2f} ms{extra}")


def _report_load(figures: dict[str, Any]) -> bool:
    const, stream, batch = figures["const"], figures["stream"], figures["batch"]
    const_batch, seq, const_seq = figures["const_batch"], figures["seq"], figures["const_seq"]
    stream_ok = (
        stream[0] >= STREAM_RATIO_TARGET * const[0]
        and stream[1] * 1e3 < STREAM_P50_TARGET_MS
        and stream[0] >= STREAM_RATE_TARGET
    )
    batch_ok = batch[0] >= BATCH_RATIO_TARGET * const_batch[0]
    seq_ok = seq[1] * 1e3 < SEQUENTIAL_P50_TARGET_MS
    print(
        f"mlsys serve: uvicorn (httptools, uvloop) under gunicorn, {figures['workers']} "
        "worker(s) x 8 request threads"
    )
    print(
        f"{CLIENT_THREADS} keep-alive client threads, {SECONDS:.0f} s each, in {ROUNDS} slices "
        "alternating with the baseline (median req/s and p50)"
    )
    _line("baseline: constant JSON, same server", const)
    _line("baseline: constant JSON, gunicorn gthread (before)", figures["gthread"])
    _line("baseline: constant JSON, stdlib server", figures["stdlib"])
    _line(
        "/stream, one record",
        stream,
        f" = {stream[0] / const[0]:.2f}x baseline (targets >= {STREAM_RATIO_TARGET}x, p50 < "
        f"{STREAM_P50_TARGET_MS} ms, >= {STREAM_RATE_TARGET:.0f} req/s) {_verdict(stream_ok)}",
    )
    _line("baseline: constant JSON, 100-record body", const_batch)
    _line(
        "/batch, 100 records",
        batch,
        f" = {batch[0] / const_batch[0]:.2f}x baseline (target >= 0.33x) {_verdict(batch_ok)}",
    )
    print(
        f"sequential keep-alive p50: /stream {seq[1] * 1e3:.2f} ms vs constant "
        f"{const_seq[1] * 1e3:.2f} ms (target < {SEQUENTIAL_P50_TARGET_MS} ms) {_verdict(seq_ok)}"
    )
    return stream_ok and batch_ok and seq_ok


def _report_durability(figures: dict[str, Any]) -> bool:
    durable, queued = figures["stream"], figures["background"]
    previous = figures.get("previous")
    print("durable events: /stream, 4 keep-alive clients, same run")
    if previous is None:
        print(f"  today's server (commit {PREVIOUS_SERVER_COMMIT[:7]}): not measured (no history)")
        ratio_ok = True
    else:
        _line(f"  today's server ({PREVIOUS_SERVER_COMMIT[:7]}: gthread, background)", previous)
        ratio = durable[0] / previous[0]
        ratio_ok = ratio >= DURABLE_RATIO_TARGET
    _line("  this server, --log-delivery background (queued)", queued)
    _line(
        "  this server, sync (the default: committed first)",
        durable,
        f" = {durable[0] / queued[0]:.2f}x background"
        + (
            ""
            if previous is None
            else f", {durable[0] / previous[0]:.2f}x today's (target >= "
            f"{DURABLE_RATIO_TARGET}x) {_verdict(ratio_ok)}"
        ),
    )
    killed = figures["killed"]
    lost_ok = killed["sync"][1] == 0
    for delivery, (acknowledged, lost) in killed.items():
        verdict = f" (target 0) {_verdict(lost_ok)}" if delivery == "sync" else ""
        print(
            f"  SIGKILL of a worker, then of the whole server, under load ({delivery}): "
            f"{lost} of {acknowledged} acknowledged events lost{verdict}"
        )
    return ratio_ok and lost_ok


def _report_slow(figures: dict[str, Any]) -> bool:
    slow: SlowClientOutcome = figures["slow"]
    answered = len(slow.probe_seconds)
    closed_in_time = sum(after <= REQUEST_TIMEOUT + 0.5 for after in slow.closed_after)
    ok = (
        slow.probes_failed == 0
        and slow.p99() < 1.0
        and closed_in_time == len(slow.closed_after)
        and slow.still_open == 0
    )
    print(
        "slow clients: 600 connections each sending a header line every 5 s, "
        "100 /health probes (10 at a time)"
    )
    print(f"  baseline gunicorn gthread: {slow_summary(figures['slow_gthread'])}")
    print(f"  mlsys serve: {slow_summary(slow)}")
    print(
        f"  targets: all probes answered ({answered}/100), p99 < 1 s, every stalled connection "
        f"closed within {REQUEST_TIMEOUT} s of its arrival ({closed_in_time} of "
        f"{len(slow.closed_after) + slow.still_open}) {_verdict(ok)}"
    )
    return ok


def _report_gzip(figures: dict[str, Any]) -> bool:
    ok = True
    for members, (status, seconds), baseline in figures["gzip"]:
        fine = status in (400, 413) and seconds < GZIP_TARGET_SECONDS
        ok &= fine
        print(
            f"gzip body of {members:,} empty members + one record over HTTP: {status} in "
            f"{seconds * 1e3:.0f} ms (baseline: gzip.decompress of one member that size "
            f"{baseline * 1e3:.0f} ms; target 400/413 in < {GZIP_TARGET_SECONDS:.0f} s) "
            f"{_verdict(fine)}"
        )
    return ok


def report(figures: dict[str, Any]) -> bool:
    ok = _report_load(figures)
    ok &= _report_gzip(figures)
    ok &= _report_durability(figures)
    ok &= _report_slow(figures)
    outcome = figures["burst"]
    burst_ok = outcome["reset"] == 0 and outcome["other"] == 0
    print(
        f"{BURST} simultaneous connections, one /stream each: {outcome['ok']} answered 200, "
        f"{outcome['reset']} reset, {outcome['other']} other (target 0 resets) {_verdict(burst_ok)}"
    )
    before, increase = figures["rss"]
    rss_ok = increase / 1e6 < RSS_TARGET_MB
    print(
        f"{BIG_BODIES} x {BIG_BODY_BYTES / 1e6:.0f} MB bodies at once: server RSS "
        f"{before / 1e6:.0f} MB -> +{increase / 1e6:.1f} MB at peak "
        f"(target < {RSS_TARGET_MB:.0f} MB) {_verdict(rss_ok)}"
    )
    return ok and burst_ok and rss_ok


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlsys-bench-serve-") as tmp:
        ok = report(measure(Path(tmp)))
    print(f"serving benchmarks: {'all targets met' if ok else 'SOME TARGETS MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
