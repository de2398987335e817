"""CloudWatch in moto for the rollout evaluator's tests: percentiles, and serving traffic.

moto 5.2.5's ``GetMetricData`` answers ``Sum``, ``Average``, ``Minimum``, ``Maximum`` and
``SampleCount`` only (``moto/cloudwatch/models.py``, ``Statistics.get_statistics_for_type``);
a ``pNN`` statistic makes it fail while serialising ``None``. CloudWatch computes
percentiles from the raw values a metric was published with (EMF values, or
``Values``/``Counts``). :func:`moto_percentiles` teaches moto's own statistics that one
statistic, nearest rank over the raw values it stores (aggregated ``StatisticValues``
carry no distribution and are left out, as in CloudWatch). Everything else, the client,
the request and response shapes, the filtering by namespace, dimensions and period, is
moto's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

from moto.cloudwatch import models as cloudwatch_models

from mlsys import names


@contextmanager
def percentiles_in_moto() -> Iterator[None]:
    """moto answers ``pNN`` statistics (nearest rank over its raw values) inside the block."""
    original = cloudwatch_models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if not (stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit()):
            return original(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = max(1, math.ceil(float(stat[1:]) / 100.0 * len(values)))
        return values[rank - 1]

    cloudwatch_models.Statistics.get_statistics_for_type = get_statistics_for_type
    try:
        yield
    finally:
        cloudwatch_models.Statistics.get_statistics_for_type = original


def latency_sketch(p50: float, p99: float, *, points: int = 100) -> list[float]:
    """``points`` evenly spaced quantiles of a latency distribution with that median and
    99th percentile (log-normal): what one minute of EMF ``Latency`` values looks like to a
    percentile query, in 100 numbers instead of tens of thousands."""
    normal = NormalDist()
    sigma = math.log(p99 / p50) / normal.inv_cdf(0.99)
    return [p50 * math.exp(sigma * normal.inv_cdf((i + 0.5) / points)) for i in range(points)]


@dataclass(frozen=True, kw_only=True)
class VersionTraffic:
    """One model version's traffic per minute, as the serving functions publish it."""

    version: str
    requests_per_minute: int
    error_rate: float
    p50_ms: float
    p99_ms: float


def publish_traffic(
    client: Any, *, start: datetime, minutes: int, versions: Sequence[VersionTraffic]
) -> int:
    """Put ``minutes`` of per-minute traffic for ``versions`` into CloudWatch (moto).

    Counts go in as ``StatisticValues`` (what CloudWatch keeps per minute of EMF values:
    one sum per minute, however many requests), latency as a 100-value sketch per minute.
    Returns the number of ``PutMetricData`` calls.
    """
    calls = 0
    for minute in range(minutes):
        at = start + timedelta(minutes=minute, seconds=30)
        data: list[dict[str, Any]] = []
        for traffic in versions:
            data.extend(_minute(traffic, at))
        for chunk in _chunks(data, 20):
            client.put_metric_data(Namespace=names.METRICS_NAMESPACE, MetricData=chunk)
            calls += 1
    return calls


def _minute(traffic: VersionTraffic, at: datetime) -> Iterator[dict[str, Any]]:
    dimensions = [
        {"Name": "service", "Value": names.INFERENCE_SERVICE},
        {"Name": names.DIMENSION_MODEL_VERSION, "Value": traffic.version},
    ]
    errors = round(traffic.requests_per_minute * traffic.error_rate)
    for name, count in (
        (names.METRIC_REQUESTS, traffic.requests_per_minute - errors),
        (names.METRIC_ERRORS, errors),
    ):
        if count:
            yield {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": at,
                "StatisticValues": {
                    "SampleCount": count,
                    "Sum": count,
                    "Minimum": 1,
                    "Maximum": 1,
                },
                "Unit": "Count",
            }
    yield {
        "MetricName": names.METRIC_LATENCY,
        "Dimensions": dimensions,
        "Timestamp": at,
        "Values": latency_sketch(traffic.p50_ms, traffic.p99_ms),
        "Unit": "Milliseconds",
    }


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def put_emf_documents(client: Any, lines: Sequence[str]) -> int:
    """What CloudWatch Logs does with the EMF lines a function prints: every metric of every
    directive, once per dimension set, as ``PutMetricData`` (into moto). Lines without
    ``_aws`` are ignored. Returns the number of data points put."""
    data: list[tuple[str, dict[str, Any]]] = []
    for line in lines:
        document = json.loads(line) if line.startswith("{") else {}
        if "_aws" not in document:
            continue
        at = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, UTC)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    datum = {
                        "MetricName": metric["Name"],
                        "Dimensions": [
                            {"Name": name, "Value": str(document[name])} for name in dimension_set
                        ],
                        "Timestamp": at,
                        "Values": [
                            float(v) for v in (value if isinstance(value, list) else [value])
                        ],
                        "Unit": metric.get("Unit", "None"),
                    }
                    data.append((directive["Namespace"], datum))
    for namespace in {n for n, _ in data}:
        chosen = [d for n, d in data if n == namespace]
        for chunk in _chunks(chosen, 500):
            client.put_metric_data(Namespace=namespace, MetricData=chunk)
    return len(data)
