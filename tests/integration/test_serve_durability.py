"""An acknowledged request's event survives the server being killed (issue 18).

``mlsys serve`` commits a request's events before it answers (``--log-delivery
sync``, the default), so SIGKILL of a worker under load, and then of the whole
process group, loses none of the events whose requests were answered.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.serve_support import ServeProcess, publish_regression

pytestmark = pytest.mark.slow
ROW = json.dumps({"data": [0.01] * 10}).encode()
CLIENTS = 4
STEP = 150
"""Acknowledged requests to wait for before each kill."""


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
                    "POST", "/stream", body=ROW, headers={"Content-Type": "application/json"}
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


def test_no_acknowledged_event_is_lost_when_a_worker_then_the_whole_server_is_killed(
    tmp_path: Path,
) -> None:
    registry, log_uri = publish_regression(tmp_path)
    server = ServeProcess(registry, log_uri, "--workers", "2", new_session=True)
    load = Load(server.address)
    try:
        load.wait_for(STEP)
        os.kill(server.workers()[0], signal.SIGKILL)
        load.wait_for(len(load.acknowledged) + STEP)  # the other worker, then a new one
        os.killpg(server.process.pid, signal.SIGKILL)
        time.sleep(0.2)  # clients see the server gone
    finally:
        acknowledged = load.stop()
        server.process.wait(timeout=30)
    assert load.failures > 0  # the kills hit the clients' connections
    lost = acknowledged - stored_request_ids(log_uri)
    assert len(acknowledged) >= 2 * STEP
    assert lost == set(), f"{len(lost)} of {len(acknowledged)} acknowledged events lost"
