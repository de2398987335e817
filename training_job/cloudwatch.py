"""Training metrics as CloudWatch Embedded Metric Format (EMF) lines.

Namespace ``mlsys``, dimension ``service=training`` (shared with the dashboards
and alarms): ``TrainingRuns``, ``Promotions``, ``ChallengerScore``,
``ChampionScore``, ``TrainingDuration`` (seconds) and ``GuardrailFailures``.
Model name, version and metric go in as EMF metadata, not dimensions, so alarms
need no per-model configuration.

A private :class:`AmazonCloudWatchEMFProvider` is used rather than Powertools'
``Metrics`` because the latter shares its metric set across all instances in a
process; emitting to an explicit stream also keeps ``--json`` output clean.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from mlsys import names

NAMESPACE = names.METRICS_NAMESPACE
SERVICE = names.TRAINING_SERVICE


def training_metrics_emf(result: Mapping[str, Any]) -> dict[str, Any]:
    """One EMF document for a finished training run (``TrainingOutcome.to_dict()``)."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (  # noqa: PLC0415
        AmazonCloudWatchEMFProvider,
    )

    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=SERVICE)
    provider.add_metric(name=names.METRIC_TRAINING_RUNS, unit=MetricUnit.Count, value=1)
    provider.add_metric(
        name=names.METRIC_PROMOTIONS,
        unit=MetricUnit.Count,
        value=1 if result.get("promoted") else 0,
    )
    failures = sum(1 for g in result.get("guardrails", []) if not g.get("passed", True))
    provider.add_metric(name=names.METRIC_GUARDRAIL_FAILURES, unit=MetricUnit.Count, value=failures)
    provider.add_metric(
        name=names.METRIC_TRAINING_DURATION,
        unit=MetricUnit.Seconds,
        value=float(result.get("duration_seconds") or 0.0),
    )
    for key, name in (
        ("challenger_score", names.METRIC_CHALLENGER_SCORE),
        ("champion_score", names.METRIC_CHAMPION_SCORE),
    ):
        value = result.get(key)
        if value is not None:
            provider.add_metric(name=name, unit=MetricUnit.NoUnit, value=float(value))
    for key in ("model_name", "version", "metric", "run_id"):
        if result.get(key) is not None:
            provider.add_metadata(key=key, value=str(result[key]))
    return dict(provider.serialize_metric_set())


def emit_training_metrics(result: Mapping[str, Any], *, stream: IO[str]) -> None:
    """Write the run's metrics as one EMF JSON line (CloudWatch Logs extracts them)."""
    stream.write(json.dumps(training_metrics_emf(result), separators=(",", ":")) + "\n")
    stream.flush()
