"""An acknowledged request's event survives the server being killed (issue 18).

``mlsys serve`` commits a request's events before it answers (``--log-delivery
sync``, the default), so SIGKILL of a worker under load, and then of the whole
process group, loses none of the events whose requests were answered.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.serve_support import Load, ServeProcess, publish_regression, stored_request_ids

pytestmark = pytest.mark.slow
STEP = 150
"""Acknowledged requests to wait for before each kill."""


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
