"""Baselines for ``benchmarks.serving``: the smallest app that answers a constant JSON body.

``app`` is a WSGI callable for gunicorn (run with the same worker class, workers,
threads and keep-alive as ``mlsys serve``); ``python -m benchmarks.constant_app
stdlib`` serves the same body on the standard library's ThreadingHTTPServer
(what ``mlsys serve`` used before gunicorn) and prints its port.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODY = b'{"result":151.0,"model_version":"constant","request_id":"constant"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass  # read the request body, as the real app does
    start_response("200 OK", HEADERS)
    return [BODY]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        for name, value in HEADERS:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__" and sys.argv[1:] == ["stdlib"]:
    main()
