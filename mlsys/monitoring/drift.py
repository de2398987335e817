"""Population Stability Index (PSI) on a training baseline: pure functions.

PSI compares two distributions over the same buckets::

    PSI = sum_b (live_b - base_b) * ln(live_b / base_b)

with both proportions clipped to :data:`EPSILON` so an empty bucket counts as a
large (not infinite) difference. The industry convention, used here as the
default :data:`DRIFT_THRESHOLD`: below 0.1 stable, 0.1-0.2 a moderate shift,
above 0.2 a significant one.

Buckets:

numeric features (and regression outputs)
    the baseline's quantile bins (:data:`BINS` bins on the training values, edges
    stored in the model card by :func:`numeric_baseline`), plus one bucket for
    missing values (the training data's missing rate);
categorical features (and predicted classes)
    the baseline's category frequencies (the most frequent categories), one
    bucket for the other categories seen in training, one for categories never
    seen in training (baseline share 0: a new category is drift by construction)
    and one for missing values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsys.contract import MISSING_CATEGORY

DRIFT_THRESHOLD = 0.2
"""PSI above which a distribution counts as drifted (the usual 0.2 convention)."""
EPSILON = 1e-4
"""Floor of a bucket's proportion in the PSI formula (an empty bucket is not -inf)."""
BINS = 10
"""Quantile bins of a numeric baseline: deciles of the training values."""
MIN_RECORDS = 50
"""Fewer live values than this never flag drift: PSI on a handful of values is mostly
sampling noise (with 10 bins its expected value on in-distribution data is ~10/n)."""
LOW_COVERAGE_RECORDS = 200
"""Drift figures resting on fewer records than this carry a low-coverage warning: their
in-distribution noise (~10/n) is a quarter of :data:`DRIFT_THRESHOLD` or more."""
LOW_COVERAGE_UNLOGGED_SHARE = 0.1
"""A window where at least this share of the records reached the log as a digest only
(requests too large to log or sample) carries a low-coverage warning: the figures do not
see those records, and large requests are rarely a random share of the traffic."""

MISSING_BUCKET = "(missing)"
OTHER_BUCKET = "(other)"
UNSEEN_BUCKET = "(unseen)"

FloatArray = npt.NDArray[np.float64]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI between two proportion vectors over the same buckets."""
    base = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    live = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    return float(np.sum((live - base) * np.log(live / base)))


def is_drift(score: float | None, records: int, *, threshold: float = DRIFT_THRESHOLD) -> bool:
    return score is not None and records >= MIN_RECORDS and score > threshold


def quantile_edges(values: FloatArray, *, bins: int = BINS) -> list[float]:
    """Inner edges of ``bins`` quantile bins (duplicates dropped: a column with few
    distinct values gets fewer bins)."""
    if values.size == 0:
        return []
    # Edges are observed values (no interpolation), so a discrete column keeps its levels.
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    return [float(e) for e in np.unique(inner)]


def bin_counts(values: FloatArray, edges: Sequence[float] | FloatArray) -> npt.NDArray[np.int64]:
    """Counts of finite ``values`` in the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    finite = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def weighted_bin_counts(
    values: FloatArray, weights: FloatArray, edges: Sequence[float] | FloatArray
) -> FloatArray:
    """:func:`bin_counts` where each finite value counts ``weights[i]`` times."""
    finite = np.isfinite(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[finite], side="left")
    counts = np.bincount(index, weights=weights[finite], minlength=len(edges) + 1)
    return counts.astype(np.float64, copy=False)


def numeric_baseline(values: FloatArray, *, bins: int = BINS) -> dict[str, Any]:
    """``{"edges", "proportions"}`` of the finite training values, stored in the card."""
    finite = values[np.isfinite(values)]
    edges = quantile_edges(finite, bins=bins)
    counts = bin_counts(finite, edges)
    total = max(int(counts.sum()), 1)
    return {"edges": edges, "proportions": [float(c) / total for c in counts]}


def numeric_buckets(
    baseline: Mapping[str, Any], counts: Sequence[float], missing: float
) -> tuple[list[str], list[float], list[float]]:
    """Bucket labels, baseline and live proportions of a numeric feature.

    ``baseline`` is the card's feature entry (``bins`` and ``missing_fraction``);
    ``counts`` the live counts per bin and ``missing`` the live missing values.
    """
    bins = baseline["bins"]
    edges: list[float] = list(bins["edges"])
    missing_share = float(baseline.get("missing_fraction") or 0.0)
    expected = [p * (1.0 - missing_share) for p in bins["proportions"]] + [missing_share]
    live_counts = [*counts, missing]
    total = sum(live_counts)
    actual = [c / total if total else 0.0 for c in live_counts]
    return [*bin_labels(edges), MISSING_BUCKET], expected, actual


def bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    shown = [f"{e:.4g}" for e in edges]
    middle = [f"({a}, {b}]" for a, b in itertools.pairwise(shown)]
    return [f"<= {shown[0]}", *middle, f"> {shown[-1]}"]


def category_bucket(
    value: str, frequencies: Mapping[str, float], known: frozenset[str] | None
) -> str:
    """The bucket a live category string falls in."""
    if value in frequencies:
        return value
    if value == MISSING_CATEGORY:
        return MISSING_BUCKET
    if known is not None and value in known:
        return OTHER_BUCKET
    return UNSEEN_BUCKET if known is not None else OTHER_BUCKET


def categorical_buckets(
    baseline: Mapping[str, Any], counts: Mapping[str, float], *, known: Iterable[str] | None
) -> tuple[list[str], list[float], list[float]]:
    """Bucket labels, baseline and live proportions of a categorical distribution.

    ``counts`` maps live category strings (``""`` = missing) to counts; ``known``
    are all categories seen in training (``None``: unknown, so nothing is "unseen").
    """
    frequencies: Mapping[str, float] = baseline.get("frequencies") or {}
    known_set = frozenset(known) if known is not None else None
    bucketed: dict[str, float] = {}
    for value, count in counts.items():
        bucket = category_bucket(value, frequencies, known_set)
        bucketed[bucket] = bucketed.get(bucket, 0) + count
    labels = [MISSING_BUCKET if k == MISSING_CATEGORY else k for k in frequencies]
    expected = [float(v) for v in frequencies.values()]
    for extra, share in (
        (OTHER_BUCKET, float(baseline.get("other_fraction") or 0.0)),
        (UNSEEN_BUCKET, 0.0),
        (MISSING_BUCKET, 0.0),
    ):
        if extra not in labels:
            labels.append(extra)
            expected.append(share)
    live = [bucketed.get(MISSING_CATEGORY if k == MISSING_BUCKET else k, 0) for k in labels]
    live[labels.index(MISSING_BUCKET)] += bucketed.get(MISSING_BUCKET, 0)
    total = sum(live)
    return labels, expected, [c / total if total else 0.0 for c in live]


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
