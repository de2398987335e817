"""``mlsys serve`` over real HTTP on 127.0.0.1, each figure beside a same-run baseline.

* 4 keep-alive client threads on ``/stream`` (one record) and ``/batch`` (100
  records) vs a minimal app returning a constant JSON body on the same server
  library and settings (gunicorn gthread; targets: ``/stream`` >= 1/2 of the
  baseline's req/s with p50 < 3 ms and >= 900 req/s, ``/batch`` >= 1/3), plus the
  same constant app on the standard library's ThreadingHTTPServer (the server
  ``mlsys serve`` used before: its keep-alive Nagle stall is visible there);
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
import socket
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
def _gunicorn_constant(workers: int) -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
        "--threads", "8", "--backlog", "4096", "--keep-alive", "15", "--log-level", "warning",
        "--bind", f"127.0.0.1:{port}", "benchmarks.constant_app:app",
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
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
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
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
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


def measure(workdir: Path) -> dict[str, Any]:
    registry = str(workdir / "registry")
    _train_default(registry)
    stream, batch = _bodies(registry)
    workers = len(os.sched_getaffinity(0))
    figures: dict[str, Any] = {"workers": workers}
    with _process([sys.executable, "-m", "benchmarks.constant_app", "stdlib"]) as stdlib:
        figures["stdlib"] = load(stdlib, "/stream", stream, seconds=2.0)
    command = _serve(registry, f"sqlite:///{workdir}/log.sqlite3")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        url = next(line for line in process.stdout if line.startswith("listening on ")).split()[-1]
        _wait_ready(_address(url))
        with _gunicorn_constant(workers) as constant:
            for kind, body, threads in (
                ("stream", stream, CLIENT_THREADS),
                ("batch", batch, CLIENT_THREADS),
                ("seq", stream, 1),
            ):
                path = "/batch" if kind == "batch" else "/stream"
                pair = interleaved(
                    {"const": (constant, path, body, threads), "app": (url, path, body, threads)}
                )
                figures[kind], figures[f"const_{kind}"] = pair["app"], pair["const"]
        figures["const"] = figures.pop("const_stream")
        figures["burst"] = burst(url, "/stream", stream)
        figures["rss"] = big_bodies(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return figures


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
    print(f"mlsys serve: gunicorn gthread, {figures['workers']} worker(s) x 8 threads")
    print(
        f"{CLIENT_THREADS} keep-alive client threads, {SECONDS:.0f} s each, in {ROUNDS} slices "
        "alternating with the baseline (median req/s and p50)"
    )
    _line("baseline: constant JSON, gunicorn", const)
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


def report(figures: dict[str, Any]) -> bool:
    ok = _report_load(figures)
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
