"""Baselines for ``benchmarks.serving``: the smallest app that answers a constant JSON body.

``asgi_app`` runs on ``mlsys serve``'s own worker class (uvicorn under gunicorn, same
workers and keep-alive): it reads the body on the event loop and hands a trivial call
to a thread, as the real adapter does, so the difference to ``mlsys serve`` is the
handlers. ``app`` is a WSGI callable for gunicorn's ``gthread`` worker (the server
``mlsys serve`` ran before issue 18); ``python -m benchmarks.constant_app stdlib``
serves the same body on the standard library's ThreadingHTTPServer (what it ran
before gunicorn) and prints its port.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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


_POOL = ThreadPoolExecutor(8, thread_name_prefix="constant")
_ASGI_HEADERS = [(name.lower().encode(), value.encode()) for name, value in HEADERS]


def _answer_in_thread(body: bytes) -> bytes:
    return BODY


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(_POOL, _answer_in_thread, b"".join(chunks))
    await send({"type": "http.response.start", "status": 200, "headers": _ASGI_HEADERS})
    await send({"type": "http.response.body", "body": answer})


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
