"""Observability for the inference functions: one logger, one tracer, metrics.

``logger``
    The one Powertools :class:`Logger` (service ``inference``) every inference
    module logs through. The Lambda entry points are wrapped with
    :func:`inject_request_context`, so each line carries the Lambda request id
    and, as ``correlation_id``, API Gateway's request id (the ``request_id``
    of the response and of the system-log events).
``traced(name)``
    An X-Ray subsegment around model load and predict. The Powertools
    :class:`Tracer` is created on first use and only where tracing is active
    (``Settings.tracing``: a Lambda function with active tracing): importing the
    X-Ray SDK costs ~0.2 s of cold start, which nothing else pays.
:class:`Telemetry`
    CloudWatch metrics in the Embedded Metric Format. Names and dimensions are
    the team's fixed decision: namespace ``mlsys``, service ``inference``,
    ``ModelVersion`` wherever a model was involved, ``ErrorCode`` on ``Errors``.
    The per-request metrics are not printed on their own: :meth:`Telemetry.request`
    returns the EMF members (``_aws`` plus values) and the event sink writes
    them in the same JSON line as the request's system-log event, so a
    prediction is serialised once (CloudWatch extracts metrics from any JSON
    log line carrying ``_aws``; the subscription filter
    ``{ $.mlsys_event.type = "*" }`` still matches that line). Rare metrics
    (cold start, model load, errors) go through Powertools.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import numpy as np
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlsys import names
from mlsys.contract import Prediction

NAMESPACE = "mlsys"
SERVICE = "inference"
MAX_VALUES_PER_METRIC = 100
"""EMF accepts at most 100 values per metric per document; batches send a sample."""

logger = Logger(service=SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])
_UNTRACED: AbstractContextManager[Any] = nullcontext()
"""What :meth:`Telemetry.traced` gives where tracing is off (one instance: reusable)."""


def inject_request_context(handler: Handler) -> Handler:
    """Every log line of the invocation carries its Lambda request id
    (``function_request_id``) and API Gateway's request id (``correlation_id``).

    The keys are those of Powertools' ``inject_lambda_context`` with
    ``correlation_id_path=API_GATEWAY_REST``, appended directly: measured, that
    decorator adds ~15 us per request (1.7x an onnxruntime call for the default
    model: it rebuilds the context model and runs a JMESPath query every time),
    this ~1 us. The static keys (function name, memory, ARN) are set once.
    """
    static: list[bool] = []
    keys: list[dict[str, Any]] = []
    """The formatter's own dict of appended keys, looked up once: per invocation the
    two request keys are assigned to it directly (``append_keys`` finds the formatter
    through the logger's handlers every time: ~0.6 us)."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if not static:
            logger.append_keys(
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                cold_start=True,
            )
            static.append(True)
            keys.append(logger.get_current_keys())
        elif len(static) == 1:
            logger.append_keys(cold_start=False)
            static.append(False)
        current = keys[0]
        current["function_request_id"] = getattr(context, "aws_request_id", None)
        current["correlation_id"] = _api_request_id(event)
        return handler(event, context)

    return wrapper  # type: ignore[return-value]


def _api_request_id(event: Any) -> str | None:
    """``requestContext.requestId`` (API Gateway REST), None in other events."""
    try:
        found = event["requestContext"]["requestId"]
    except (KeyError, TypeError, IndexError):
        return None
    return str(found) if found is not None else None


def count_server_error(context: Any) -> None:
    """One ``ServerErrors`` metric for a 5xx this Lambda function version answered.

    Dimensions: service, ``FunctionName`` and ``FunctionVersion`` -- the version that ran
    (an invocation through the ``live`` alias reports its number), so the code canary's
    rollback alarm (infra/deployment.py) counts the failed requests of the version being
    deployed only. Lambda's own ``Errors`` metric cannot see them: the handler answers every
    failure with a JSON response, so the invocation itself succeeds. Emitted outside
    :class:`Telemetry` because a container whose service cannot even be built (a 503
    ``invalid_config``) must count too. Nothing is emitted without a Lambda context (the
    local server, in-process tests).
    """
    function = getattr(context, "function_name", None)
    version = getattr(context, "function_version", None)
    if not function or not version:
        return
    with single_metric(
        name=names.METRIC_SERVER_ERRORS,
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={
            "service": SERVICE,
            names.DIMENSION_FUNCTION_NAME: str(function),
            names.DIMENSION_FUNCTION_VERSION: str(version),
        },
    ):
        pass


class Telemetry:
    def __init__(
        self,
        *,
        enabled: bool,
        tracing: bool = False,
        namespace: str = NAMESPACE,
        service: str = SERVICE,
    ) -> None:
        self.enabled = enabled
        self.tracing = tracing
        self.namespace = namespace
        self.service = service
        self._metrics = Metrics(namespace=namespace, service=service) if enabled else None
        self._cold = True
        self._tracer: Any = None
        # The EMF directives do not change between requests: built and serialised once
        # (an orjson Fragment is copied into each line as it is).
        request = self._directive(["Requests", "Records", "Latency"], ["service", "ModelVersion"])
        self._request_directives = orjson.Fragment(orjson.dumps([request]))
        self._regression_directives = orjson.Fragment(
            orjson.dumps(
                [
                    self._directive(
                        ["Requests", "Records", "Latency", "PredictionValue"],
                        ["service", "ModelVersion"],
                    )
                ]
            )
        )
        self._one_class_directives = orjson.Fragment(
            orjson.dumps(
                [request, self._directive(["PredictedClass"], ["service", "ModelVersion", "Class"])]
            )
        )

    # --- tracing ------------------------------------------------------------------
    def traced(self, name: str) -> AbstractContextManager[Any]:
        """An X-Ray subsegment ``name`` (a no-op where tracing is off)."""
        if not self.tracing:
            return _UNTRACED
        tracer = self._tracer
        if tracer is None:
            from aws_lambda_powertools import Tracer  # noqa: PLC0415 - ~0.2 s, on AWS only

            tracer = self._tracer = Tracer(service=self.service)
        if tracer.disabled:
            return _UNTRACED
        return _subsegment(tracer, name)

    # --- metrics ------------------------------------------------------------------
    def cold_start(self) -> None:
        if self._metrics is not None and self._cold:
            self._metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        self._cold = False

    def model_loaded(self, *, version: str, seconds: float) -> None:
        self._single(
            "ModelLoadTime", MetricUnit.Milliseconds, seconds * 1000.0, ModelVersion=version
        )

    def request(
        self,
        *,
        version: str,
        records: int,
        latency_ms: float,
        prediction: Prediction,
        classes: list[Any] | None,
    ) -> dict[str, Any] | None:
        """The request's EMF members, for the sink to write with its event; None when off."""
        if not self.enabled:
            return None
        raw = prediction.raw
        assert raw is not None
        fields: dict[str, Any] = {
            "service": self.service,
            "ModelVersion": version,
            "Requests": 1,
            "Records": records,
            "Latency": latency_ms,
        }
        if classes is None:
            if raw.size <= MAX_VALUES_PER_METRIC:
                fields["PredictionValue"] = prediction.values  # the same floats, as a list
            else:
                step = raw.size // MAX_VALUES_PER_METRIC
                fields["PredictionValue"] = raw[::step][:MAX_VALUES_PER_METRIC].tolist()
            directives = self._regression_directives
        else:
            directives = self._predicted_classes(raw, classes, version, fields)
        fields["_aws"] = {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": directives}
        return fields

    def _predicted_classes(
        self, raw: np.ndarray[Any, Any], classes: list[Any], version: str, fields: dict[str, Any]
    ) -> orjson.Fragment:
        """One class (every /stream request): in the same document, with a
        ``Class`` dimension. Several: one Powertools document per class (EMF
        has one value per dimension per document)."""
        counts = np.bincount(raw, minlength=len(classes))
        present = np.flatnonzero(counts)
        if len(present) == 1:
            index = int(present[0])
            fields["Class"] = str(classes[index])
            fields["PredictedClass"] = int(counts[index])
            return self._one_class_directives
        for index in present.tolist():
            self._single(
                "PredictedClass",
                MetricUnit.Count,
                int(counts[index]),
                ModelVersion=version,
                Class=str(classes[index]),
            )
        return self._request_directives

    def _directive(self, metrics: list[str], dimensions: list[str]) -> dict[str, Any]:
        units = {"Latency": "Milliseconds", "PredictionValue": "None"}
        return {
            "Namespace": self.namespace,
            "Dimensions": [dimensions],
            "Metrics": [{"Name": name, "Unit": units.get(name, "Count")} for name in metrics],
        }

    def error(self, *, code: str, version: str | None) -> None:
        dimensions = {"ErrorCode": code}
        if version is not None:
            dimensions["ModelVersion"] = version
        self._single("Errors", MetricUnit.Count, 1, **dimensions)

    def log_write_failed(self, *, events: int) -> None:
        """A system-log write failed (``background`` delivery); its events are retried."""
        self._single("LogWriteFailures", MetricUnit.Count, 1)
        if events:
            self._single("LogEventsRetried", MetricUnit.Count, events)

    def flush(self) -> None:
        # Flushing an empty set only makes Powertools warn (most requests add none).
        # The metric set is Powertools' process-wide one, shared by every instance.
        if self._metrics is not None and self._metrics.metric_set:
            self._metrics.flush_metrics()

    def _single(self, name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
        if not self.enabled:
            return
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=self.namespace,
            default_dimensions={"service": self.service, **dimensions},
        ):
            pass


@contextmanager
def _subsegment(tracer: Any, name: str) -> Iterator[Any]:
    with tracer.provider.in_subsegment(name=name) as subsegment:
        yield subsegment
