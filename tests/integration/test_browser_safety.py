"""A web page on another origin cannot drive ``mlsys serve`` (issue 18), in real Chromium.

The page (served from ``http://localhost:OTHER``, the server listens on
``127.0.0.1:PORT``) tries what worked before: ``<img src=.../emptyLog>`` to clear the
log, and ``no-cors`` fetches posting feedback and predictions with a body that has no
Content-Type or a ``text/plain`` one. The log afterwards still holds exactly what it held,
plus one ``forbidden`` error event per attempt: the requests did reach the server.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.monitoring.browser import render
from tests.serve_support import ServeProcess, publish_regression

pytestmark = pytest.mark.slow
ROW = [0.01] * 10

ATTACK = """<!DOCTYPE html>
<html><body><div id="out">pending</div>
<script>
const target = "TARGET";
const row = JSON.stringify({data: ROW});
const feedback = JSON.stringify({data: [{request_id: "r", index: 0, actual: 1.0}]});
const attempts = [
  new Promise(done => { const img = new Image(); img.onload = img.onerror = done;
                        img.src = target + "/emptyLog"; }),
  fetch(target + "/feedback", {method: "POST", mode: "no-cors", body: new Blob([feedback])}),
  fetch(target + "/stream", {method: "POST", mode: "no-cors", body: new Blob([row])}),
  fetch(target + "/batch", {method: "POST", mode: "no-cors",
                            body: JSON.stringify({data: [JSON.parse(row).data]})}),
];
Promise.allSettled(attempts).then(r => {
  document.getElementById("out").textContent = "done " + r.length; });
</script></body></html>
"""


@pytest.fixture
def attacker_page(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A static file server on its own port (another origin than mlsys serve)."""
    root = tmp_path / "site"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            return

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield root, int(site.server_address[1])
    finally:
        site.shutdown()
        site.server_close()


def logged(log_uri: str) -> list[tuple[str, dict[str, object]]]:
    with closing(sqlite3.connect(log_uri.removeprefix("sqlite:///"))) as connection:
        rows = connection.execute("SELECT type, body FROM events ORDER BY id").fetchall()
    return [(kind, json.loads(body)["data"]) for kind, body in rows]


def test_a_page_on_another_origin_can_neither_clear_the_log_nor_post(
    tmp_path: Path, attacker_page: tuple[Path, int]
) -> None:
    registry, log_uri = publish_regression(tmp_path)
    server = ServeProcess(registry, log_uri, "--workers", "1")
    try:
        assert server.call("POST", "/stream", {"data": ROW})[0] == 200
        site_root, site_port = attacker_page
        page = ATTACK.replace("TARGET", server.url).replace("ROW", json.dumps(ROW))
        (site_root / "attack.html").write_text(page)
        rendered = render(
            f"http://localhost:{site_port}/attack.html", tmp_path / "profile", budget_ms=10_000
        )
    finally:
        assert server.stop() == 0
    assert "done 4" in rendered.dom  # every attempt ran to completion
    events = logged(log_uri)
    assert [kind for kind, _ in events if kind != "error"] == ["prediction"]  # still there
    errors = [data for kind, data in events if kind == "error"]
    refused = sorted((str(data["route"]), data["status"], data["code"]) for data in errors)
    assert refused == [
        ("GET /emptyLog", 403, "forbidden"),
        ("POST /batch", 403, "forbidden"),
        ("POST /feedback", 403, "forbidden"),
        ("POST /stream", 403, "forbidden"),
    ]
