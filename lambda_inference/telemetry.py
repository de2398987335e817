"""CloudWatch metrics (EMF through Powertools) for the inference functions.

Names and dimensions are the team's fixed decision: namespace ``mlsys``,
service ``inference``, ``ModelVersion`` wherever a model was involved and
``ErrorCode`` on ``Errors``. The local server turns emission off (there is no
CloudWatch agent reading its stdout).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlsys.contract import Prediction

NAMESPACE = "mlsys"
SERVICE = "inference"
MAX_VALUES_PER_METRIC = 100
"""EMF accepts at most 100 values per metric per document; batches send a sample."""


class Telemetry:
    def __init__(
        self, *, enabled: bool, namespace: str = NAMESPACE, service: str = SERVICE
    ) -> None:
        self.enabled = enabled
        self.namespace = namespace
        self.service = service
        self._metrics = Metrics(namespace=namespace, service=service) if enabled else None
        self._cold = True

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
    ) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.add_dimension(name="ModelVersion", value=version)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Records", unit=MetricUnit.Count, value=records)
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
        raw = prediction.raw
        assert raw is not None
        if classes is None:
            step = max(1, raw.size // MAX_VALUES_PER_METRIC)
            for value in raw[::step][:MAX_VALUES_PER_METRIC].tolist():
                metrics.add_metric(name="PredictionValue", unit=MetricUnit.NoUnit, value=value)
            return
        counts = np.bincount(raw, minlength=len(classes)).tolist()
        for index, count in enumerate(counts):
            if count == 0:
                continue
            self._single(
                "PredictedClass",
                MetricUnit.Count,
                count,
                ModelVersion=version,
                Class=str(classes[index]),
            )

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
        # Flushing an empty set only makes Powertools warn (admin routes add none).
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
