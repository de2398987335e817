"""LightGBM in the exported graph: onnxmltools' converter, registered with skl2onnx.

skl2onnx converts the whole scikit-learn pipeline (imputer, one-hot encoder, ...) but
does not know LightGBM's estimators; onnxmltools 1.16 has the tree converter. Registering
it lets ``convert_sklearn`` emit one graph, preprocessing and model together, so the
guardrails (``onnx.checker``, parity of values and probabilities) judge exactly what is
served. Registration is explicit and idempotent: importing this module has no effect.
"""

from __future__ import annotations

import functools
from typing import Any

LIGHTGBM_MODULE = "lightgbm"


def is_lightgbm(estimator: Any) -> bool:
    """True for LightGBM's scikit-learn estimators (checked without importing lightgbm)."""
    return type(estimator).__module__.split(".", 1)[0] == LIGHTGBM_MODULE


def pipeline_uses_lightgbm(pipeline: Any) -> bool:
    steps = getattr(pipeline, "named_steps", {})
    return is_lightgbm(steps.get("model"))


@functools.cache
def register_lightgbm_converters() -> None:
    """Make ``skl2onnx.convert_sklearn`` convert ``LGBMRegressor`` and ``LGBMClassifier``.

    The classifier's options are the ones skl2onnx's own classifiers take, so the
    caller's ``{"zipmap": False}`` gives the plain ``label`` + ``probabilities`` outputs
    the contract expects.
    """
    # Slow imports, training only.
    from lightgbm import LGBMClassifier, LGBMRegressor  # noqa: PLC0415
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (  # noqa: PLC0415
        convert_lightgbm,
    )
    from skl2onnx import update_registered_converter  # noqa: PLC0415
    from skl2onnx.common.shape_calculator import (  # noqa: PLC0415
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )


def prepare_export(pipeline: Any) -> None:
    """The hook :func:`training_job.export.export_onnx` calls before converting."""
    if pipeline_uses_lightgbm(pipeline):
        register_lightgbm_converters()
