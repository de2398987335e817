"""A real ``mlsys serve`` in a subprocess, for tests that talk to it over sockets."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from mlsys.registry import ModelRegistry
from tests.inference_support import build_regression, publish

ROOT = Path(__file__).resolve().parents[1]
VERSION = "20260101T000000Z-ssssss"


def publish_regression(root: Path) -> tuple[str, str]:
    """A champion in a directory registry under ``root``: (registry, log URI)."""
    registry = str(root / "registry")
    publish(ModelRegistry.open(registry, model_name="default"), build_regression(version=VERSION))
    return registry, f"sqlite:///{root}/log.sqlite3"


class ServeProcess:
    """``mlsys serve --port 0`` with extra flags; stopped with SIGTERM.

    ``command`` runs another installation's ``mlsys`` (default: this checkout's, from
    ``cwd``, the repository root)."""

    def __init__(
        self,
        registry: str,
        log_uri: str,
        *flags: str,
        env: dict[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "mlsys"),
        cwd: Path = ROOT,
    ) -> None:
        self.process = subprocess.Popen(
            [
                *command,
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
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
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

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)
