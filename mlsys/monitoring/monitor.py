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
from mlsys.errors import MlsysError, UnknownModelError
from mlsys.eventlog import DEFAULT_MODEL_NAME, EVENT_TYPES, EventLog, EventType
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
    LOW_COVERAGE_RECORDS,
    LOW_COVERAGE_UNLOGGED_SHARE,
    MIN_RECORDS,
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
    """The live values the shares rest on (their coverage; sampled records count once)."""
    psi: float | None
    drift: bool

    def to_json(self, records: int) -> dict[str, Any]:
        return {
            "psi": self.psi,
            "drift": self.drift,
            "coverage": {"records": self.count, "share": share(self.count, records)},
        }


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """How many of a version's records its feature drift figures rest on, and whether
    that is too few to trust them (:attr:`warnings`)."""

    records: int
    """Records whose inputs were read: every record of a request logged whole, the
    sampled records of a larger one."""
    of: int
    """Records answered in the window (shadow predictions aside: they log no inputs)."""
    unlogged: int
    """Records of requests logged as a digest only because they were too large."""

    @property
    def share(self) -> float | None:
        return share(self.records, self.of)

    @property
    def warnings(self) -> list[str]:
        if self.of == 0:
            return []
        found = []
        if self.records == 0:
            found.append(
                f"no inputs were logged for these {self.of} records "
                "(MLSYS_LOG_INPUTS=digest?): feature drift is not measured"
            )
        elif self.records < LOW_COVERAGE_RECORDS:
            judged = "" if self.records >= MIN_RECORDS else f"; under {MIN_RECORDS} none is flagged"
            found.append(
                f"low coverage: feature drift rests on {self.records} of {self.of} records "
                f"(fewer than {LOW_COVERAGE_RECORDS}, so PSI is noisy{judged})"
            )
        if self.unlogged and self.unlogged >= LOW_COVERAGE_UNLOGGED_SHARE * self.of:
            found.append(
                f"low coverage: {self.unlogged} of {self.of} records were logged as a digest "
                "only (requests too large to log or sample); feature drift does not see them"
            )
        return found

    @property
    def low(self) -> bool:
        return bool(self.warnings)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "share": self.share,
            "unlogged": self.unlogged,
            "low": self.low,
            "warnings": self.warnings,
        }


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
    coverage: Coverage
    features: dict[str, Distribution]
    prediction: Distribution | None
    quality: Quality | None
    unmatched_feedback: int
    importance: dict[str, float] = field(default_factory=dict)
    """Feature -> its permutation importance on the holdout (from the card; empty for
    cards without it): how much a drifted feature can matter."""

    def to_json(self) -> dict[str, Any]:
        no_prediction = {"psi": None, "drift": False, "coverage": {"records": 0, "share": None}}
        return {
            "version": self.version,
            "records": self.records,
            "coverage": self.coverage.to_json(),
            "features": {
                name: {**d.to_json(self.records), "importance": self.importance.get(name)}
                for name, d in self.features.items()
            },
            "prediction": (
                self.prediction.to_json(self.records) if self.prediction else no_prediction
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

    Only the events of ``registry``'s model are read. Feedback of the window is joined
    with predictions made from ``predictions_since`` (default ``since``): an earlier bound
    lets ground truth that arrives long after its prediction still be matched, at the cost
    of reading those older predictions too.
    """
    model = registry.model_name
    join = FeedbackJoin()
    for event in iter_events(log, types=("feedback",), since=since, until=until, model=model):
        join.add_feedback(event)
    cards: dict[str, ModelCard | None] = {}
    stats: dict[str, VersionStats] = {}

    def stats_for(version: str) -> VersionStats:
        if version not in stats:
            stats[version] = VersionStats.start(version, _card(registry, version, cards))
        return stats[version]

    start = min(since, predictions_since or since)
    for event in iter_events(log, types=PREDICTION_TYPES, since=start, until=until, model=model):
        version = str(event.get("model_version"))
        if str(event.get("time")) >= since:  # older ones only serve the join
            data = event.get("data") or {}
            stats_for(version).add_event(
                data, endpoint=str(data.get("endpoint")), shadow=event.get("type") == "shadow"
            )
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


def require_known_model(registry: ModelRegistry, log: EventLog) -> None:
    """Refuse a model with no version in the registry and no event in the log (a typo
    would otherwise read as "no predictions"), naming the models that exist. The default
    model is always known: events from before events named their model read as it."""
    name = registry.model_name
    logged = log.models()
    if name == DEFAULT_MODEL_NAME or name in logged or registry.versions():
        return
    known = sorted({*registry.model_names(), *logged})
    raise UnknownModelError(
        f"no model {name!r} in {registry.uri} or the log; models: {', '.join(known) or '(none)'}",
        details={"model": name, "models": known},
    )


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
        coverage=Coverage(
            records=stats.observed, of=stats.records - stats.shadowed, unlogged=stats.unlogged
        ),
        features=features,
        prediction=prediction,
        quality=live_quality(card, joined) if card is not None and joined else None,
        unmatched_feedback=unmatched,
        importance=card_importance(card) if card is not None else {},
    )


def card_importance(card: ModelCard) -> dict[str, float]:
    """Feature -> mean permutation importance recorded in the card."""
    features = card.importance.get("features")
    if not isinstance(features, Mapping):
        return {}
    return {
        str(name): float(value["mean"])
        for name, value in features.items()
        if isinstance(value, Mapping) and isinstance(value.get("mean"), int | float)
    }


def distribution(
    baseline: Mapping[str, Any],
    counts: Counts,
    *,
    known: Sequence[str] | None,
    threshold: float = DRIFT_THRESHOLD,
) -> Distribution:
    if isinstance(counts, NumericCounts):
        labels, expected, actual = numeric_buckets(baseline, counts.counts.tolist(), counts.missing)
        kind = "numeric"
    else:
        assert isinstance(counts, CategoryCounts)
        labels, expected, actual = categorical_buckets(baseline, counts.counts, known=known)
        kind = "categorical"
    total = counts.observed
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
