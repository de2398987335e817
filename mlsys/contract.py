"""The model-artifact contract: the one definition shared by training and inference.

A model version is two immutable files in the registry:

``model.onnx``
    An ONNX graph taking raw feature values in one of two input layouts, named by
    ``ModelCard.input_layout``:

    ``"tensor"`` (what training exports)
        Two inputs at most: :data:`NUMERIC_INPUT` ``[N, n_numeric]`` ``tensor(float)``
        holding the numeric features (missing = NaN) and :data:`CATEGORICAL_INPUT`
        ``[N, n_categorical]`` ``tensor(string)`` holding the categorical features
        (missing = :data:`MISSING_CATEGORY`), each in the card's feature order. An
        input whose kind has no features is absent.
    ``"per_feature"`` (models exported before the tensor layout; the default when a
        card has no ``input_layout``)
        One ``[N, 1]`` input per feature named ``FeatureSpec.input_name`` (``f0``,
        ``f1`` ...), float or string as above.

    All preprocessing (imputation, scaling, one-hot encoding with unknown categories
    ignored) is inside the graph, so the served model takes raw records.

    Outputs: regression models have :data:`REGRESSION_OUTPUT` (``[N, 1]`` float);
    classifiers have :data:`LABEL_OUTPUT` (``[N]`` int64, an index into
    ``ModelCard.classes``) and :data:`PROBABILITIES_OUTPUT` (``[N, C]`` float,
    columns in ``ModelCard.classes`` order).

``card.json``
    A :class:`ModelCard`: the feature schema, task and classes, holdout metrics
    of challenger and champion, the promotion decision, data fingerprint,
    training parameters, library versions and per-feature baseline statistics.

Encoding values into ONNX feeds (:class:`FeedEncoder`, for both layouts) and
decoding outputs live here too, and only here: training evaluation, serving
(which validates records at the edge and hands the encoder checked columns) and
the tests all go through them, so training scores candidates through onnxruntime
exactly as they are served.
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
NUMERIC_INPUT = "numeric_features"
"""Graph input of the ``tensor`` layout holding every numeric feature."""
CATEGORICAL_INPUT = "categorical_features"
"""Graph input of the ``tensor`` layout holding every categorical feature."""
NUMERIC_DTYPE = np.float32
"""The precision of every numeric model input: training stores its matrix (and the
monitor's bin edges) in it, serving encodes requests in it, and the monitor bins live
values in it, so a value sits in the same bin at training, serving and monitoring."""

Task = Literal["regression", "classification"]
FeatureKind = Literal["numeric", "categorical"]
InputLayout = Literal["per_feature", "tensor"]
INPUT_LAYOUTS: tuple[InputLayout, ...] = ("per_feature", "tensor")
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
    input_layout: InputLayout = "per_feature"
    """How ``model.onnx`` takes its inputs (see the module docstring). Absent from
    cards written before the tensor layout existed, which are ``per_feature``."""
    importance: Mapping[str, Any] = field(default_factory=dict)
    """Permutation importance on the holdout: ``method``, ``metric``, ``rows``,
    ``repeats``, ``seed``, ``score`` (unshuffled) and ``features``: name -> ``{"mean",
    "std"}`` of the metric's loss when that feature is shuffled (higher matters more).
    Empty in cards written before it was computed."""
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
            input_layout=_input_layout(data.get("input_layout", "per_feature")),
            importance=data.get("importance") or {},
            schema_version=version,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ModelCard:
        return cls.from_dict(json.loads(raw))


def _input_layout(value: Any) -> InputLayout:
    for layout in INPUT_LAYOUTS:
        if value == layout:
            return layout
    raise ValueError(
        f"model card input_layout {value!r} is not one this code understands "
        f"({', '.join(INPUT_LAYOUTS)}); upgrade mlsys"
    )


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
        column = np.asarray(values, dtype=NUMERIC_DTYPE)
    except (TypeError, ValueError):
        column = np.array([np.nan if v is None else float(v) for v in values], dtype=NUMERIC_DTYPE)
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
    column[:, 0] = [v if type(v) is str else categorical_value(v) for v in values]
    return column


Column = Sequence[Any] | npt.NDArray[Any]


class FeedEncoder:
    """The one encoder from feature values to ONNX feeds, for one model's schema and layout.

    Callers hand it values already checked against the schema (serving validates
    records at the edge; training has typed frames): numbers or ``None`` for numeric
    features, JSON scalars or ``None`` for categorical ones.
    """

    def __init__(self, features: Sequence[FeatureSpec], *, layout: InputLayout) -> None:
        self.features = tuple(features)
        self.layout = layout
        self._numeric = [i for i, f in enumerate(self.features) if f.kind == "numeric"]
        self._categorical = [i for i, f in enumerate(self.features) if f.kind == "categorical"]
        self.all_numeric = not self._categorical

    @property
    def input_names(self) -> set[str]:
        """The graph inputs a model with this schema and layout has."""
        if self.layout == "per_feature":
            return {f.input_name for f in self.features}
        names = set()
        if self._numeric:
            names.add(NUMERIC_INPUT)
        if self._categorical:
            names.add(CATEGORICAL_INPUT)
        return names

    def slot(self, index: int) -> tuple[str, int]:
        """Where the feature at ``index`` (schema order) sits in the feeds: the graph
        input's name and the column within it."""
        spec = self.features[index]
        if self.layout == "per_feature":
            return spec.input_name, 0
        if spec.kind == "numeric":
            return NUMERIC_INPUT, self._numeric.index(index)
        return CATEGORICAL_INPUT, self._categorical.index(index)

    def from_matrix(self, matrix: npt.NDArray[np.float32]) -> Feeds:
        """All-numeric models: a ``[N, F]`` float32 matrix in schema order (the fast path)."""
        if self.layout == "tensor":
            return {NUMERIC_INPUT: matrix}
        return {spec.input_name: matrix[:, i : i + 1] for i, spec in enumerate(self.features)}

    def from_columns(self, columns: Sequence[Column]) -> Feeds:
        """Feeds from one value sequence per feature, in schema order."""
        if self.layout == "per_feature":
            return {
                spec.input_name: _encode_column(spec, column)
                for spec, column in zip(self.features, columns, strict=True)
            }
        feeds: Feeds = {}
        if self._numeric:
            feeds[NUMERIC_INPUT] = np.hstack(
                [numeric_column(columns[i]) for i in self._numeric]
            ).astype(np.float32, copy=False)
        if self._categorical:
            feeds[CATEGORICAL_INPUT] = np.hstack(
                [categorical_column(columns[i]) for i in self._categorical]
            )
        return feeds

    def from_encoded(
        self, numeric: npt.NDArray[np.float32], categorical: npt.NDArray[np.object_]
    ) -> Feeds:
        """Feeds from values already encoded, for callers that encode whole columns at once
        (the file scorer): a ``[N, numeric features]`` float32 matrix and a ``[N, categorical
        features]`` matrix of :func:`categorical_value` strings, each in schema order
        (an empty ``[N, 0]`` matrix for a kind the model has none of)."""
        if self.layout == "tensor":
            feeds: Feeds = {}
            if self._numeric:
                feeds[NUMERIC_INPUT] = numeric
            if self._categorical:
                feeds[CATEGORICAL_INPUT] = categorical
            return feeds
        feeds = {}
        for kind_matrix, indices in ((numeric, self._numeric), (categorical, self._categorical)):
            for position, index in enumerate(indices):
                feeds[self.features[index].input_name] = kind_matrix[:, position : position + 1]
        return feeds

    def from_frame(self, frame: pd.DataFrame) -> Feeds:
        """Feeds from a DataFrame whose columns are the feature names."""
        columns: list[Column] = []
        for spec in self.features:
            series = frame[spec.name]
            if spec.kind == "numeric":
                columns.append(series.to_numpy(dtype=np.float32, na_value=np.nan))
            else:
                columns.append(series.to_numpy(dtype=object))
        return self.from_columns(columns)


def _encode_column(spec: FeatureSpec, column: Column) -> npt.NDArray[Any]:
    return numeric_column(column) if spec.kind == "numeric" else categorical_column(column)


# --- scoring ------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Prediction:
    """Decoded model output for N records."""

    values: Sequence[JsonScalar]
    """Regression: floats. Classification: class labels from ``ModelCard.classes``."""
    probabilities: npt.NDArray[np.float32] | None = None
    """Classification only: ``[N, C]`` in ``ModelCard.classes`` order."""
    raw: npt.NDArray[Any] | None = None
    """Regression: the float predictions; classification: class indices."""

    def __init__(
        self,
        values: Sequence[JsonScalar],
        probabilities: npt.NDArray[np.float32] | None = None,
        raw: npt.NDArray[Any] | None = None,
    ) -> None:
        # Frozen, set in one call: the generated __init__ makes an object.__setattr__
        # per field, and a prediction is built on every request.
        self.__dict__.update(values=values, probabilities=probabilities, raw=raw)


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
        values = outputs[0].ravel().astype(np.float64)
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
        self.encoder = FeedEncoder(card.features, layout=card.input_layout)
        expected = self.encoder.input_names
        actual = {i.name for i in self.session.get_inputs()}
        if expected != actual:
            raise ValueError(
                f"model {card.version}: graph inputs {sorted(actual)} do not match the "
                f"card's features in its {card.input_layout} layout {sorted(expected)}"
            )

    @property
    def version(self) -> str:
        return self.card.version

    def predict(self, feeds: Feeds) -> Prediction:
        return decode_outputs(self.card, self.session.run(self._outputs, feeds))

    def predict_frame(self, frame: pd.DataFrame) -> Prediction:
        return self.predict(self.encoder.from_frame(frame))
