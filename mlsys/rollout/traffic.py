"""Where a rollout's traffic evidence (requests, errors, p99 latency, shadow deviation) comes from.

Two :class:`TrafficSource` implementations, chosen by ``MLSYS_ROLLOUT_EVIDENCE``
(:func:`traffic_source_for`):

:class:`MetricsTraffic` (``metrics``; the deployed evaluator)
    One CloudWatch ``GetMetricData`` call over the whole bake: the EMF metrics the serving
    functions publish per ``ModelVersion`` (see :mod:`lambda_inference.observability`),
    each queried as one data point whose period is the bake itself. Its cost does not grow
    with traffic: at 100M requests a day it reads 6 (canary) or 8 (shadow) numbers, where
    reading the log would mean millions of events.
:class:`EventLogTraffic` (``log``; the default, and what local runs against SQLite use)
    The system log's ``prediction``, ``error`` and ``shadow`` events, newest first and
    bounded by count and bytes per type. Each event is reduced to the few fields the
    tally needs as it is read, so memory does not grow with the events' payloads. When a
    type hits its bound, every type is counted over the same (shorter, newest) window,
    so a few seconds of predictions are never weighed against a whole bake of errors.

Both return :class:`~mlsys.rollout.policy.Evidence` without live quality (that comes from
``feedback`` events: :mod:`mlsys.rollout.quality`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from mlsys import names
from mlsys.errors import ConfigError
from mlsys.eventlog import EventLog, EventType
from mlsys.registry import Rollout, RolloutMode, iso
from mlsys.rollout.policy import Evidence, TrafficStats, collect_evidence, seconds_between
from mlsys.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

EVIDENCE_SOURCES = ("log", "metrics")
"""What ``MLSYS_ROLLOUT_EVIDENCE`` accepts."""


class TrafficSource(Protocol):
    """Counts, p99 latency and shadow deviation of both versions since the rollout began."""

    name: str

    def evidence(self, *, rollout: Rollout, champion_version: str, now: datetime) -> Evidence: ...


# --- CloudWatch metrics ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MetricQuery:
    """One number of the evidence: ``stat`` of ``metric`` for ``version`` over the bake."""

    id: str
    metric: str
    stat: str
    version: str


def metric_queries(
    mode: RolloutMode, *, champion_version: str, candidate_version: str
) -> list[MetricQuery]:
    """What :class:`MetricsTraffic` asks CloudWatch for (6 numbers for a canary, 8 for shadow).

    The champion's requests, errors and p99 latency always; the candidate's the same way
    for a canary (it answers its share of requests), and from the ``Shadow*`` metrics for a
    shadow rollout (it answers nobody; successful runs are ``ShadowLatency``'s sample count).
    """
    champion = [
        ("champion_requests", names.METRIC_REQUESTS, "Sum"),
        ("champion_errors", names.METRIC_ERRORS, "Sum"),
        ("champion_p99", names.METRIC_LATENCY, "p99"),
    ]
    if mode == "canary":
        candidate = [
            ("candidate_requests", names.METRIC_REQUESTS, "Sum"),
            ("candidate_errors", names.METRIC_ERRORS, "Sum"),
            ("candidate_p99", names.METRIC_LATENCY, "p99"),
        ]
    else:
        candidate = [
            ("candidate_requests", names.METRIC_SHADOW_LATENCY, "SampleCount"),
            ("candidate_errors", names.METRIC_SHADOW_ERRORS, "Sum"),
            ("candidate_p99", names.METRIC_SHADOW_LATENCY, "p99"),
            ("shadow_records", names.METRIC_SHADOW_RECORDS, "Sum"),
            ("shadow_deviation", names.METRIC_SHADOW_DEVIATION, "Sum"),
        ]
    queries = [
        MetricQuery(id=qid, metric=metric, stat=stat, version=champion_version)
        for qid, metric, stat in champion
    ]
    queries += [
        MetricQuery(id=qid, metric=metric, stat=stat, version=candidate_version)
        for qid, metric, stat in candidate
    ]
    return queries


def traffic_from_metrics(
    values: Mapping[str, Sequence[float]],
) -> tuple[TrafficStats, TrafficStats, float | None]:
    """Champion stats, candidate stats and the mean shadow deviation from the data points of
    :func:`metric_queries` (by query id; a query with no data point has no traffic).

    Pure: the aggregation is tested on its own. Counts add up over data points; a p99
    over several data points (CloudWatch returns one per period; one period is asked for)
    is their maximum, the cautious bound.
    """

    def total(qid: str) -> float:
        return float(sum(values.get(qid, ())))

    def p99(qid: str) -> float | None:
        found = [v for v in values.get(qid, ()) if math.isfinite(v)]
        return max(found) if found else None

    def stats(role: str) -> TrafficStats:
        return TrafficStats(
            requests=round(total(f"{role}_requests")),
            errors=round(total(f"{role}_errors")),
            p99_latency_ms=p99(f"{role}_p99"),
        )

    records = total("shadow_records")
    deviation = total("shadow_deviation") / records if records > 0 else None
    return stats("champion"), stats("candidate"), deviation


def metrics_window(started: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The bake in whole periods: from the first boundary at or after the rollout started
    (traffic before it, e.g. an earlier rollout of the same versions, stays out) to the
    boundary after ``now`` (the current minute counts). None before the first whole
    period: there is nothing to read yet.

    The boundaries are minutes, or 5 minutes / 1 hour once the start is more than 15 / 63
    days old: CloudWatch keeps only that resolution then, and ``GetMetricData`` wants start
    times and periods that are multiples of it.
    """
    begun = datetime.fromisoformat(started.replace("Z", "+00:00"))
    age = now - begun
    unit = 3600 if age > timedelta(days=63) else 300 if age > timedelta(days=15) else 60
    start = _ceil(begun, unit)
    end = _ceil(now + timedelta(microseconds=1), unit)
    return (start, end) if end > start else None


def _ceil(moment: datetime, seconds: int) -> datetime:
    """``moment`` rounded up to a multiple of ``seconds`` since the epoch."""
    epoch = moment.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / seconds) * seconds, moment.tzinfo)


class MetricsTraffic:
    """Evidence from the serving functions' CloudWatch metrics (``GetMetricData``).

    Needs ``cloudwatch:GetMetricData`` (granted in ``infra/rollout.py``). Each evaluation is
    one API call returning one data point per query, whatever the traffic; CloudWatch
    bills it as 6 (canary) or 8 (shadow) metrics requested.
    """

    name = "metrics"

    def __init__(
        self,
        client: CloudWatchClient,
        *,
        namespace: str = names.METRICS_NAMESPACE,
        service: str = names.INFERENCE_SERVICE,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.service = service

    def evidence(self, *, rollout: Rollout, champion_version: str, now: datetime) -> Evidence:
        queries = metric_queries(
            rollout.mode, champion_version=champion_version, candidate_version=rollout.candidate
        )
        window = metrics_window(rollout.started, now)
        values, calls = self._fetch(queries, window) if window else ({}, 0)
        champion, candidate, deviation = traffic_from_metrics(values)
        return Evidence(
            elapsed_seconds=seconds_between(rollout.started, iso(now)),
            champion=champion,
            candidate=candidate,
            shadow_deviation=deviation,
            source=self.name,
            api_calls=calls,
        )

    def _fetch(
        self, queries: list[MetricQuery], window: tuple[datetime, datetime]
    ) -> tuple[dict[str, list[float]], int]:
        start, end = window
        period = int((end - start).total_seconds())  # a multiple of the unit: one data point
        request: dict[str, Any] = {
            "MetricDataQueries": [self._query(q, period) for q in queries],
            "StartTime": start,
            "EndTime": end,
        }
        values: dict[str, list[float]] = {}
        calls = 0
        while True:
            response = self.client.get_metric_data(**request)
            calls += 1
            for result in response.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(result.get("Values", []))
            token = response.get("NextToken")
            if not token:
                return values, calls
            request["NextToken"] = token

    def _query(self, query: MetricQuery, period: int) -> dict[str, Any]:
        return {
            "Id": query.id,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": query.metric,
                    "Dimensions": [
                        {"Name": "service", "Value": self.service},
                        {"Name": names.DIMENSION_MODEL_VERSION, "Value": query.version},
                    ],
                },
                "Period": period,
                "Stat": query.stat,
            },
            "ReturnData": True,
        }


# --- the system log --------------------------------------------------------------------

EVIDENCE_TYPES: tuple[EventType, ...] = ("prediction", "shadow", "error")
MAX_EVIDENCE_EVENTS = 50_000
"""Events read per type per evaluation (newest first)."""
MAX_EVIDENCE_BYTES = 32 * 1024 * 1024
"""Stored JSON read per type per evaluation: 50,000 ``/batch`` events with full outputs
would be ~1 GB; this bound stops at 32 MB whatever the events carry."""
PAGE = 1000


def _compact(event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields :func:`~mlsys.rollout.policy.collect_evidence` reads, nothing else."""
    data: Mapping[str, Any] = event.get("data") or {}
    kept = {
        key: data[key]
        for key in ("latency_ms", "candidate_version", "candidate_latency_ms", "deviation")
        if key in data
    }
    if data.get("candidate_error"):
        kept["candidate_error"] = True
    if "records" in data:
        kept["records"] = data["records"]
    return {
        "type": event.get("type"),
        "time": event.get("time"),
        "model_version": event.get("model_version"),
        "data": kept,
    }


class EventLogTraffic:
    """Evidence from the system log's events (local runs; any :class:`EventLog`)."""

    name = "log"

    def __init__(
        self,
        log: EventLog,
        *,
        max_events: int = MAX_EVIDENCE_EVENTS,
        max_bytes: int = MAX_EVIDENCE_BYTES,
    ) -> None:
        self.log = log
        self.max_events = max_events
        self.max_bytes = max_bytes

    def evidence(self, *, rollout: Rollout, champion_version: str, now: datetime) -> Evidence:
        compact: list[dict[str, Any]] = []
        window_start = rollout.started
        truncated = False
        calls = 0
        for event_type in EVIDENCE_TYPES:
            oldest, complete, pages = self._read(event_type, rollout.started, compact)
            calls += pages
            if not complete:
                truncated = True
                window_start = max(window_start, oldest)
        # A type cut short covers only its newest events: count every type over that window.
        counted = replace(rollout, started=window_start)
        evidence = collect_evidence(
            compact,
            rollout=counted,
            champion_version=champion_version,
            now=iso(now),
            truncated=truncated,
        )
        return replace(
            evidence,
            elapsed_seconds=seconds_between(rollout.started, iso(now)),
            source=self.name,
            api_calls=calls,
        )

    def _read(
        self, event_type: EventType, since: str, into: list[dict[str, Any]]
    ) -> tuple[str, bool, int]:
        """Append ``event_type``'s events (newest first) within the bounds; return the
        oldest time read, whether every event was read, and the pages queried."""
        events = size = pages = 0
        oldest = since
        for page_events, more in self._pages(event_type, since):
            pages += 1
            for event in page_events:
                into.append(_compact(event.to_dict()))
                oldest = event.time
                events += 1
                size += len(event.to_json())
                if events >= self.max_events or size >= self.max_bytes:
                    return oldest, False, pages
            if not more:
                break
        return oldest, True, pages

    def _pages(self, event_type: EventType, since: str) -> Iterator[tuple[list[Any], bool]]:
        token: str | None = None
        while True:
            page = self.log.query(limit=PAGE, event_type=event_type, since=since, next_token=token)
            token = page.next_token
            yield list(page.events), token is not None
            if token is None:
                return


def traffic_source_for(
    settings: Settings, log: EventLog, *, cloudwatch_client: CloudWatchClient | None = None
) -> TrafficSource:
    """The source ``MLSYS_ROLLOUT_EVIDENCE`` names (``log`` unless told otherwise)."""
    if settings.rollout_evidence == "log":
        return EventLogTraffic(log)
    if settings.rollout_evidence == "metrics":
        if cloudwatch_client is None:
            import boto3  # noqa: PLC0415 - only the deployed evaluator reads metrics

            cloudwatch_client = boto3.client("cloudwatch")
        return MetricsTraffic(cloudwatch_client)
    raise ConfigError(
        f"{names.ROLLOUT_EVIDENCE} must be one of {', '.join(EVIDENCE_SOURCES)}, "
        f"not {settings.rollout_evidence!r}"
    )
