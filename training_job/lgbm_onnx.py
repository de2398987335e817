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
from collections.abc import Sequence
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


def thresholds_rounded_down(values: Sequence[Any], modes: Sequence[Any]) -> list[float]:
    """A tree ensemble's ``nodes_values`` with every ``BRANCH_LEQ`` threshold rounded down to
    float32 (other nodes, leaves and categorical equalities, keep theirs)."""
    result = [float(v) for v in values]
    branches = [i for i, mode in enumerate(modes) if mode in ("BRANCH_LEQ", b"BRANCH_LEQ")]
    rounded = float32_at_most([result[i] for i in branches])
    for i, value in zip(branches, rounded.tolist(), strict=True):
        result[i] = value
    return result


class _RoundingDownContainer:
    """skl2onnx's conversion container as onnxmltools' converter sees it: tree-ensemble
    nodes get :func:`thresholds_rounded_down` of LightGBM's double thresholds before the
    node stores them as float32; everything else passes through untouched."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, *args: Any, **attrs: Any) -> Any:
        if op_type in TREE_ENSEMBLE_OPS:
            values, modes = attrs["nodes_values"], attrs["nodes_modes"]
            attrs["nodes_values"] = thresholds_rounded_down(values, modes)
        return self._container.add_node(op_type, *args, **attrs)


def convert_lightgbm_exactly(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, with the thresholds rounded down (see the module doc)."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (  # noqa: PLC0415
        convert_lightgbm,
    )

    convert_lightgbm(scope, operator, _RoundingDownContainer(container))


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
