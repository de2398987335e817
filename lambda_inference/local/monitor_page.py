"""``GET /monitor`` on the local server: the monitor's HTML report for the current window.

Local only (``mlsys serve``): on AWS the scheduled monitor writes the same report to
the bucket. ``?since=`` takes what ``mlsys monitor --since`` takes (default 24h);
the report covers the served model's events only, or, with ``?model=NAME``, another
model of the same registry (an unknown name is a 404 listing the known ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from lambda_inference.errors import InvalidQueryError
from lambda_inference.http import error_body, status_for, to_json
from lambda_inference.service import InferenceService
from mlsys.errors import ConfigError, MlsysError
from mlsys.monitoring.monitor import require_known_model, run_monitor
from mlsys.monitoring.report import render_html
from mlsys.monitoring.window import DEFAULT_SINCE, iso_z, parse_since
from mlsys.registry import InvalidModelNameError, ModelRegistry

PATH = "/monitor"
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
JSON_HEADERS = {"Content-Type": "application/json"}


def monitor_page(
    service: InferenceService, query: Mapping[str, str], *, now: datetime | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers of the report page (a JSON error body on failure)."""
    moment = now or datetime.now(UTC)
    try:
        try:
            since = parse_since(query.get("since") or DEFAULT_SINCE, now=moment)
        except ConfigError as exc:
            raise InvalidQueryError(exc.message, details={"parameter": "since"}) from None
        registry = service.tracker.registry
        model = query.get("model") or registry.model_name
        if model != registry.model_name:
            try:
                registry = ModelRegistry(registry.store, model_name=model)
            except InvalidModelNameError as exc:
                raise InvalidQueryError(exc.message, details={"parameter": "model"}) from None
        # Read-your-writes: predictions answered a moment ago are in the report.
        service.sink.flush(timeout=service.log_flush_seconds)
        log = service.event_log()
        if model != service.model_name:
            require_known_model(registry, log)
        report = run_monitor(log=log, registry=registry, since=since, until=iso_z(moment))
    except MlsysError as error:
        body = to_json(error_body(error.code, error.message, error.details)).encode()
        return status_for(error), body, JSON_HEADERS
    title = f"mlsys model monitor: {registry.model_name}"
    return 200, render_html(report, title=title).encode(), HTML_HEADERS
