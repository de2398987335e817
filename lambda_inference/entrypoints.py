"""Every Lambda function's entry point, in one module.

The ``Handler`` of each function in the synthesized template names a function here
(:data:`lambda_inference.routes.LAMBDA_HANDLERS`, which the CDK constructs read):

``handle_predict`` / ``handle_admin``
    API Gateway requests, served by the container's :class:`~lambda_inference.handler.Api`.
``handle_log_ingest``
    CloudWatch Logs subscription batches, written to the system log.
``handle_monitor``
    The scheduled model monitor (:mod:`mlsys.monitoring.scheduled`).
``handle_rollout_evaluate``
    The scheduled rollout evaluator (:mod:`mlsys.rollout.scheduled`).

Each is a thin adapter: it reads the settings once per container, calls logic that
knows nothing of Lambda, and does what only Lambda needs (Powertools' request context
and EMF metrics, the per-container singleton that warm invocations reuse).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lambda_inference.handler import Api, request_id_of, respond
from lambda_inference.http import INTERNAL_ERROR, error_body, status_for
from lambda_inference.observability import count_server_error, inject_request_context, logger
from lambda_inference.service import InferenceService
from mlsys import names
from mlsys.errors import MlsysError
from mlsys.monitoring.scheduled import MonitorJob, run_scheduled
from mlsys.rollout.scheduled import evaluate_once, rollout_metrics
from mlsys.settings import load_settings

# --- the HTTP API and log ingestion (one service per container) ---------------------

_default_api: Api | None = None
_default_lock = threading.Lock()


def default_api() -> Api:
    """The container's :class:`Api`, built from the environment on first use."""
    global _default_api  # noqa: PLW0603 - the per-container singleton Lambda reuses
    api = _default_api
    if api is None:
        with _default_lock:
            if _default_api is None:
                _default_api = Api(InferenceService.from_settings(load_settings()))
            api = _default_api
    return api


def reset_default_api() -> None:
    """Forget the container's service (tests that change the environment)."""
    global _default_api  # noqa: PLW0603
    with _default_lock:
        _default_api = None


def _unavailable(error: Exception, event: Any, context: Any) -> dict[str, Any]:
    """The response when the container's service cannot be built (no service,
    so no event log: the Powertools log line is the record)."""
    request_id = request_id_of(event, context)
    if isinstance(error, MlsysError):
        status, code, message = status_for(error), error.code, error.message
        logger.error(message, extra={"code": code, "request_id": request_id})
    else:
        status, code = INTERNAL_ERROR, "internal_error"
        message = "internal error; see the function's logs for the request id"
        logger.exception("could not start the service", extra={"request_id": request_id})
    if status >= INTERNAL_ERROR:
        count_server_error(context)
    return respond(status, error_body(code, message, {"request_id": request_id}))


def _api_entry_point(
    serve: Callable[[Api, Mapping[str, Any], Any], dict[str, Any]], *, retry_on_startup_error: bool
) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    """A Lambda entry point: the container's :class:`Api` (built on first use), then ``serve``.

    If the service cannot be built, HTTP entry points answer with the JSON error;
    ``retry_on_startup_error`` entry points (log ingestion) raise instead, so that
    Lambda retries the batch rather than dropping its events.
    """

    @inject_request_context
    def entry_point(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        try:
            api = default_api()
        except Exception as error:
            if retry_on_startup_error:
                logger.exception("could not start the service; the batch will be retried")
                raise
            return _unavailable(error, event, context)
        return serve(api, event, context)

    return entry_point


handle_predict = _api_entry_point(Api.handle_predict, retry_on_startup_error=False)
handle_admin = _api_entry_point(Api.handle_admin, retry_on_startup_error=False)
handle_log_ingest = _api_entry_point(Api.handle_log_ingest, retry_on_startup_error=True)


# --- scheduled jobs -----------------------------------------------------------------

_monitor_logger = Logger(service=names.MONITOR_SERVICE)
_rollout_logger = Logger(service=names.ROLLOUT_SERVICE)


def handle_monitor(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge target of the model monitor; the schedule's input is the run's job."""
    summary = run_scheduled(
        MonitorJob.from_event(event or {}), settings=load_settings(), now=datetime.now(UTC)
    )
    _monitor_logger.info(
        "monitor run", extra={"versions": len(summary["versions"]), "report": summary["report"]}
    )
    return summary


def handle_rollout_evaluate(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge target of the rollout evaluator; the returned state ends up in the
    function's log, its metrics on the dashboard."""
    settings = load_settings()
    evaluation = evaluate_once(settings)
    for name, value in rollout_metrics(evaluation).items():
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            namespace=names.METRICS_NAMESPACE,
            default_dimensions={
                "service": names.ROLLOUT_SERVICE,
                names.DIMENSION_MODEL_NAME: settings.model_name,
            },
        ):
            pass
    result = evaluation.to_dict()
    _rollout_logger.info("rollout evaluated", extra={"rollout": result})
    return result
