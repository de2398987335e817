"""Export a fitted pipeline to ONNX in the shape :mod:`mlsys.contract` defines."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlsys.contract import (
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    REGRESSION_OUTPUT,
    FeatureSpec,
    Task,
)

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
"""Pinned so the graph does not change with skl2onnx defaults; onnxruntime >= 1.15 runs it."""


@dataclass(frozen=True)
class ExportedModel:
    model_bytes: bytes
    sha256: str
    opset: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size_bytes": len(self.model_bytes), "opset": self.opset}


def export_onnx(
    pipeline: Any,
    features: Sequence[FeatureSpec],
    *,
    task: Task,
    n_classes: int | None,
    doc: str = "",
) -> ExportedModel:
    """One ``[N, 1]`` input per feature; outputs ``variable`` or ``label`` + ``probabilities``."""
    from skl2onnx import convert_sklearn  # noqa: PLC0415 - slow import, training only
    from skl2onnx.common.data_types import (  # noqa: PLC0415
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    from training_job.lgbm_onnx import prepare_export  # noqa: PLC0415

    prepare_export(pipeline)  # registers LightGBM's converter when the model needs it

    initial_types = [
        (
            f.input_name,
            FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]),
        )
        for f in features
    ]
    options: dict[int, dict[str, Any]] = {}
    if task == "classification":
        options[id(pipeline)] = {"zipmap": False}
        final_types = [
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, n_classes])),
        ]
    else:
        final_types = [(REGRESSION_OUTPUT, FloatTensorType([None, 1]))]
    model = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        final_types=final_types,
        options=options,
        target_opset=TARGET_OPSET,
    )
    model.doc_string = doc
    model_bytes = model.SerializeToString()
    return ExportedModel(
        model_bytes=model_bytes,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        opset={entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import},
    )
