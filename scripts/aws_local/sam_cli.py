"""Run the AWS SAM CLI with two fixes: a fresh API Gateway request id per request, and no
one-second stall after an invocation.

    <tools venv>/bin/python scripts/aws_local/sam_cli.py local start-api ...

1. ``sam local start-api`` gives every request the same ``requestContext.requestId`` (and
request time): they are default arguments of ``RequestContext.__init__``, evaluated once
at import (aws/aws-sam-cli#9279, fix proposed in #9280). The handlers take that id as the
request's ``request_id``: the response's, the system-log events', and the key of the
canary split. With one id for every request, every request would go to the same model
and ``GET /log`` could not tell requests apart, unlike API Gateway. This wrapper gives
each request its own id and time, as API Gateway does.

2. After each invocation SAM waits up to a second for the function's ``REPORT`` line, which
its log reader recognises only when at most one other line precedes it in the chunk
docker hands over (``re.match`` without DOTALL); a chunk with the event line, ``END`` and
``REPORT`` misses it, and the request takes a second longer. This wrapper also recognises a
``REPORT`` line anywhere in the chunk. Only timing changes.

Otherwise this is the ``sam`` command unchanged. Run by the tools virtualenv's Python
(where samcli is installed).
"""

from __future__ import annotations

import inspect
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any


def fresh_request_context(context_class: Any) -> None:
    """Replace frozen default ``request_id``/``request_time*`` values with fresh ones."""
    original = context_class.__init__
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(original).parameters.items()
        if name in ("request_id", "request_time_epoch", "request_time")
    }

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.request_id == defaults.get("request_id"):
            self.request_id = str(uuid.uuid4())
        if self.request_time_epoch == defaults.get("request_time_epoch"):
            now_ms = time.time_ns() // 1_000_000
            self.request_time_epoch = now_ms
            self.request_time = datetime.fromtimestamp(now_ms / 1000, UTC).strftime(
                "%d/%b/%Y:%H:%M:%S +0000"
            )

    context_class.__init__ = init


def report_anywhere(container_class: Any) -> None:
    """Signal the end of an invocation when a ``REPORT RequestId:`` line is anywhere in a
    chunk of the container's output (SAM's own check looks only at its first two lines)."""
    original = container_class._handle_data_writing

    def handle(output_stream: Any, output_data: bytes, event: Any) -> None:
        original(output_stream, output_data, event)
        if event is not None and b"REPORT RequestId:" in output_data:
            event.set()

    container_class._handle_data_writing = staticmethod(handle)


def main() -> int:
    from samcli.cli.main import cli  # noqa: PLC0415 - only in the tools virtualenv
    from samcli.local.docker.container import Container  # noqa: PLC0415
    from samcli.local.events.api_event import RequestContext  # noqa: PLC0415

    fresh_request_context(RequestContext)
    report_anywhere(Container)
    sys.argv[0] = "sam"
    result: int = cli()
    return result


if __name__ == "__main__":
    sys.exit(main())
