"""Aggregate logged predictions per model version in bounded memory.

A :class:`VersionStats` turns each prediction (or shadow) event's inputs and
outputs into running counts over the card's baseline buckets: numeric values
are buffered and binned with NumPy every :data:`CHUNK` values, categorical
values counted. Memory is therefore independent of the window's size except for
the predictions that feedback asks for (:class:`FeedbackJoin`).

An event's ``inputs`` are one record for ``/stream`` and a list of records for
``/batch``; a record is an object keyed by feature name, an array in schema
order, or a bare value (one-feature models). Events logged without inputs
(``MLSYS_LOG_INPUTS=digest``, or bodies over the logged size) still count as
records and feed prediction drift.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsys.contract import ModelCard, categorical_value
from mlsys.monitoring.drift import bin_counts

CHUNK = 65_536
NAN = math.nan


class NumericCounts:
    """Live counts over a baseline's bins (``edges``), plus missing values."""

    def __init__(self, edges: Iterable[float]) -> None:
        self.edges = np.asarray(list(edges), dtype=np.float64)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.missing = 0
        self._buffer: list[float] = []

    def add(self, value: Any) -> None:
        kind = type(value)
        self._buffer.append(value if kind is float or kind is int else NAN)
        if len(self._buffer) >= CHUNK:
            self.flush()

    def add_many(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def flush(self) -> None:
        if not self._buffer:
            return
        values = np.asarray(self._buffer, dtype=np.float64)
        self._buffer.clear()
        self.counts += bin_counts(values, self.edges)
        self.missing += int(values.size - np.isfinite(values).sum())


class CategoryCounts:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, value: Any) -> None:
        self.counts[value if type(value) is str else categorical_value(value)] += 1

    def add_many(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def flush(self) -> None:
        return None


Counts = NumericCounts | CategoryCounts


def counts_for(baseline: Mapping[str, Any] | None) -> Counts | None:
    """The accumulator a baseline entry calls for (``None``: no usable baseline)."""
    if not baseline:
        return None
    if baseline.get("kind") == "categorical":
        return CategoryCounts()
    bins = baseline.get("bins")
    return NumericCounts(bins["edges"]) if isinstance(bins, Mapping) else None


@dataclass
class VersionStats:
    """What the window holds for one model version."""

    version: str
    card: ModelCard | None
    records: int = 0
    features: dict[str, Counts] = field(default_factory=dict)
    prediction: Counts | None = None
    predictions_seen: int = 0

    @classmethod
    def start(cls, version: str, card: ModelCard | None) -> VersionStats:
        stats = cls(version=version, card=card)
        if card is None:
            return stats
        baseline = card.baseline_stats.get("features") or {}
        for spec in card.features:
            counts = counts_for(baseline.get(spec.name))
            if counts is not None:
                stats.features[spec.name] = counts
        stats.prediction = counts_for(card.baseline_stats.get("prediction"))
        return stats

    def add_event(self, data: Mapping[str, Any], *, endpoint: str) -> None:
        single = endpoint == "stream"
        self.records += int(data.get("records") or 1)
        if "inputs" in data and self.card is not None and self.features:
            inputs = data["inputs"]
            self._add_records([inputs] if single else inputs)
        if self.prediction is None:
            return
        if "outputs" in data:
            outputs = data["outputs"]
            values = [outputs] if single else outputs
            if isinstance(values, list):
                self.prediction.add_many(values)
                self.predictions_seen += len(values)
        elif isinstance(self.prediction, CategoryCounts):
            summary = data.get("outputs_summary") or {}
            for label, count in (summary.get("classes") or {}).items():
                self.prediction.counts[str(label)] += int(count)
                self.predictions_seen += int(count)

    def _add_records(self, records: Any) -> None:
        if not isinstance(records, list):
            return
        assert self.card is not None
        specs = self.card.features
        names = [s.name for s in specs]
        sinks = [self.features.get(name) for name in names]
        width = len(names)
        for record in records:
            kind = type(record)
            if kind is dict:
                values: Any = [record.get(name) for name in names]
            elif kind is list and len(record) == width:
                values = record
            elif width == 1 and kind is not list:
                values = (record,)
            else:
                continue
            for sink, value in zip(sinks, values, strict=True):
                if sink is not None:
                    sink.add(value)

    def finish(self) -> None:
        for counts in self.features.values():
            counts.flush()
        if self.prediction is not None:
            self.prediction.flush()


@dataclass(frozen=True)
class Joined:
    """One prediction with its ground truth."""

    time: str
    predicted: Any
    actual: Any
    probabilities: Mapping[str, float] | None


@dataclass
class FeedbackJoin:
    """Feedback items of the window, matched to the predictions they name.

    Keys are ``(request_id, index)``; a feedback item may arrive before its
    prediction is in the log (AWS ingests the log asynchronously), so matching
    happens at monitor time over the whole window, and what still has no
    prediction is counted as unmatched (per the version that was champion when
    the feedback arrived).
    """

    wanted: dict[tuple[str, int], tuple[Any, str | None, str]] = field(default_factory=dict)
    """key -> (actual, champion version when the feedback arrived, its time); the newest
    feedback for a key wins."""
    request_ids: set[str] = field(default_factory=set)
    matched: set[tuple[str, int]] = field(default_factory=set)
    joined: dict[str, list[Joined]] = field(default_factory=dict)

    def add_feedback(self, event: Mapping[str, Any]) -> None:
        data = event.get("data") or {}
        for item in data.get("items") or ():
            key = (str(item.get("request_id")), int(item.get("index") or 0))
            when = str(event.get("time"))
            previous = self.wanted.get(key)
            if previous is None or when >= previous[2]:
                self.wanted[key] = (item.get("actual"), event.get("model_version"), when)
            self.request_ids.add(key[0])

    def add_prediction(self, event: Mapping[str, Any], version: str) -> None:
        request_id = event.get("request_id")
        if request_id not in self.request_ids:
            return
        data = event.get("data") or {}
        single = data.get("endpoint") == "stream"
        outputs = data.get("outputs")
        values = [outputs] if single else outputs
        if not isinstance(values, list):
            return
        probabilities = data.get("probabilities") if single else None
        for index, predicted in enumerate(values):
            key = (str(request_id), index)
            found = self.wanted.get(key)
            if found is None:
                continue
            self.matched.add(key)
            self.joined.setdefault(version, []).append(
                Joined(str(event.get("time")), predicted, found[0], probabilities)
            )

    def unmatched(self) -> Counter[str | None]:
        """Unmatched feedback items per version that was champion when they arrived."""
        return Counter(v for key, (_, v, _t) in self.wanted.items() if key not in self.matched)
