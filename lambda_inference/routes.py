"""The HTTP API's routes and the Lambda entry points, declared once.

Imported by the Lambda handler (dispatch), the OpenAPI generator (which paths and
methods the document lists) and the CDK construct (API Gateway resources and
methods, and which function serves them). It imports nothing heavy (no
onnxruntime, numpy or Powertools) so that ``infra/`` can import it; a route added
here reaches the handler, the document and AWS together, and the infra tests check
that the synthesized API exposes exactly these routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AuthClass = Literal["predict", "admin"]
"""``predict``: API key or SigV4, served by the predict function (events to stdout).
``admin``: SigV4 only, served by the admin function (synchronous log access)."""


@dataclass(frozen=True, kw_only=True)
class Route:
    path: str
    """Starts with ``/``; one path segment (API Gateway resources under the root)."""
    method: str
    handler: str
    """Name of the route function in :data:`lambda_inference.handler.ROUTE_HANDLERS`."""
    auth: AuthClass
    summary: str

    @property
    def resource(self) -> str:
        """The API Gateway resource path part (no leading slash)."""
        return self.path.lstrip("/")


ROUTES: tuple[Route, ...] = (
    Route(path="/stream", method="POST", handler="stream", auth="predict",
          summary="Predict one record"),
    Route(path="/batch", method="POST", handler="batch", auth="predict",
          summary="Predict a batch of records"),
    Route(path="/feedback", method="POST", handler="feedback", auth="predict",
          summary="Ground truth for earlier predictions (monitoring)"),
    Route(path="/log", method="GET", handler="log", auth="admin",
          summary="System log, newest first"),
    Route(path="/log", method="DELETE", handler="clear", auth="admin", summary="Empty the log"),
    Route(path="/emptyLog", method="GET", handler="clear", auth="admin", summary="Empty the log"),
    Route(path="/health", method="GET", handler="health", auth="admin",
          summary="Status and champion version"),
    Route(path="/openapi.json", method="GET", handler="openapi", auth="admin",
          summary="This API's OpenAPI document"),
)  # fmt: skip

ENTRYPOINTS_MODULE = "lambda_inference.entrypoints"
"""The one module every Lambda function's handler lives in."""
ENTRY_POINTS: dict[AuthClass, str] = {
    "predict": f"{ENTRYPOINTS_MODULE}.handle_predict",
    "admin": f"{ENTRYPOINTS_MODULE}.handle_admin",
}
"""The Lambda function handler serving each auth class's routes."""
LOG_INGEST_ENTRY_POINT = f"{ENTRYPOINTS_MODULE}.handle_log_ingest"
"""The CloudWatch Logs subscription target (not an HTTP route)."""
MONITOR_ENTRY_POINT = f"{ENTRYPOINTS_MODULE}.handle_monitor"
"""The scheduled model monitor."""
ROLLOUT_EVALUATOR_ENTRY_POINT = f"{ENTRYPOINTS_MODULE}.handle_rollout_evaluate"
"""The scheduled rollout evaluator."""

LOG_QUERY_PARAMETERS = ("limit", "type", "since", "next")
"""Query parameters ``GET /log`` accepts."""


def routes_for(auth: AuthClass) -> tuple[Route, ...]:
    return tuple(route for route in ROUTES if route.auth == auth)


def method_table(routes: tuple[Route, ...]) -> dict[str, dict[str, str]]:
    """``{path: {method: handler name}}`` in declaration order."""
    table: dict[str, dict[str, str]] = {}
    for route in routes:
        table.setdefault(route.path, {})[route.method] = route.handler
    return table
