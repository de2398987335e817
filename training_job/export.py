"""Export a fitted pipeline to ONNX in the shape :mod:`mlsys.contract` defines.

Two steps, so that another converter (a different model library) can reuse the
second: a converter turns the fitted pipeline into a graph with one ``[N, 1]``
input per feature (:func:`convert_sklearn_per_feature`), then
:func:`to_tensor_layout` rewrites that graph's inputs into the contract's
``tensor`` layout (one float tensor for the numeric features, one string tensor
for the categorical ones), which is what training exports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsys.contract import (
    CATEGORICAL_INPUT,
    LABEL_OUTPUT,
    NUMERIC_INPUT,
    PROBABILITIES_OUTPUT,
    REGRESSION_OUTPUT,
    FeatureSpec,
    InputLayout,
    Task,
)

if TYPE_CHECKING:
    import onnx

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
"""Pinned so the graph does not change with skl2onnx defaults; onnxruntime >= 1.15 runs it."""


@dataclass(frozen=True)
class ExportedModel:
    model_bytes: bytes
    sha256: str
    opset: dict[str, int]
    input_layout: InputLayout = "tensor"

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size_bytes": len(self.model_bytes), "opset": self.opset}


def export_onnx(
    pipeline: Any,
    features: Sequence[FeatureSpec],
    *,
    task: Task,
    n_classes: int | None,
    doc: str = "",
    layout: InputLayout = "tensor",
) -> ExportedModel:
    """The contract's graph for ``pipeline``: inputs in ``layout`` (``tensor`` unless an
    old-layout model is wanted, as in tests of old registries); outputs ``variable`` or
    ``label`` + ``probabilities``."""
    model = convert_sklearn_per_feature(pipeline, features, task=task, n_classes=n_classes)
    if layout == "tensor":
        model = to_tensor_layout(model, features)
    model.doc_string = doc
    model_bytes = model.SerializeToString()
    return ExportedModel(
        model_bytes=model_bytes,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        opset={entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import},
        input_layout=layout,
    )


def convert_sklearn_per_feature(
    pipeline: Any, features: Sequence[FeatureSpec], *, task: Task, n_classes: int | None
) -> onnx.ModelProto:
    """A scikit-learn pipeline (columns named by ``input_name``) as a per-feature graph."""
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
    model: onnx.ModelProto = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        final_types=final_types,
        options=options,
        target_opset=TARGET_OPSET,
    )
    return model


def to_tensor_layout(model: onnx.ModelProto, features: Sequence[FeatureSpec]) -> onnx.ModelProto:
    """Replace the per-feature inputs by :data:`NUMERIC_INPUT` and :data:`CATEGORICAL_INPUT`.

    Each block is split back into the per-feature names the graph reads, except
    where the graph only re-assembled all of that block's features in schema order
    (the usual ``Concat`` of a column transformer): that ``Concat`` reads the block
    directly, so the common all-numeric model runs on one tensor with no split.
    """
    from onnx import TensorProto, helper  # noqa: PLC0415

    graph = model.graph
    taken = {name for node in graph.node for name in node.output} | {
        i.name for i in graph.initializer
    }
    clash = {NUMERIC_INPUT, CATEGORICAL_INPUT} & taken
    if clash:
        raise ValueError(f"the converted graph already uses the name(s) {sorted(clash)}")
    blocks = (
        (NUMERIC_INPUT, TensorProto.FLOAT, [f.input_name for f in features if f.kind == "numeric"]),
        (
            CATEGORICAL_INPUT,
            TensorProto.STRING,
            [f.input_name for f in features if f.kind == "categorical"],
        ),
    )
    opset = next(
        (int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx")),
        TARGET_OPSET[""],
    )
    inputs, prefix = [], []
    for block, element_type, names in blocks:
        if not names:
            continue
        inputs.append(helper.make_tensor_value_info(block, element_type, [None, len(names)]))
        _read_block_directly(graph, block, names)
        if _still_read(graph, names):
            prefix.append(_splitter(graph, block, names, opset))
    del graph.input[:]
    graph.input.extend(inputs)
    kept = list(graph.node)
    del graph.node[:]
    graph.node.extend(prefix + kept)
    return model


def _read_block_directly(graph: Any, block: str, names: list[str]) -> None:
    """``Concat(axis=1)`` of exactly ``names`` in order becomes ``Identity(block)``."""
    from onnx import helper  # noqa: PLC0415

    for index, node in enumerate(graph.node):
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if node.op_type == "Concat" and list(node.input) == names and axis in (1, -1):
            identity = helper.make_node("Identity", [block], list(node.output), name=node.name)
            graph.node[index].CopyFrom(identity)


def _still_read(graph: Any, names: list[str]) -> bool:
    wanted = set(names)
    read = {name for node in graph.node for name in node.input}
    return bool(wanted & read) or bool(wanted & {o.name for o in graph.output})


def _splitter(graph: Any, block: str, names: list[str], opset: int) -> Any:
    """One ``[N, 1]`` column per name; the ``Split`` form the graph's opset accepts.

    ``num_outputs`` exists only from opset 18 and the sizes moved from an attribute to
    an input at opset 13, so sizes go where the converted graph's own opset expects them.
    """
    from onnx import TensorProto, helper  # noqa: PLC0415

    name = f"{block}_split"
    if len(names) == 1:
        return helper.make_node("Identity", [block], names, name=name)
    if opset < 13:
        return helper.make_node("Split", [block], names, axis=1, split=[1] * len(names), name=name)
    sizes = f"{block}_split_sizes"
    graph.initializer.append(
        helper.make_tensor(sizes, TensorProto.INT64, [len(names)], [1] * len(names))
    )
    return helper.make_node("Split", [block, sizes], names, axis=1, name=name)
