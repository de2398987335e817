"""``mlsys serve`` serves the monitor report at GET /monitor, for the current window."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from lambda_inference.local.adapter import HttpAdapter
from tests.monitoring.support import Trained, make_api, records


@pytest.fixture
def base_url(regressor: Trained, tmp_path: Path) -> Iterator[str]:
    api = make_api(regressor, f"sqlite:///{tmp_path}/log.sqlite3")
    # mlsys serve's WSGI adapter in process (gunicorn itself is tested in tests/integration).
    adapter = HttpAdapter(api, max_body_bytes=api.service.limits.max_body_bytes)
    server = make_server("127.0.0.1", 0, adapter, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def _post(url: str, body: object) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_get_monitor_is_the_html_report_of_what_was_just_served(
    base_url: str, regressor: Trained
) -> None:
    _post(f"{base_url}/batch", {"data": records(regressor.features().iloc[:120])})
    with urllib.request.urlopen(f"{base_url}/monitor?since=1h", timeout=60) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = response.read().decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "120 records" in page
    assert page.count("<svg class='plot'") == 4  # prediction + features a, b, c


def test_bad_since_is_a_json_400(base_url: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base_url}/monitor?since=soon", timeout=30)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_query"
