"""A peer's inference handler, timed beside ours in the same process (issue 18).

The peer is aws-samples/sample-serverless-ml-inference-pipeline's
``lambdas/inference/handler.py``: an API Gateway Lambda handler with Powertools'
logger, metrics and tracer decorators around ``InferenceSession.run``. Its code is
not part of this repository: point ``BENCH_PEER_CHECKOUT`` at a checkout of it (the
directory holding ``lambdas/``) and ``make bench`` loads the handler from there;
without it the peer comparisons are reported as not measured.

Its hot path as configured for the comparison: a warm container (the session
injected, so no model load), result caching off (``CACHE_ENABLED=false``: with it,
every new input writes a file to its shared mount), tracing off (no X-Ray daemon
outside Lambda), metrics printed as EMF to standard output as on Lambda. It runs
the same ONNX model as ours, on ``{"input_data": [[...]]}`` arrays (the only shape
it takes).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

PEER_ENV = "BENCH_PEER_CHECKOUT"
PEER_HANDLER = Path("lambdas") / "inference" / "handler.py"
_PEER_SETTINGS = {
    "CACHE_ENABLED": "false",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "peer-inference",
    "POWERTOOLS_METRICS_NAMESPACE": "peer",
    "MODEL_NAME": "default",
}


class PeerContext:
    """What the peer's ``inject_lambda_context`` reads from Lambda's context object."""

    function_name = "peer-inference"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:peer-inference"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/peer-inference"
    log_stream_name = "bench"


def peer_root() -> Path | None:
    """The peer checkout named by ``BENCH_PEER_CHECKOUT``, if it holds the handler."""
    raw = os.environ.get(PEER_ENV)
    if not raw or not (Path(raw) / PEER_HANDLER).is_file():
        return None
    return Path(raw)


def load_peer(root: Path, session: Any) -> ModuleType:
    """The peer's handler module, warm: ``session`` is its loaded model."""
    os.environ.update(_PEER_SETTINGS)
    spec = importlib.util.spec_from_file_location("peer_inference_handler", root / PEER_HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module._SESSION = session
    module._INPUT_NAME = session.get_inputs()[0].name
    return module


def peer_event(rows: list[list[float]]) -> dict[str, Any]:
    """An API Gateway REST event carrying ``{"input_data": rows}``, as the peer takes it."""
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": "bench", "stage": "prod"},
        "body": orjson.dumps({"input_data": rows}).decode(),
        "isBase64Encoded": False,
    }


def call_peer(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event, PeerContext())
    if response.get("statusCode") != 200:
        raise RuntimeError(f"the peer handler failed: {str(response)[:300]}")
    return response
