"""``mlsys serve`` serves the monitor report at GET /monitor, for the current window."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_inference.local.adapter import HttpAdapter
from tests.monitoring.support import Trained, make_api, records
from tests.serve_support import served_in_process


@pytest.fixture
def base_url(regressor: Trained, tmp_path: Path) -> Iterator[str]:
    api = make_api(regressor, f"sqlite:///{tmp_path}/log.sqlite3")
    adapter = HttpAdapter(api, max_body_bytes=api.service.limits.max_body_bytes)
    with served_in_process(adapter) as url:
        yield url
    adapter.close()


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
