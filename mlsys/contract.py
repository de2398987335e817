"""The model-artifact contract: the one definition shared by training and inference.

A model version is two immutable files in the registry:

``model.onnx``
    An ONNX graph with **one input per feature**, named ``FeatureSpec.input_name``
    (``f0``, ``f1``, ...), each of shape ``[N, 1]``: ``tensor(float)`` for numeric
    features (missing = NaN) and ``tensor(string)`` for categorical features
    (missing = :data:`MISSING_CATEGORY`). All preprocessing (imputation, scaling,
    one-hot encoding with unknown categories ignored) is inside the graph, so
    the served model takes raw records.

    Outputs: regression models have :data:`REGRESSION_OUTPUT` (``[N, 1]`` float);
    classifiers have :data:`LABEL_OUTPUT` (``[N]`` int64, an index into
    ``ModelCard.classes``) and :data:`PROBABILITIES_OUTPUT` (``[N, C]`` float,
    columns in ``ModelCard.classes`` order).

``card.json``
    A :class:`ModelCard`: the feature schema, task and classes, holdout metrics
    of challenger and champion, the promotion decision, data fingerprint,
    training parameters, library versions and per-feature baseline statistics.

Encoding records into ONNX feeds and decoding outputs lives here too, so that
training scores candidates through onnxruntime exactly as they are served.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime as ort
    import pandas as pd

CARD_SCHEMA_VERSION = 1
MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
MISSING_CATEGORY = ""
"""How a missing categorical value is encoded (ONNX string tensors have no null)."""
REGRESSION_OUTPUT = "variable"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"

Task = Literal["regression", "classification"]
FeatureKind = Literal["numeric", "categorical"]
JsonScalar = str | int | float | bool | None


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """One input feature of a model."""

    name: str
    """Column name in the training data and key in JSON object records."""
    kind: FeatureKind
    input_name: str
    """Name of the ONNX graph input carrying this feature."""
    categories: tuple[str, ...] | None = None
    """Categories seen in training (categorical features only)."""
    had_missing: bool = False
    """Whether training data had missing values for this feature."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories) if self.categories is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            input_name=str(data["input_name"]),
            categories=tuple(str(c) for c in categories) if categories is not None else None,
            had_missing=bool(data.get("had_missing", False)),
        )


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """Everything known about one immutable model version (``card.json``).

    The typed fields are the serving contract; the free-form mappings are the
    record kept for people (metrics, decision, lineage).
    """

    model_name: str
    version: str
    task: Task
    target: str
    features: tuple[FeatureSpec, ...]
    metric: str
    """Primary holdout metric used for promotion (``r2``, ``f1_macro`` ...)."""
    classes: tuple[JsonScalar, ...] | None = None
    created_at: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """``{"challenger": {...}, "champion": {...} | None}`` on the same holdout."""
    decision: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    """Data fingerprint: ``sha256``, ``rows``, ``source``, holdout size."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """Estimator, parameters, seed, search results, timings."""
    guardrails: Mapping[str, Any] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    baseline_stats: Mapping[str, Any] = field(default_factory=dict)
    """Per-feature statistics of the training data, for drift monitoring."""
    onnx: Mapping[str, Any] = field(default_factory=dict)
    """``sha256``, ``size_bytes``, ``opset`` of ``model.onnx``."""
    schema_version: int = CARD_SCHEMA_VERSION

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [f.to_dict() for f in self.features]
        data["classes"] = list(self.classes) if self.classes is not None else None
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        version = int(data.get("schema_version", CARD_SCHEMA_VERSION))
        if version > CARD_SCHEMA_VERSION:
            raise ValueError(
                f"model card schema {version} is newer than this code understands "
                f"({CARD_SCHEMA_VERSION}); upgrade mlsys"
            )
        classes = data.get("classes")
        return cls(
            model_name=str(data["model_name"]),
            version=str(data["version"]),
            task=data["task"],
            target=str(data["target"]),
            features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
            metric=str(data["metric"]),
            classes=tuple(classes) if classes is not None else None,
            created_at=str(data.get("created_at", "")),
            metrics=data.get("metrics") or {},
            decision=data.get("decision") or {},
            data=data.get("data") or {},
            training=data.get("training") or {},
            guardrails=data.get("guardrails") or {},
            library_versions=data.get("library_versions") or {},
            git_commit=data.get("git_commit"),
            baseline_stats=data.get("baseline_stats") or {},
            onnx=data.get("onnx") or {},
            schema_version=version,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ModelCard:
        return cls.from_dict(json.loads(raw))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def input_name_for(index: int) -> str:
    """ONNX input name of the feature at ``index``: column names may hold any
    characters, graph input names should not."""
    return f"f{index}"


def schema_changes(
    champion: ModelCard, *, task: Task, target: str, features: Sequence[FeatureSpec]
) -> list[str]:
    """What API clients would notice if a model with this schema replaced ``champion``.

    Empty when task, target and the input names and kinds are the same. Used by
    automatic promotion (training) and manual promotion (``mlsys models promote``).
    """
    changes: list[str] = []
    if champion.task != task:
        changes.append(f"task changed from {champion.task} to {task}")
    if champion.target != target:
        changes.append(f"target changed from {champion.target!r} to {target!r}")
    old = {f.name: f.kind for f in champion.features}
    new = {f.name: f.kind for f in features}
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    retyped = [n for n in new if n in old and old[n] != new[n]]
    if added:
        changes.append("new input(s) " + ", ".join(repr(n) for n in added))
    if removed:
        changes.append("dropped input(s) " + ", ".join(repr(n) for n in removed))
    if retyped:
        changes.append(
            "input(s) changing kind " + ", ".join(f"{n!r} ({old[n]} -> {new[n]})" for n in retyped)
        )
    return changes


# --- encoding -----------------------------------------------------------------

Feeds = dict[str, npt.NDArray[Any]]


def numeric_column(values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Encode numeric values as a ``[N, 1]`` float32 column; ``None`` becomes NaN."""
    try:
        column = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        column = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float32)
    return column.reshape(-1, 1)


def categorical_value(value: Any) -> str:
    """Encode one categorical value the way training saw it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_CATEGORY
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def categorical_column(values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    """Encode categorical values as a ``[N, 1]`` string column."""
    column = np.empty((len(values), 1), dtype=object)
    column[:, 0] = [categorical_value(v) for v in values]
    return column


def columns_to_feeds(
    features: Sequence[FeatureSpec], columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]]
) -> Feeds:
    """Build ONNX feeds from per-feature value sequences keyed by feature name."""
    feeds: Feeds = {}
    for spec in features:
        values = columns[spec.name]
        if spec.kind == "numeric":
            feeds[spec.input_name] = numeric_column(values)
        else:
            feeds[spec.input_name] = categorical_column(values)
    return feeds


def frame_to_feeds(features: Sequence[FeatureSpec], frame: pd.DataFrame) -> Feeds:
    """Build ONNX feeds from a DataFrame whose columns are the feature names."""
    feeds: Feeds = {}
    for spec in features:
        series = frame[spec.name]
        if spec.kind == "numeric":
            feeds[spec.input_name] = series.to_numpy(dtype=np.float32, na_value=np.nan).reshape(
                -1, 1
            )
        else:
            feeds[spec.input_name] = categorical_column(series.to_numpy(dtype=object))
    return feeds


def matrix_to_feeds(features: Sequence[FeatureSpec], matrix: npt.NDArray[np.float32]) -> Feeds:
    """Fast path for all-numeric models: a ``[N, F]`` float32 matrix in schema order."""
    return {spec.input_name: matrix[:, i : i + 1] for i, spec in enumerate(features)}


# --- scoring ------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """Decoded model output for N records."""

    values: Sequence[JsonScalar]
    """Regression: floats. Classification: class labels from ``ModelCard.classes``."""
    probabilities: npt.NDArray[np.float32] | None = None
    """Classification only: ``[N, C]`` in ``ModelCard.classes`` order."""
    raw: npt.NDArray[Any] | None = None
    """Regression: the float predictions; classification: class indices."""


def create_session(model_bytes: bytes, *, intra_op_threads: int = 1) -> ort.InferenceSession:
    """The one way an ONNX model is loaded, in training evaluation and in serving."""
    import onnxruntime as ort  # noqa: PLC0415 - keep `import mlsys.contract` light

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def decode_outputs(card: ModelCard, outputs: Sequence[npt.NDArray[Any]]) -> Prediction:
    """Turn ``session.run(None, feeds)`` results into a :class:`Prediction`."""
    if not card.is_classifier:
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        return Prediction(values=values.tolist(), raw=values)
    if card.classes is None:
        raise ValueError(f"classifier {card.version} has no classes in its card")
    indices = np.asarray(outputs[0]).reshape(-1).astype(np.int64)
    classes = card.classes
    labels = [classes[i] for i in indices.tolist()]
    probabilities = np.asarray(outputs[1], dtype=np.float32)
    return Prediction(values=labels, probabilities=probabilities, raw=indices)


def output_names(card: ModelCard) -> list[str]:
    if card.is_classifier:
        return [LABEL_OUTPUT, PROBABILITIES_OUTPUT]
    return [REGRESSION_OUTPUT]


class LoadedModel:
    """A model version ready to score: its card and an onnxruntime session.

    Created once per container (or per training evaluation); thread-safe for
    concurrent :meth:`predict` calls because ``InferenceSession.run`` is.
    """

    def __init__(
        self, card: ModelCard, model_bytes: bytes, *, session: ort.InferenceSession | None = None
    ) -> None:
        self.card = card
        self.session = session if session is not None else create_session(model_bytes)
        self._outputs = output_names(card)
        expected = {f.input_name for f in card.features}
        actual = {i.name for i in self.session.get_inputs()}
        if expected != actual:
            raise ValueError(
                f"model {card.version}: graph inputs {sorted(actual)} do not match the "
                f"card's features {sorted(expected)}"
            )

    @property
    def version(self) -> str:
        return self.card.version

    def predict(self, feeds: Feeds) -> Prediction:
        return decode_outputs(self.card, self.session.run(self._outputs, feeds))

    def predict_frame(self, frame: pd.DataFrame) -> Prediction:
        return self.predict(frame_to_feeds(self.card.features, frame))
