"""LightGBM's double thresholds in a float32 graph: rounded down, never to the nearest."""

from __future__ import annotations

import numpy as np

from training_job.lgbm_onnx import float32_at_most, thresholds_rounded_down


def test_rounding_down_keeps_every_float32_comparison() -> None:
    rng = np.random.default_rng(0)
    # Midpoints of neighbouring decimal float32 values (what LightGBM's bins are made of),
    # plus arbitrary doubles.
    grid = (np.round(rng.normal(0, 50, size=2000), 1)).astype(np.float32).astype(np.float64)
    thresholds = np.concatenate([(grid[:-1] + grid[1:]) / 2, rng.normal(0, 1e3, size=2000)])
    rounded = float32_at_most(thresholds)
    assert rounded.dtype == np.float32
    near = rounded.astype(np.float64)
    # Every float32 a few steps either side of each threshold compares the same way.
    for steps in range(-3, 4):
        x = near.astype(np.float32)
        for _ in range(abs(steps)):
            x = np.nextafter(x, np.float32(np.sign(steps) * np.inf))
        assert np.array_equal(x.astype(np.float64) <= thresholds, x <= rounded)


def test_the_nearest_float32_would_send_a_decimal_value_the_other_way() -> None:
    # The midpoint of 34.3 and 34.5 (as float32) lies just below float32(34.4).
    threshold = (float(np.float32(34.3)) + float(np.float32(34.5))) / 2
    value = np.float32(34.4)
    assert not float(value) <= threshold  # LightGBM: right
    assert value <= np.float32(threshold)  # nearest float32: left (the old graph)
    assert not value <= float32_at_most(threshold)  # rounded down: right, as LightGBM


def test_thresholds_beyond_float32_keep_infinite_inputs_apart() -> None:
    high, low = float32_at_most([1e300, -1e300])
    assert high == np.finfo(np.float32).max  # +inf still goes right, finite values left
    assert low == -np.inf


def test_only_the_bounds_of_a_tree_ensemble_are_rounded_down() -> None:
    threshold = (float(np.float32(34.3)) + float(np.float32(34.5))) / 2
    values = thresholds_rounded_down(
        [threshold, 3.0, 0.0, threshold], ["BRANCH_LEQ", "BRANCH_EQ", "LEAF", b"BRANCH_LEQ"]
    )
    below = float(np.nextafter(np.float32(34.4), np.float32(-np.inf)))
    assert values == [below, 3.0, 0.0, below]  # a category (BRANCH_EQ) keeps its value
