"""Observability for the inference functions: one logger, one tracer, metrics.

``logger``
    The one Powertools :class:`Logger` (service ``inference``) every inference
    module logs through. The Lambda entry points wrap it with
    :func:`inject_request_context`, so each line carries the Lambda request id
    and, as ``correlation_id``, API Gateway's request id.
``traced(name)``
    An X-Ray subsegment around model load and predict. The Powertools
    :class:`Tracer` is created on first use and only where metrics are on (the
    functions on AWS): importing the X-Ray SDK costs ~0.2 s, which the local
    server and the tests never pay. Where Powertools disables tracing (outside
    Lambda, ``POWERTOOLS_TRACE_DISABLED``) a span costs nothing.
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

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlsys.contract import Prediction

NAMESPACE = "mlsys"
SERVICE = "inference"
MAX_VALUES_PER_METRIC = 100
"""EMF accepts at most 100 values per metric per document; batches send a sample."""

logger = Logger(service=SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def inject_request_context(handler: Handler) -> Handler:
    """Powertools' ``inject_lambda_context`` with API Gateway's request id as the
    correlation id (absent, e.g. in a log-ingest event, it is simply unset)."""
    wrapped: Handler = logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )(handler)
    return wrapped


class Telemetry:
    def __init__(
        self, *, enabled: bool, namespace: str = NAMESPACE, service: str = SERVICE
    ) -> None:
        self.enabled = enabled
        self.namespace = namespace
        self.service = service
        self._metrics = Metrics(namespace=namespace, service=service) if enabled else None
        self._cold = True
        self._tracer: Any = None

    # --- tracing ------------------------------------------------------------------
    def traced(self, name: str) -> AbstractContextManager[Any]:
        """An X-Ray subsegment ``name`` (a no-op where tracing is off)."""
        if not self.enabled:
            return nullcontext()
        tracer = self._tracer
        if tracer is None:
            from aws_lambda_powertools import Tracer  # noqa: PLC0415 - ~0.2 s, on AWS only

            tracer = self._tracer = Tracer(service=self.service)
        if tracer.disabled:
            return nullcontext()
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
        names = ["Requests", "Records", "Latency"]
        fields: dict[str, Any] = {
            "service": self.service,
            "ModelVersion": version,
            "Requests": 1,
            "Records": records,
            "Latency": latency_ms,
        }
        directives = [self._directive(names, ["service", "ModelVersion"])]
        if classes is None:
            step = max(1, raw.size // MAX_VALUES_PER_METRIC)
            fields["PredictionValue"] = raw[::step][:MAX_VALUES_PER_METRIC].tolist()
            directives[0]["Metrics"].append({"Name": "PredictionValue", "Unit": "None"})
        else:
            self._predicted_classes(raw, classes, version, fields, directives)
        fields["_aws"] = {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": directives,
        }
        return fields

    def _predicted_classes(
        self,
        raw: np.ndarray[Any, Any],
        classes: list[Any],
        version: str,
        fields: dict[str, Any],
        directives: list[dict[str, Any]],
    ) -> None:
        """One class (every /stream request): in the same document, with a
        ``Class`` dimension. Several: one Powertools document per class (EMF
        has one value per dimension per document)."""
        counts = np.bincount(raw, minlength=len(classes))
        present = np.flatnonzero(counts)
        if len(present) == 1:
            index = int(present[0])
            fields["Class"] = str(classes[index])
            fields["PredictedClass"] = int(counts[index])
            directives.append(
                self._directive(["PredictedClass"], ["service", "ModelVersion", "Class"])
            )
            return
        for index in present.tolist():
            self._single(
                "PredictedClass",
                MetricUnit.Count,
                int(counts[index]),
                ModelVersion=version,
                Class=str(classes[index]),
            )

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
