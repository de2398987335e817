"""A real ``mlsys serve`` in a subprocess, for tests that talk to it over sockets."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import uvicorn

from lambda_inference.local.adapter import HttpAdapter
from lambda_inference.local.protocol import protocol_class
from mlsys.registry import ModelRegistry
from tests.inference_support import build_regression, publish

ROOT = Path(__file__).resolve().parents[1]
STREAM_ROW = json.dumps({"data": [0.01] * 10}).encode()
"""A /stream body for the regression model of :func:`publish_regression`."""
CLIENTS = 4
VERSION = "20260101T000000Z-ssssss"


def publish_regression(root: Path) -> tuple[str, str]:
    """A champion in a directory registry under ``root``: (registry, log URI)."""
    registry = str(root / "registry")
    publish(ModelRegistry.open(registry, model_name="default"), build_regression(version=VERSION))
    return registry, f"sqlite:///{root}/log.sqlite3"


class ServeProcess:
    """``mlsys serve --port 0`` with extra flags; stopped with SIGTERM."""

    def __init__(
        self,
        registry: str,
        log_uri: str,
        *flags: str,
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlsys",
                "serve",
                "--registry",
                registry,
                "--log",
                log_uri,
                "--port",
                "0",
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=None if env is None else {**os.environ, **env},
            start_new_session=new_session,  # a process group of its own, to kill as one
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                assert self.process.stderr is not None
                raise AssertionError(f"mlsys serve exited: {self.process.stderr.read()}")
            if line.startswith("listening on "):
                self.url = line.split()[-1]
                break
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.address = (host, int(port))
        # Keep reading both pipes: a full pipe would block the server's logging.
        self.output: list[str] = []
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        self.wait_ready()

    def _drain(self, stream: IO[str] | None) -> None:
        if stream is not None:
            for line in stream:
                self.output.append(line)

    def wait_ready(self) -> None:
        """Until a worker answers (workers load after the socket is listening)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = self.call("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("mlsys serve did not become ready")
            time.sleep(0.1)

    def call(
        self, method: str, path: str, payload: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(*self.address, timeout=30)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            headers = {"Content-Type": content_type} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def workers(self) -> list[int]:
        """Process ids of the server's worker processes (children of the master)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in children.split()]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def served_in_process(adapter: HttpAdapter) -> Iterator[str]:
    """``adapter`` on uvicorn with mlsys serve's protocol, in a thread of this process
    (the process manager and workers are tested through :class:`ServeProcess`)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    config = uvicorn.Config(
        adapter,
        http=protocol_class(request_timeout=30),
        loop="asyncio",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


class Load:
    """``CLIENTS`` keep-alive clients posting /stream until stopped; they reconnect
    after a failure (a killed worker) and record the request id of every 200."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.acknowledged: list[str] = []
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        connection = http.client.HTTPConnection(*self.address, timeout=10)
        while not self._stop.is_set():
            try:
                connection.request(
                    "POST", "/stream", body=STREAM_ROW, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                payload = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                with self._lock:
                    self.failures += 1
                connection.close()
                time.sleep(0.01)
                continue
            if response.status == 200:
                with self._lock:
                    self.acknowledged.append(payload["request_id"])

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 120  # a hang guard, not a performance bound
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} answered"
            time.sleep(0.01)

    def stop(self) -> set[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return set(self.acknowledged)


def stored_request_ids(log_uri: str) -> set[str]:
    with closing(sqlite3.connect(log_uri.removeprefix("sqlite:///"))) as connection:
        rows = connection.execute("SELECT body FROM events WHERE type = 'prediction'").fetchall()
    return {json.loads(body)["request_id"] for (body,) in rows}
