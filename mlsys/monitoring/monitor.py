"""One monitor run: read a window of the system log, compare it with the cards.

:func:`run_monitor` is what ``mlsys monitor``, ``GET /monitor`` on the local
server and the scheduled function on AWS all call. It makes two streaming
passes over the window (feedback first, so the second pass keeps only the
predictions feedback names) and returns a :class:`MonitorReport`, whose
:meth:`~MonitorReport.to_json` is the documented ``--json`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsys.contract import ModelCard, categorical_value
from mlsys.errors import MlsysError
from mlsys.eventlog import EVENT_TYPES, EventLog, EventType
from mlsys.metrics import Scores, metric_value
from mlsys.monitoring.collect import (
    CategoryCounts,
    Counts,
    FeedbackJoin,
    Joined,
    NumericCounts,
    VersionStats,
)
from mlsys.monitoring.drift import (
    DRIFT_THRESHOLD,
    categorical_buckets,
    is_drift,
    numeric_buckets,
    psi,
)
from mlsys.monitoring.source import iter_events
from mlsys.registry import ModelRegistry

PREDICTION_TYPES: tuple[EventType, ...] = tuple(
    t for t in EVENT_TYPES if t in ("prediction", "shadow")
)
"""Served predictions and (where shadow deployments log them) shadow predictions."""
QUALITY_BUCKETS = 10
MIN_BUCKET_ROWS = 20


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """Baseline vs live shares over the same buckets, and their PSI."""

    kind: str
    labels: list[str]
    baseline: list[float]
    live: list[float]
    count: int
    psi: float | None
    drift: bool

    def to_json(self) -> dict[str, Any]:
        return {"psi": self.psi, "drift": self.drift}


@dataclass(frozen=True, kw_only=True)
class QualityPoint:
    since: str
    until: str
    value: float | None
    n: int


@dataclass(frozen=True, kw_only=True)
class Quality:
    metric: str
    value: float | None
    n: int
    offline: float | None
    over_time: list[QualityPoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "n": self.n, "offline": self.offline}


@dataclass(frozen=True, kw_only=True)
class VersionReport:
    version: str
    records: int
    features: dict[str, Distribution]
    prediction: Distribution | None
    quality: Quality | None
    unmatched_feedback: int

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "records": self.records,
            "features": {name: d.to_json() for name, d in self.features.items()},
            "prediction": (
                self.prediction.to_json() if self.prediction else {"psi": None, "drift": False}
            ),
            "quality": self.quality.to_json() if self.quality else None,
            "unmatched_feedback": self.unmatched_feedback,
        }

    @property
    def drifted(self) -> list[str]:
        return [name for name, d in self.features.items() if d.drift]


@dataclass(frozen=True, kw_only=True)
class MonitorReport:
    since: str
    until: str
    threshold: float
    versions: list[VersionReport]

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {"since": self.since, "until": self.until},
            "versions": [v.to_json() for v in self.versions],
        }


def run_monitor(
    *,
    log: EventLog,
    registry: ModelRegistry,
    since: str,
    until: str,
    threshold: float = DRIFT_THRESHOLD,
    predictions_since: str | None = None,
) -> MonitorReport:
    """Drift and live quality per model version over ``since <= time <= until``.

    Feedback of the window is joined with predictions made from ``predictions_since``
    (default ``since``): an earlier bound lets ground truth that arrives long after its
    prediction still be matched, at the cost of reading those older predictions too.
    """
    join = FeedbackJoin()
    for event in iter_events(log, types=("feedback",), since=since, until=until):
        join.add_feedback(event)
    cards: dict[str, ModelCard | None] = {}
    stats: dict[str, VersionStats] = {}

    def stats_for(version: str) -> VersionStats:
        if version not in stats:
            stats[version] = VersionStats.start(version, _card(registry, version, cards))
        return stats[version]

    start = min(since, predictions_since or since)
    for event in iter_events(log, types=PREDICTION_TYPES, since=start, until=until):
        version = str(event.get("model_version"))
        if str(event.get("time")) >= since:  # older ones only serve the join
            data = event.get("data") or {}
            stats_for(version).add_event(data, endpoint=str(data.get("endpoint")))
        join.add_prediction(event, version)
    unmatched = join.unmatched()
    for seen in [*join.joined, *unmatched]:
        if seen is not None:
            stats_for(seen)
    reports = []
    for version in sorted(stats):
        stats[version].finish()
        reports.append(
            _version_report(
                stats[version],
                joined=join.joined.get(version, []),
                unmatched=unmatched.get(version, 0),
                threshold=threshold,
            )
        )
    return MonitorReport(since=since, until=until, threshold=threshold, versions=reports)


def _card(
    registry: ModelRegistry, version: str, cache: dict[str, ModelCard | None]
) -> ModelCard | None:
    if version not in cache:
        try:
            cache[version] = registry.card(version)
        except (MlsysError, ValueError, KeyError):
            cache[version] = None  # deleted or unreadable: records are still counted
    return cache[version]


def _version_report(
    stats: VersionStats, *, joined: Sequence[Joined], unmatched: int, threshold: float
) -> VersionReport:
    card = stats.card
    features: dict[str, Distribution] = {}
    prediction = None
    if card is not None:
        baseline = card.baseline_stats.get("features") or {}
        for spec in card.features:
            counts = stats.features.get(spec.name)
            if counts is not None:
                known = list(spec.categories or ()) if spec.kind == "categorical" else None
                features[spec.name] = distribution(
                    baseline[spec.name], counts, known=known, threshold=threshold
                )
        if stats.prediction is not None:
            classes = [categorical_value(c) for c in card.classes or ()] if card.classes else None
            prediction = distribution(
                card.baseline_stats["prediction"],
                stats.prediction,
                known=classes,
                threshold=threshold,
            )
    return VersionReport(
        version=stats.version,
        records=stats.records,
        features=features,
        prediction=prediction,
        quality=live_quality(card, joined) if card is not None and joined else None,
        unmatched_feedback=unmatched,
    )


def distribution(
    baseline: Mapping[str, Any],
    counts: Counts,
    *,
    known: Sequence[str] | None,
    threshold: float = DRIFT_THRESHOLD,
) -> Distribution:
    if isinstance(counts, NumericCounts):
        labels, expected, actual = numeric_buckets(baseline, counts.counts.tolist(), counts.missing)
        total = int(counts.counts.sum()) + counts.missing
        kind = "numeric"
    else:
        assert isinstance(counts, CategoryCounts)
        labels, expected, actual = categorical_buckets(baseline, counts.counts, known=known)
        total = sum(counts.counts.values())
        kind = "categorical"
    score = psi(expected, actual) if total else None
    return Distribution(
        kind=kind,
        labels=labels,
        baseline=expected,
        live=actual,
        count=total,
        psi=score,
        drift=is_drift(score, total, threshold=threshold),
    )


# --- live quality -------------------------------------------------------------------


def live_quality(card: ModelCard, joined: Sequence[Joined]) -> Quality:
    """The card's primary metric on the joined predictions, overall and over time."""
    rows = sorted(joined, key=lambda j: j.time)
    metric = card.metric
    challenger = card.metrics.get("challenger") or {}
    offline = challenger.get(metric) if isinstance(challenger, Mapping) else None
    usable = [j for j in rows if _encode(card, j) is not None]
    points: list[QualityPoint] = []
    buckets = max(1, min(QUALITY_BUCKETS, len(usable) // MIN_BUCKET_ROWS))
    for chunk in np.array_split(np.arange(len(usable)), buckets):
        if chunk.size:
            part = [usable[i] for i in chunk]
            points.append(
                QualityPoint(
                    since=part[0].time,
                    until=part[-1].time,
                    value=_metric(card, part),
                    n=len(part),
                )
            )
    return Quality(
        metric=metric,
        value=_metric(card, usable),
        n=len(usable),
        offline=float(offline) if isinstance(offline, int | float) else None,
        over_time=points,
    )


def _encode(card: ModelCard, row: Joined) -> tuple[Any, Any] | None:
    """``(actual, predicted)`` in the metric's terms, or ``None`` if unusable."""
    if not card.is_classifier:
        if _is_number(row.actual) and _is_number(row.predicted):
            return float(row.actual), float(row.predicted)
        return None
    index = _class_index(card)
    actual = index.get(categorical_value(row.actual))
    predicted = index.get(categorical_value(row.predicted))
    if actual is None or predicted is None:
        return None
    return actual, predicted


def _class_index(card: ModelCard) -> dict[str, int]:
    return {categorical_value(c): i for i, c in enumerate(card.classes or ())}


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _metric(card: ModelCard, rows: Sequence[Joined]) -> float | None:
    pairs = [p for p in (_encode(card, r) for r in rows) if p is not None]
    if not pairs:
        return None
    y = [a for a, _ in pairs]
    predicted = [p for _, p in pairs]
    if not card.is_classifier:
        values = np.asarray(predicted, np.float64)
        return metric_value(card.metric, np.asarray(y, np.float64), Scores(values=values))
    probabilities = None
    if all(r.probabilities for r in rows):
        columns = [str(c) for c in card.classes or ()]
        probabilities = np.array(
            [[float((r.probabilities or {}).get(c, 0.0)) for c in columns] for r in rows]
        )
    scores = Scores(labels=np.asarray(predicted, np.int64), probabilities=probabilities)
    return metric_value(card.metric, np.asarray(y, np.int64), scores)
