"""Drift that sees large requests, says what it rests on, and bins as the model does:
the record sample of a large request, weighted counts, coverage warnings, float32 bins."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import pytest

from lambda_inference.events import (
    MAX_LOGGED_INPUT_BYTES,
    MAX_SAMPLE_BYTES,
    MAX_SAMPLED_RECORDS,
    input_sample,
    inputs_field,
)
from mlsys.contract import FeatureSpec, ModelCard
from mlsys.monitoring.collect import NumericCounts, VersionStats
from mlsys.monitoring.drift import LOW_COVERAGE_RECORDS, numeric_baseline
from mlsys.monitoring.monitor import Coverage

RECORDS = [{"x": float(i), "c": "abc"} for i in range(1000)]


def test_a_large_request_keeps_a_bounded_sample_of_its_records_in_request_order() -> None:
    body = orjson.dumps({"data": RECORDS * 3})
    assert len(body) > MAX_LOGGED_INPUT_BYTES
    field = inputs_field(RECORDS * 3, body, mode="full", request_id="r-1")
    assert "inputs" not in field
    assert field["inputs_truncated"] is True
    assert len(field["inputs_sha256"]) == 64
    sample, index = field["inputs_sample"], field["inputs_sample_index"]
    assert len(sample) == len(index) == MAX_SAMPLED_RECORDS
    assert index == sorted(set(index))
    assert sample == [(RECORDS * 3)[i] for i in index]
    assert len(orjson.dumps(sample)) <= MAX_SAMPLE_BYTES


def test_the_sample_is_the_same_for_a_request_and_differs_between_requests() -> None:
    first = input_sample(RECORDS, request_id="r-1")
    assert first == input_sample(RECORDS, request_id="r-1")
    assert first != input_sample(RECORDS, request_id="r-2")


def test_the_sample_is_uniform_over_the_request() -> None:
    picked: Counter[int] = Counter()
    for i in range(400):
        drawn = input_sample(RECORDS, request_id=f"req-{i}")
        assert drawn is not None
        picked.update(position // 100 for position in drawn[1])
    # 400 draws of 100 of 1,000 records: each tenth of the request holds ~4,000 of them.
    assert len(picked) == 10
    assert all(3600 < count < 4400 for count in picked.values())


def test_wide_records_keep_fewer_of_them_within_the_byte_bound() -> None:
    wide = [{"text": "w" * 1000, "i": i} for i in range(500)]
    sample = input_sample(wide, request_id="r")
    assert sample is not None
    assert 20 <= len(sample[0]) < 33
    assert len(orjson.dumps(sample[0])) <= MAX_SAMPLE_BYTES
    # A record that alone exceeds the bound cannot be sampled: the request keeps its digest.
    huge = [{"text": "w" * (MAX_SAMPLE_BYTES + 1)}] * 3
    assert input_sample(huge, request_id="r") is None
    field = inputs_field(huge, orjson.dumps({"data": huge}), mode="full", request_id="r")
    assert "inputs_sample" not in field
    assert field["inputs_truncated"] is True


def test_small_requests_are_logged_whole_and_digest_mode_keeps_no_sample() -> None:
    body = orjson.dumps({"data": RECORDS[:10]})
    assert inputs_field(RECORDS[:10], body, mode="full", request_id="r") == {"inputs": RECORDS[:10]}
    large = orjson.dumps({"data": RECORDS * 3})
    assert set(inputs_field(RECORDS * 3, large, mode="digest", request_id="r")) == {"inputs_sha256"}


def _card() -> ModelCard:
    return ModelCard(
        model_name="m",
        version="v",
        task="regression",
        target="y",
        metric="r2",
        features=(FeatureSpec(name="x", kind="numeric", input_name="f0"),),
        baseline_stats={
            "features": {
                "x": {"kind": "numeric", "bins": {"edges": [0.0], "proportions": [0.5, 0.5]}}
            }
        },
    )


def test_a_sampled_record_stands_for_its_share_of_the_request() -> None:
    stats = VersionStats.start("v", _card())
    # 1,000 records above the edge, sampled as 4; then 10 records below it, logged whole.
    stats.add_event(
        {"records": 1000, "inputs_sample": [[1.0]] * 4, "inputs_truncated": True},
        endpoint="batch",
    )
    stats.add_event({"records": 10, "inputs": [[-1.0]] * 10}, endpoint="batch")
    stats.finish()
    x = stats.features["x"]
    assert isinstance(x, NumericCounts)
    assert x.counts.tolist() == [10.0, 1000.0]
    assert x.observed == 14
    assert (stats.records, stats.observed, stats.unlogged) == (1010, 14, 0)


def test_digest_only_requests_count_as_unlogged_records() -> None:
    stats = VersionStats.start("v", _card())
    stats.add_event({"records": 900, "inputs_truncated": True}, endpoint="batch")
    stats.add_event({"records": 100, "inputs_sha256": "abc"}, endpoint="batch")  # sampled out
    assert (stats.records, stats.observed, stats.unlogged) == (1000, 0, 900)


def test_coverage_warns_when_the_figures_rest_on_few_records_or_miss_large_requests() -> None:
    assert Coverage(records=3000, of=3000, unlogged=0).warnings == []
    # A sampled AWS window: few records per request but plenty overall, none unlogged.
    assert Coverage(records=500, of=50_000, unlogged=0).low is False
    few = Coverage(records=40, of=40, unlogged=0)
    assert few.low
    assert f"fewer than {LOW_COVERAGE_RECORDS}" in few.warnings[0]
    assert "none is flagged" in few.warnings[0]
    # The case: 3,000 of 3,202 records logged as a digest only.
    blind = Coverage(records=202, of=3202, unlogged=3000)
    assert blind.low
    assert "3000 of 3202 records were logged as a digest only" in blind.warnings[0]
    assert Coverage(records=0, of=10, unlogged=0).warnings[0].startswith("no inputs were logged")
    assert Coverage(records=0, of=0, unlogged=0).to_json() == {
        "records": 0,
        "share": None,
        "unlogged": 0,
        "low": False,
        "warnings": [],
    }


@pytest.mark.parametrize("value", [0.1, 0.3, 0.7, 1.1, 2.3, 40.7, 1e-3, 123456.789])
def test_a_live_value_on_a_float32_training_edge_falls_in_the_training_bin(value: float) -> None:
    training = np.array([value] * 10 + [value * 2] * 10, dtype=np.float32)
    baseline = numeric_baseline(training.astype(np.float64))
    live = NumericCounts(baseline["edges"], precision=np.float32)
    live.add_many([value] * 10 + [value * 2] * 10)  # as JSON numbers: float64
    live.flush()
    expected = np.array(baseline["proportions"]) * 20
    assert live.counts.tolist() == pytest.approx(expected.tolist())


def test_shadow_predictions_are_not_counted_as_records_without_inputs() -> None:
    stats = VersionStats.start("v", _card())
    stats.add_event(
        {"records": 500, "candidate": {"outputs": [1.0] * 500}}, endpoint="batch", shadow=True
    )
    assert (stats.records, stats.observed, stats.unlogged, stats.shadowed) == (500, 0, 0, 500)
