"""The scheduled monitor on AWS (EventBridge -> Lambda, hourly by default).

Each run computes :func:`~mlsys.monitoring.monitor.run_monitor` over the last
window of the DynamoDB log (streamed page by page), then

* publishes CloudWatch metrics in namespace ``mlsys``: ``FeatureDrift`` (PSI per
  ``ModelName``/``ModelVersion``/``Feature``), ``PredictionDrift`` and
  ``LiveQuality`` (per ``ModelName``/``ModelVersion``), and the champion's
  values again under ``ModelName`` alone (``FeatureDrift`` as its largest
  feature PSI) -- the series the alarms watch, stable across promotions;
* writes the HTML report to ``<reports_uri>/<model>/<until>.html`` and
  ``<reports_uri>/<model>/latest.html``;
* appends a ``monitor`` event (the JSON report and the report's key) to the log.

The schedule's input carries the run's parameters (``window_minutes``,
``reports_uri``, ``threshold``), set by ``infra/model_monitor.py``; where the
registry and the log are comes from the usual settings. The Lambda entry point is
:func:`lambda_inference.entrypoints.handle_monitor`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlsys import names
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, EventLog, open_event_log_for
from mlsys.monitoring.drift import DRIFT_THRESHOLD, MIN_RECORDS
from mlsys.monitoring.monitor import MonitorReport, VersionReport, run_monitor
from mlsys.monitoring.report import render_html
from mlsys.monitoring.window import iso_z
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

METRICS_PER_CALL = 500
"""PutMetricData takes up to 1,000 values per request."""


@dataclass(frozen=True, kw_only=True)
class MonitorJob:
    """A run's parameters, from the schedule's input."""

    window_minutes: int = 60
    lookback_minutes: int = 0
    """Feedback is also joined with predictions this much older than the window."""
    reports_uri: str | None = None
    threshold: float = DRIFT_THRESHOLD

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> MonitorJob:
        try:
            window = int(event.get("window_minutes", 60))
            lookback = int(event.get("lookback_minutes", 0))
            threshold = float(event.get("threshold", DRIFT_THRESHOLD))
        except (TypeError, ValueError):
            raise ConfigError(f"bad monitor schedule input {dict(event)!r}") from None
        reports = event.get("reports_uri")
        if window < 1 or lookback < 0 or threshold <= 0:
            raise ConfigError(
                "window_minutes must be >= 1, lookback_minutes >= 0 and threshold positive"
            )
        if reports is not None and urlparse(str(reports)).scheme != "s3":
            raise ConfigError(f"reports_uri must be s3://bucket/prefix, got {reports!r}")
        return cls(
            window_minutes=window,
            lookback_minutes=lookback,
            reports_uri=reports,
            threshold=threshold,
        )


def metric_data(
    model_name: str, report: MonitorReport, champion: str | None
) -> list[dict[str, Any]]:
    """Every CloudWatch datum of a run (pure: tested without AWS)."""
    data = [d for v in report.versions for d in _version_metrics(model_name, v, report.until)]
    current = next((v for v in report.versions if v.version == champion), None)
    if current is None:
        return data
    model = [{"Name": names.DIMENSION_MODEL_NAME, "Value": model_name}]
    drift = [
        d.psi for d in current.features.values() if d.psi is not None and d.count >= MIN_RECORDS
    ]
    if drift:
        data.append(_datum(names.METRIC_FEATURE_DRIFT, model, max(drift), report.until))
    prediction = current.prediction
    if prediction is not None and prediction.psi is not None and prediction.count >= MIN_RECORDS:
        data.append(_datum(names.METRIC_PREDICTION_DRIFT, model, prediction.psi, report.until))
    if current.quality is not None and current.quality.value is not None:
        data.append(_datum(names.METRIC_LIVE_QUALITY, model, current.quality.value, report.until))
    return data


def _version_metrics(
    model_name: str, version: VersionReport, until: str
) -> Iterator[dict[str, Any]]:
    dims = [
        {"Name": names.DIMENSION_MODEL_NAME, "Value": model_name},
        {"Name": names.DIMENSION_MODEL_VERSION, "Value": version.version},
    ]
    for feature, dist in version.features.items():
        if dist.psi is not None:
            yield _datum(
                "FeatureDrift",
                [*dims, {"Name": names.DIMENSION_FEATURE, "Value": feature}],
                dist.psi,
                until,
            )
    if version.prediction is not None and version.prediction.psi is not None:
        yield _datum(names.METRIC_PREDICTION_DRIFT, dims, version.prediction.psi, until)
    if version.quality is not None and version.quality.value is not None:
        yield _datum(names.METRIC_LIVE_QUALITY, dims, version.quality.value, until)


def _datum(name: str, dims: list[dict[str, str]], value: float, until: str) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dims,
        "Value": float(value),
        "Unit": "None",
        "Timestamp": datetime.fromisoformat(until),
    }


def run_scheduled(
    job: MonitorJob,
    *,
    settings: Settings,
    now: datetime,
    log: EventLog | None = None,
    s3_client: S3Client | None = None,
    cloudwatch_client: Any = None,
) -> dict[str, Any]:
    """One scheduled run; returns what it appended to the log as the ``monitor`` event."""
    import boto3  # noqa: PLC0415 - only the AWS path needs it

    registry = ModelRegistry.open(
        settings.registry_uri, model_name=settings.model_name, s3_client=s3_client
    )
    log = log if log is not None else open_event_log_for(settings)
    until = iso_z(now)
    since = iso_z(now - timedelta(minutes=job.window_minutes))
    report = run_monitor(
        log=log,
        registry=registry,
        since=since,
        until=until,
        threshold=job.threshold,
        predictions_since=iso_z(now - timedelta(minutes=job.window_minutes + job.lookback_minutes)),
    )
    pointer = registry.champion()
    champion = pointer.version if pointer is not None else None
    data = metric_data(settings.model_name, report, champion)
    # Typed loosely: metric_data builds plain dicts (the stubs want MetricDatumTypeDef).
    cloudwatch: Any = cloudwatch_client or boto3.client("cloudwatch")
    for start in range(0, len(data), METRICS_PER_CALL):
        cloudwatch.put_metric_data(
            Namespace=names.METRICS_NAMESPACE, MetricData=data[start : start + METRICS_PER_CALL]
        )
    key = None
    if job.reports_uri is not None:
        key = _write_report(
            job.reports_uri, settings.model_name, report, s3_client or boto3.client("s3")
        )
    summary = {**report.to_json(), "champion": champion, "report": key, "metrics": len(data)}
    log.append(
        Event(type="monitor", model=settings.model_name, model_version=champion, data=summary)
    )
    return summary


def _write_report(uri: str, model_name: str, report: MonitorReport, s3: S3Client) -> str:
    parsed = urlparse(uri)
    prefix = parsed.path.strip("/")
    stamp = report.until.replace(":", "").replace("-", "")
    base = f"{prefix}/{model_name}" if prefix else model_name
    body = render_html(report, title=f"mlsys model monitor: {model_name}").encode()
    for key in (f"{base}/{stamp}.html", f"{base}/latest.html"):
        s3.put_object(
            Bucket=parsed.netloc, Key=key, Body=body, ContentType="text/html; charset=utf-8"
        )
    return f"s3://{parsed.netloc}/{base}/{stamp}.html"
