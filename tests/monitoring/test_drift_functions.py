"""PSI, buckets and the feedback join as pure functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from mlsys.contract import FeatureSpec, ModelCard
from mlsys.errors import ConfigError
from mlsys.monitoring.collect import FeedbackJoin, NumericCounts, VersionStats
from mlsys.monitoring.drift import (
    MIN_RECORDS,
    MISSING_BUCKET,
    OTHER_BUCKET,
    UNSEEN_BUCKET,
    bin_counts,
    categorical_buckets,
    is_drift,
    numeric_baseline,
    numeric_buckets,
    psi,
)
from mlsys.monitoring.window import parse_since


def test_psi_is_zero_for_equal_distributions_and_grows_with_the_shift() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    small = psi([0.25] * 4, [0.3, 0.2, 0.25, 0.25])
    large = psi([0.25] * 4, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.2 < large


def test_psi_hand_computed() -> None:
    expected = 0.6 * math.log(0.8 / 0.2) * 1 + (-0.6) * math.log(0.2 / 0.8)
    assert psi([0.2, 0.8], [0.8, 0.2]) == pytest.approx(expected)


def test_an_empty_bucket_counts_as_a_large_finite_difference() -> None:
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))
    assert psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]) > 1.0


def test_numeric_baseline_is_deciles_with_right_closed_bins() -> None:
    values = np.arange(1000, dtype=np.float64)
    baseline = numeric_baseline(values)
    assert len(baseline["edges"]) == 9
    assert baseline["proportions"] == pytest.approx([0.1] * 10, abs=0.002)
    assert bin_counts(np.array([baseline["edges"][0]]), baseline["edges"]).tolist()[0] == 1


def test_a_column_with_few_values_gets_fewer_bins() -> None:
    baseline = numeric_baseline(np.array([0.0, 1.0] * 50))
    assert baseline["edges"] == [0.0, 1.0]
    assert sum(baseline["proportions"]) == pytest.approx(1.0)


def test_numeric_buckets_include_the_missing_rate() -> None:
    card_entry = {"bins": {"edges": [0.0], "proportions": [0.5, 0.5]}, "missing_fraction": 0.2}
    labels, expected, actual = numeric_buckets(card_entry, [5, 5], 10)
    assert labels == ["<= 0", "> 0", MISSING_BUCKET]
    assert expected == pytest.approx([0.4, 0.4, 0.2])
    assert actual == pytest.approx([0.25, 0.25, 0.5])


def test_categorical_buckets_other_unseen_and_missing() -> None:
    baseline = {"frequencies": {"a": 0.6, "b": 0.3}, "other_fraction": 0.1}
    labels, expected, actual = categorical_buckets(
        baseline, {"a": 2, "c": 3, "zz": 4, "": 1}, known=["a", "b", "c"]
    )
    assert labels == ["a", "b", OTHER_BUCKET, UNSEEN_BUCKET, MISSING_BUCKET]
    assert expected == pytest.approx([0.6, 0.3, 0.1, 0.0, 0.0])
    assert actual == pytest.approx([0.2, 0.0, 0.3, 0.4, 0.1])


def test_drift_needs_enough_records() -> None:
    assert not is_drift(5.0, MIN_RECORDS - 1)
    assert is_drift(0.21, MIN_RECORDS)
    assert not is_drift(0.2, 1000)
    assert not is_drift(None, 1000)


def test_numeric_counts_stream_in_chunks_like_one_pass() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=200_000)
    edges = numeric_baseline(values[:1000])["edges"]
    counts = NumericCounts(edges)
    counts.add_many([*values.tolist(), None, "x", True])
    counts.flush()
    assert counts.counts.tolist() == bin_counts(values, edges).tolist()
    assert counts.missing == 3  # None, a string and a boolean are not numbers


def _prediction(request_id: str, outputs: object, *, endpoint: str = "batch") -> dict[str, object]:
    return {
        "request_id": request_id,
        "time": "2026-01-01T00:00:01.000000Z",
        "data": {"endpoint": endpoint, "outputs": outputs},
    }


def _feedback(
    items: list[dict[str, object]], *, time: str, version: str = "v1"
) -> dict[str, object]:
    return {"time": time, "model_version": version, "data": {"items": items}}


def test_feedback_join_by_request_and_index_newest_feedback_wins() -> None:
    join = FeedbackJoin()
    join.add_feedback(_feedback([{"request_id": "r", "index": 1, "actual": 9}], time="t2"))
    join.add_feedback(_feedback([{"request_id": "r", "index": 1, "actual": 5}], time="t1"))
    join.add_feedback(_feedback([{"request_id": "s", "actual": 7}], time="t1"))
    join.add_feedback(_feedback([{"request_id": "gone", "actual": 1}], time="t1", version="v0"))
    join.add_prediction(_prediction("r", [1.0, 2.0, 3.0]), "v1")
    join.add_prediction(_prediction("r", [1.5, 2.5, 3.5]), "shadow-v2")
    join.add_prediction(_prediction("s", 4.0, endpoint="stream"), "v1")
    join.add_prediction(_prediction("other", [0.0]), "v1")
    pairs = {(v, j.predicted, j.actual) for v, rows in join.joined.items() for j in rows}
    assert pairs == {("v1", 2.0, 9), ("shadow-v2", 2.5, 9), ("v1", 4.0, 7)}
    assert join.unmatched() == {"v0": 1}


def test_version_stats_reads_object_array_and_bare_records() -> None:
    card = ModelCard(
        model_name="m",
        version="v",
        task="regression",
        target="y",
        metric="r2",
        features=(
            FeatureSpec(name="x", kind="numeric", input_name="f0"),
            FeatureSpec(name="c", kind="categorical", input_name="f1", categories=("a",)),
        ),
        baseline_stats={
            "features": {
                "x": {"kind": "numeric", "bins": {"edges": [0.0], "proportions": [0.5, 0.5]}},
                "c": {"kind": "categorical", "frequencies": {"a": 1.0}},
            }
        },
    )
    stats = VersionStats.start("v", card)
    stats.add_event({"inputs": {"x": -1, "c": "a"}, "outputs": 1.0}, endpoint="stream")
    stats.add_event({"inputs": [[2, "b"], {"x": None, "c": None}], "records": 2}, endpoint="batch")
    stats.add_event({"inputs_sha256": "abc", "records": 5}, endpoint="batch")
    stats.finish()
    assert stats.records == 8
    x = stats.features["x"]
    assert isinstance(x, NumericCounts)
    assert (x.counts.tolist(), x.missing) == ([1, 1], 1)
    assert dict(stats.features["c"].counts) == {"a": 1, "b": 1, "": 1}  # type: ignore[union-attr]


def test_since_accepts_iso_times_and_durations() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now=now) == "2026-01-02T10:30:00.000000Z"
    assert parse_since("7d", now=now) == "2025-12-26T12:00:00.000000Z"
    assert parse_since("2026-01-01T00:00:00+01:00", now=now) == "2025-12-31T23:00:00.000000Z"
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday", now=now)
