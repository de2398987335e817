"""Aggregate logged predictions per model version in bounded memory.

A :class:`VersionStats` turns each prediction (or shadow) event's inputs and
outputs into running counts over the card's baseline buckets: numeric values
are buffered and binned with NumPy every :data:`CHUNK` values, categorical
values counted. Memory is therefore independent of the window's size except for
the predictions that feedback asks for (:class:`FeedbackJoin`).

An event's ``inputs`` are one record for ``/stream`` and a list of records for
``/batch``; a record is an object keyed by feature name, an array in schema
order, or a bare value (one-feature models). A request too large to log whole
carries ``inputs_sample`` instead: a uniform sample of its records, each of which
then stands for ``records / len(sample)`` records, so a 1,000-record request weighs
as much in the distribution as ten 100-record ones. Events logged without inputs
(``MLSYS_LOG_INPUTS=digest``, requests sampled out, or digests of records too large
to sample) still count as records and feed prediction drift; :class:`VersionStats`
counts how many records the feature figures rest on (their coverage).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsys.contract import NUMERIC_DTYPE, ModelCard, categorical_value
from mlsys.monitoring.drift import weighted_bin_counts

CHUNK = 65_536
NAN = math.nan


class NumericCounts:
    """Live counts over a baseline's bins (``edges``), plus missing values.

    Counts are weighted (a sampled record stands for several); ``observed`` is the
    number of values actually seen. ``precision`` is the dtype values are rounded to
    before binning: the model's input precision for features, where training took
    the edges from, so that a value on an edge falls in the same bin live as in
    training (``None``: float64, for model outputs).
    """

    def __init__(
        self, edges: Iterable[float], *, precision: type[np.floating[Any]] | None = None
    ) -> None:
        self.edges = np.asarray(list(edges), dtype=np.float64)
        self.precision = precision
        self.counts: npt.NDArray[np.float64] = np.zeros(len(self.edges) + 1, dtype=np.float64)
        self.missing = 0.0
        self.observed = 0
        self._buffer: list[float] = []
        self._weights: list[float] = []

    def add(self, value: Any, weight: float = 1.0) -> None:
        kind = type(value)
        self._buffer.append(value if kind is float or kind is int else NAN)
        self._weights.append(weight)
        if len(self._buffer) >= CHUNK:
            self.flush()

    def add_many(self, values: Iterable[Any], weight: float = 1.0) -> None:
        for value in values:
            self.add(value, weight)

    def flush(self) -> None:
        if not self._buffer:
            return
        values = np.asarray(self._buffer, dtype=np.float64)
        if self.precision is not None:
            with np.errstate(over="ignore"):  # beyond float32's range: inf, i.e. not a value
                values = values.astype(self.precision).astype(np.float64)
        weights = np.asarray(self._weights, dtype=np.float64)
        self._buffer.clear()
        self._weights.clear()
        self.counts += weighted_bin_counts(values, weights, self.edges)
        self.missing += float(weights[~np.isfinite(values)].sum())
        self.observed += int(values.size)


class CategoryCounts:
    """Live (weighted) counts per category string, and the number of values seen."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.observed = 0

    def add(self, value: Any, weight: float = 1.0) -> None:
        key = value if type(value) is str else categorical_value(value)
        self.counts[key] = self.counts.get(key, 0.0) + weight
        self.observed += 1

    def add_many(self, values: Iterable[Any], weight: float = 1.0) -> None:
        for value in values:
            self.add(value, weight)

    def flush(self) -> None:
        return None


Counts = NumericCounts | CategoryCounts


def counts_for(
    baseline: Mapping[str, Any] | None, *, precision: type[np.floating[Any]] | None = None
) -> Counts | None:
    """The accumulator a baseline entry calls for (``None``: no usable baseline)."""
    if not baseline:
        return None
    if baseline.get("kind") == "categorical":
        return CategoryCounts()
    bins = baseline.get("bins")
    return NumericCounts(bins["edges"], precision=precision) if isinstance(bins, Mapping) else None


@dataclass
class VersionStats:
    """What the window holds for one model version."""

    version: str
    card: ModelCard | None
    records: int = 0
    observed: int = 0
    """Records whose inputs reached the feature counts (every record, or a request's sample)."""
    unlogged: int = 0
    """Records of requests logged as a digest only because they were too large."""
    shadowed: int = 0
    """Records of ``shadow`` events: they carry no inputs (the request's inputs are in the
    champion's ``prediction`` event), so they are not part of the version's coverage."""
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
            counts = counts_for(baseline.get(spec.name), precision=NUMERIC_DTYPE)
            if counts is not None:
                stats.features[spec.name] = counts
        stats.prediction = counts_for(card.baseline_stats.get("prediction"))
        return stats

    def add_event(self, data: Mapping[str, Any], *, endpoint: str, shadow: bool = False) -> None:
        single = endpoint == "stream"
        records = int(data.get("records") or 1)
        self.records += records
        if shadow:
            self.shadowed += records
        else:
            self._add_inputs(data, single=single, records=records)
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
                key = str(label)
                self.prediction.counts[key] = self.prediction.counts.get(key, 0.0) + int(count)
                self.prediction.observed += int(count)
                self.predictions_seen += int(count)

    def _add_inputs(self, data: Mapping[str, Any], *, single: bool, records: int) -> None:
        if "inputs" in data:
            inputs = data["inputs"]
            self.observed += self._add_records([inputs] if single else inputs, 1.0)
            return
        sample = data.get("inputs_sample")
        if isinstance(sample, list) and sample:
            self.observed += self._add_records(sample, max(records / len(sample), 1.0))
        elif data.get("inputs_truncated"):
            self.unlogged += records

    def _add_records(self, records: Any, weight: float) -> int:
        """Count ``records`` (each standing for ``weight`` records); how many were usable."""
        if not isinstance(records, list) or self.card is None:
            return 0
        specs = self.card.features
        names = [s.name for s in specs]
        sinks = [self.features.get(name) for name in names]
        width = len(names)
        used = 0
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
            used += 1
            for sink, value in zip(sinks, values, strict=True):
                if sink is not None:
                    sink.add(value, weight)
        return used

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
