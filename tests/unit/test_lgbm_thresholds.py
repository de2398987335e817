"""LightGBM's double thresholds in a float32 graph: rounded down, never to the nearest."""

from __future__ import annotations

import numpy as np
import pytest

from training_job.lgbm_onnx import exact_thresholds, float32_at_most


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


def _graph(value: float, *, feature: int = 0) -> dict[str, list[object]]:
    """One tree: node 0 splits (true -> 1, false -> 2), nodes 1 and 2 are leaves."""
    return {
        "nodes_treeids": [0, 0, 0],
        "nodes_nodeids": [0, 1, 2],
        "nodes_featureids": [feature, 0, 0],
        "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF"],
        "nodes_values": [value, 0.0, 0.0],
        "nodes_truenodeids": [1, 0, 0],
        "nodes_falsenodeids": [2, 0, 0],
    }


def _tree(threshold: float) -> dict[str, object]:
    leaf = {"leaf_index": 0, "leaf_value": 0.0}
    return {
        "tree_structure": {
            "split_feature": 0,
            "threshold": threshold,
            "decision_type": "<=",
            "left_child": leaf,
            "right_child": leaf,
        }
    }


def test_the_graph_gets_the_rounded_down_threshold_of_the_same_node() -> None:
    threshold = (float(np.float32(34.3)) + float(np.float32(34.5))) / 2
    values = exact_thresholds(_graph(float(np.float32(threshold))), [_tree(threshold)])
    assert values[0] == float(np.nextafter(np.float32(34.4), np.float32(-np.inf)))
    assert values[1:] == [0.0, 0.0]


def test_a_graph_that_does_not_match_the_booster_is_refused() -> None:
    with pytest.raises(ValueError, match=r"threshold 7\.0 is not 2\.5"):
        exact_thresholds(_graph(7.0), [_tree(2.5)])
    with pytest.raises(ValueError, match="other features"):
        exact_thresholds(_graph(2.5, feature=1), [_tree(2.5)])
