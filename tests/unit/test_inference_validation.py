"""Record parsing and encoding at the API edge (pure functions, no model)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from lambda_inference.errors import (
    EmptyBatchError,
    InvalidRecordError,
    InvalidRequestError,
    InvalidTypeError,
    MalformedJsonError,
    MissingFeatureError,
    NonFiniteNumberError,
    TooManyRecordsError,
    UnknownFeatureError,
)
from lambda_inference.validation import RecordEncoder, batch_records, decode_json, request_data
from mlsys.contract import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    FeatureSpec,
    FeedEncoder,
    InputLayout,
)

NUMERIC_SPECS = [
    FeatureSpec(name=n, kind="numeric", input_name=f"f{i}") for i, n in enumerate("abc")
]
MIXED_SPECS = [
    FeatureSpec(name="age", kind="numeric", input_name="f0"),
    FeatureSpec(name="colour", kind="categorical", input_name="f1", categories=("red",)),
    FeatureSpec(name="size", kind="numeric", input_name="f2"),
]


def encoder(specs: list[FeatureSpec], layout: InputLayout = "per_feature") -> RecordEncoder:
    return RecordEncoder(FeedEncoder(specs, layout=layout))


# Per-feature (old-layout) feeds make each feature's encoding visible by name.
NUMERIC = encoder(NUMERIC_SPECS)
MIXED = encoder(MIXED_SPECS)


@pytest.mark.parametrize("has_booleans", [False, True], ids=["fast", "exact"])
def test_tensor_layout_feeds_are_the_per_feature_columns_side_by_side(has_booleans: bool) -> None:
    records: list[Any] = [{"a": 1, "b": 2.5, "c": -3}, [2, None, 0]]
    old = NUMERIC.encode(records, body_has_booleans=has_booleans)
    new = encoder(NUMERIC_SPECS, "tensor").encode(records, body_has_booleans=has_booleans)
    assert set(new) == {NUMERIC_INPUT}
    assert new[NUMERIC_INPUT].dtype == np.float32
    np.testing.assert_array_equal(new[NUMERIC_INPUT], np.hstack([old["f0"], old["f1"], old["f2"]]))
    mixed = [{"age": 3, "colour": "red", "size": 1}, [None, 7, 2.5]]
    old = MIXED.encode(mixed)
    new = encoder(MIXED_SPECS, "tensor").encode(mixed)
    assert set(new) == {NUMERIC_INPUT, CATEGORICAL_INPUT}
    np.testing.assert_array_equal(new[NUMERIC_INPUT], np.hstack([old["f0"], old["f2"]]))
    assert new[CATEGORICAL_INPUT].tolist() == [["red"], ["7"]]


def test_object_and_array_records_encode_identically() -> None:
    as_objects = NUMERIC.encode(
        [{"a": 1, "b": 2.5, "c": -3}, {"c": 0, "b": 1, "a": 2}], body_has_booleans=False
    )
    as_arrays = NUMERIC.encode([[1, 2.5, -3], [2, 1, 0]], body_has_booleans=False)
    for name in ("f0", "f1", "f2"):
        assert as_objects[name].dtype == np.float32
        assert as_objects[name].shape == (2, 1)
        np.testing.assert_array_equal(as_objects[name], as_arrays[name])
    np.testing.assert_array_equal(as_objects["f2"][:, 0], [-3, 0])


def test_fast_and_exact_paths_agree_on_nulls_and_large_batches() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, 3)).tolist()
    fast = NUMERIC.encode(rows, body_has_booleans=False)
    exact = NUMERIC.encode(rows, body_has_booleans=True)  # forces the per-value path
    for name in fast:
        np.testing.assert_array_equal(fast[name], exact[name])
    with_null = NUMERIC.encode([{"a": None, "b": 1, "c": 2}], body_has_booleans=False)
    assert np.isnan(with_null["f0"][0, 0])


def test_categorical_values_are_strings_with_missing_as_empty() -> None:
    feeds = MIXED.encode(
        [
            {"age": 3, "colour": "red", "size": 0},
            {"age": None, "colour": None, "size": 0},
            {"age": 1, "colour": 7, "size": 0},
            [2, "purple", 0],
        ]
    )
    assert feeds["f1"][:, 0].tolist() == ["red", "", "7", "purple"]
    assert feeds["f1"].dtype == object


@pytest.mark.parametrize(
    ("records", "error", "fragment"),
    [
        ([{"a": 1, "b": 2}], MissingFeatureError, "record 0: feature 'c' is missing"),
        (
            [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3, "d": 4}],
            UnknownFeatureError,
            "record 1: unknown feature 'd'",
        ),
        ([[1, 2, 3], [1, 2]], InvalidRecordError, "record 1: has 2 values"),
        ([{"a": 1, "b": "2", "c": 3}], InvalidTypeError, "feature 'b' is numeric; got string"),
        ([{"a": 1, "b": True, "c": 3}], InvalidTypeError, "feature 'b' is numeric; got boolean"),
        ([[1, 2, [3]]], InvalidTypeError, "feature 'c' is numeric; got array"),
        ([[1, 2, 1e39]], NonFiniteNumberError, "feature 'c' value 1e+39 is outside"),
        ([5], InvalidRecordError, "record 0: must be an object"),
    ],
)
def test_bad_records_name_the_record_and_feature(
    records: list[object], error: type[Exception], fragment: str
) -> None:
    # The fast path is only offered bodies without true/false (the caller checks the bytes).
    offers = (True,) if "boolean" in fragment else (False, True)
    for has_booleans in offers:
        with pytest.raises(error, match=re.escape(fragment)):
            NUMERIC.encode(records, body_has_booleans=has_booleans)


def test_categorical_feature_rejects_objects() -> None:
    with pytest.raises(InvalidTypeError, match="record 0: feature 'colour' is categorical"):
        MIXED.encode([{"age": 1, "colour": {"x": 1}, "size": 0}])


def test_bare_value_is_a_record_only_for_one_feature_models() -> None:
    single = encoder([FeatureSpec(name="x", kind="numeric", input_name="f0")])
    assert single.encode(single.as_record_list(4.5))["f0"].tolist() == [[4.5]]
    assert single.encode([1, 2, None])["f0"][:2, 0].tolist() == [1.0, 2.0]
    with pytest.raises(InvalidRecordError, match="object keyed by feature name"):
        NUMERIC.as_record_list(4.5)


def test_json_errors_distinguish_malformed_from_non_finite() -> None:
    with pytest.raises(MalformedJsonError, match="not valid JSON"):
        decode_json(b'{"data": [1, 2')
    with pytest.raises(NonFiniteNumberError, match=r"\$\.data\[1\]\.b"):
        decode_json(b'{"data": [{"b": 1}, {"b": NaN}]}')
    with pytest.raises(NonFiniteNumberError, match=r"\$\.data\[0\]"):
        decode_json(b'{"data": [1e999]}')


def test_request_shape_and_batch_limits() -> None:
    with pytest.raises(InvalidRequestError, match='"data"'):
        request_data([1, 2])
    with pytest.raises(InvalidRequestError, match="'dta'"):
        request_data({"data": 1, "dta": 2})
    with pytest.raises(EmptyBatchError):
        batch_records([], max_records=3)
    with pytest.raises(TooManyRecordsError, match="4 records; the limit is 3"):
        batch_records([1, 2, 3, 4], max_records=3)
    with pytest.raises(InvalidRequestError, match="array of records"):
        batch_records({"a": 1}, max_records=3)
