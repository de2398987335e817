"""LightGBM in the exported graph: onnxmltools' converter, registered with skl2onnx.

skl2onnx converts the whole scikit-learn pipeline (imputer, one-hot encoder, ...) but
does not know LightGBM's estimators; onnxmltools 1.16 has the tree converter. Registering
it lets ``convert_sklearn`` emit one graph, preprocessing and model together, so the
guardrails (``onnx.checker``, parity of values and probabilities) judge exactly what is
served. Registration is explicit and idempotent: importing this module has no effect.

**Thresholds.** LightGBM splits on ``x <= t`` with ``t`` a double (the midpoint of two
training values) and ``x`` the float32 input widened to double; ONNX's tree ensembles store
``t`` as float32 and compare in float32. onnxmltools rounds ``t`` to the *nearest* float32,
which can be the float32 just above ``t``: then an input equal to that float32 goes left in
the graph and right in LightGBM. Decimal data meets this often: the midpoint of 34.3 and
34.5 (both float32) rounds to float32(34.4), so a holdout row of 34.4 that no training row
had took the other branch (probabilities 0.03-0.5 apart on 400 rows). The converter
registered here rounds every ``<=`` threshold *down* instead
(:func:`float32_at_most`): for every float32 ``x``, ``x <= t`` exactly when
``x <= float32_at_most(t)``, so the graph takes LightGBM's branch on every input.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

LIGHTGBM_MODULE = "lightgbm"
TREE_ENSEMBLE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def is_lightgbm(estimator: Any) -> bool:
    """True for LightGBM's scikit-learn estimators (checked without importing lightgbm)."""
    return type(estimator).__module__.split(".", 1)[0] == LIGHTGBM_MODULE


def pipeline_uses_lightgbm(pipeline: Any) -> bool:
    steps = getattr(pipeline, "named_steps", {})
    return is_lightgbm(steps.get("model"))


def float32_at_most(thresholds: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The largest float32 not above each double threshold (rounding toward -inf).

    ``t`` beyond float32's range becomes float32's largest finite value, so ``+inf``
    still goes right as in LightGBM (``inf <= 1e300`` is false).
    """
    exact = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(over="ignore"):
        nearest = exact.astype(np.float32)
    above = nearest.astype(np.float64) > exact
    return np.where(above, np.nextafter(nearest, np.float32(-np.inf)), nearest)


def _graph_splits(attributes: Mapping[str, Sequence[Any]], tree: int) -> Iterator[int]:
    """Positions of ``tree``'s branch nodes in the attribute lists, in pre-order (true
    branch first: the order :func:`_booster_splits` walks LightGBM's left child first)."""
    positions = [i for i, t in enumerate(attributes["nodes_treeids"]) if t == tree]
    by_id = {attributes["nodes_nodeids"][i]: i for i in positions}
    branches = [i for i in positions if attributes["nodes_modes"][i] != "LEAF"]
    children = {attributes["nodes_truenodeids"][i] for i in branches} | {
        attributes["nodes_falsenodeids"][i] for i in branches
    }
    stack = [by_id[node] for node in by_id if node not in children][:1]
    while stack:
        i = stack.pop()
        if attributes["nodes_modes"][i] == "LEAF":
            continue
        yield i
        stack.append(by_id[attributes["nodes_falsenodeids"][i]])
        stack.append(by_id[attributes["nodes_truenodeids"][i]])


def _booster_splits(structure: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """A dumped LightGBM tree's split nodes in pre-order, left child first."""
    stack = [structure]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        yield node
        stack.append(node["right_child"])
        stack.append(node["left_child"])


def exact_thresholds(
    attributes: Mapping[str, Sequence[Any]], trees: Sequence[Mapping[str, Any]]
) -> list[float]:
    """``nodes_values`` of a converted tree ensemble with LightGBM's ``<=`` thresholds
    (``trees``: the booster's dumped ``tree_info``, as the converter read it) rounded
    down to float32 instead of to the nearest float32.

    The graph and the dump are walked side by side; a node whose feature or (nearest)
    threshold does not match raises ``ValueError`` rather than moving a threshold onto
    the wrong node.
    """
    values = [float(v) for v in attributes["nodes_values"]]
    for tree, dumped in enumerate(trees):
        graph = list(_graph_splits(attributes, tree))
        booster = list(_booster_splits(dumped["tree_structure"]))
        if len(graph) != len(booster):
            raise ValueError(f"tree {tree}: {len(graph)} graph splits, {len(booster)} in LightGBM")
        for i, node in zip(graph, booster, strict=True):
            if attributes["nodes_featureids"][i] != node["split_feature"]:
                raise ValueError(f"tree {tree}: the graph and LightGBM split on other features")
            if attributes["nodes_modes"][i] != "BRANCH_LEQ":
                continue  # categorical equality: the value is a category, not a bound
            threshold = float(node["threshold"])
            with np.errstate(over="ignore"):
                converted = np.float32(threshold)
            if np.float32(values[i]) != converted:
                raise ValueError(f"tree {tree}: threshold {values[i]} is not {threshold}")
            values[i] = float(float32_at_most(threshold))
    return values


def _round_thresholds_down(node: Any, booster: Any) -> None:
    """Rewrite a converted ``TreeEnsemble*`` node's ``nodes_values`` (see the module doc)."""
    from onnx import helper  # noqa: PLC0415
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (  # noqa: PLC0415
        modify_tree_for_rule_in_set,
    )

    dump = booster.dump_model()
    # The converter unfolds "category in set" splits into chains; so must the walk.
    modify_tree_for_rule_in_set(dump, use_float=True)
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attributes["nodes_modes"] = [m.decode() for m in attributes["nodes_modes"]]
    values = exact_thresholds(attributes, dump["tree_info"])
    kept = [a for a in node.attribute if a.name != "nodes_values"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("nodes_values", values)])


def convert_lightgbm_exactly(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, then :func:`_round_thresholds_down` on its trees."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (  # noqa: PLC0415
        convert_lightgbm,
    )

    first = len(container.nodes)
    convert_lightgbm(scope, operator, container)
    ensembles = [n for n in container.nodes[first:] if n.op_type in TREE_ENSEMBLE_OPS]
    if len(ensembles) != 1:
        raise ValueError(f"expected one tree ensemble from LightGBM, got {len(ensembles)}")
    _round_thresholds_down(ensembles[0], operator.raw_operator.booster_)


@functools.cache
def register_lightgbm_converters() -> None:
    """Make ``skl2onnx.convert_sklearn`` convert ``LGBMRegressor`` and ``LGBMClassifier``.

    The classifier's options are the ones skl2onnx's own classifiers take, so the
    caller's ``{"zipmap": False}`` gives the plain ``label`` + ``probabilities`` outputs
    the contract expects.
    """
    # Slow imports, training only.
    from lightgbm import LGBMClassifier, LGBMRegressor  # noqa: PLC0415
    from skl2onnx import update_registered_converter  # noqa: PLC0415
    from skl2onnx.common.shape_calculator import (  # noqa: PLC0415
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm_exactly,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm_exactly,
        options={"split": None},
    )


def prepare_export(pipeline: Any) -> None:
    """The hook :func:`training_job.export.export_onnx` calls before converting."""
    if pipeline_uses_lightgbm(pipeline):
        register_lightgbm_converters()
