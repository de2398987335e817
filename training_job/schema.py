"""From a raw table to what a model is trained on: schema, task, labels and split.

Feature columns are renamed to the contract's ONNX input names (``f0`` ..
``fN``) before fitting, so any column name (spaces, unicode, dots) works and
the exported graph's inputs match :attr:`FeatureSpec.input_name`. Values are
encoded exactly as serving encodes them (:mod:`mlsys.contract`): numeric as
float32 (missing = NaN), categorical as strings (missing = ``""``), so the
model is trained on what it will see in production.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsys.contract import (
    MISSING_CATEGORY,
    FeatureSpec,
    JsonScalar,
    ModelCard,
    Task,
    categorical_column,
    categorical_value,
    input_name_for,
    schema_changes,
)
from mlsys.errors import DataError
from mlsys.knobs import AUTO_CLASSIFICATION_MAX_LEVELS
from mlsys.monitoring.drift import numeric_baseline
from training_job.search import SMALL_DATA_FOLDS

TaskChoice = Literal["auto", "regression", "classification"]

MAX_CATEGORIES = 1000
"""A string column with more distinct values looks like an identifier; it is dropped."""
MAX_CLASSES = 100
"""``--task auto``: an integer-valued numeric target with at most this many distinct
values (each seen twice on average) is treated as class labels; see :func:`detect_task`."""
HOLDOUT_FRACTION = 0.2
MAX_HOLDOUT_ROWS = 100_000
"""Beyond this the holdout is precise enough; more rows go to training."""
MIN_SCORED_ROWS = 2
"""Rows a score needs to be defined (r2 of one row is not): the least a cross-validation
fold and the holdout may hold."""
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_CATEGORIES = 50


@dataclass(frozen=True, kw_only=True)
class Schema:
    features: tuple[FeatureSpec, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)
    """Column -> why it is not a feature."""


def is_numeric_column(series: pd.Series[Any]) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def categorical_strings(series: pd.Series[Any]) -> npt.NDArray[np.object_]:
    """A column encoded as serving encodes categorical values (1-D object array)."""
    return categorical_column(series.to_numpy(dtype=object))[:, 0]


def _not_scalar_reason(series: pd.Series[Any]) -> str | None:
    """Why a column cannot be a feature as is (``None``: it can).

    Datetime (and timedelta/period) columns are excluded rather than turned into one
    category per timestamp or into epoch seconds: a served record carries them as strings
    the model contract does not parse, and a raw timestamp rarely generalises. Nested
    values (Parquet list/struct/map columns: lists, dicts, arrays) are excluded too.
    """
    dtype = series.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        return (
            "date/time values are not used as features (derive numeric columns such as "
            "day of week or age in days if they matter)"
        )
    if isinstance(dtype, pd.ArrowDtype) and dtype.pyarrow_dtype is not None:
        import pyarrow as pa  # noqa: PLC0415 - only Arrow-backed frames get here

        arrow = dtype.pyarrow_dtype
        if pa.types.is_temporal(arrow):
            return "date/time values are not used as features"
        if pa.types.is_nested(arrow):
            return "nested values (list/struct/map) are not used as features"
    if pd.api.types.is_object_dtype(dtype):
        # One pass over the values; the checks then run on the few distinct types.
        kinds = tuple(series.dropna().map(type).unique())
        if any(issubclass(k, list | tuple | dict | set | np.ndarray) for k in kinds):
            return "nested values (list/struct/map) are not used as features"
        if kinds and all(issubclass(k, datetime | date | time) for k in kinds):
            return "date/time values are not used as features"
    return None


def infinite_count(series: pd.Series[Any]) -> int:
    """Values that are +/-inf once encoded as the model's float32 input (so 1e39 counts)."""
    with np.errstate(over="ignore"):
        values = series.to_numpy(dtype=np.float32, na_value=np.nan)
    return int(np.isinf(values).sum())


def _feature_spec(name: str, series: pd.Series[Any], *, input_name: str) -> FeatureSpec | str:
    """The feature a column becomes, or why it is dropped; :class:`DataError` for a numeric
    column holding infinite values (see :func:`infer_schema`)."""
    had_missing = bool(series.isna().any())
    if series.isna().all():
        return "all values are missing"
    unusable = _not_scalar_reason(series)
    if unusable is not None:
        return unusable
    if is_numeric_column(series):
        infinite = infinite_count(series)
        if infinite:
            plural = "row has an infinite value" if infinite == 1 else "rows have infinite values"
            raise DataError(
                f"feature column {name!r}: {infinite} {plural} (inf, -inf or beyond "
                "float32 range); fix them, or leave the cells empty to mark them missing"
            )
        return FeatureSpec(
            name=name, kind="numeric", input_name=input_name, had_missing=had_missing
        )
    values = categorical_strings(series)
    categories = sorted({str(v) for v in values} - {MISSING_CATEGORY})
    if len(categories) > MAX_CATEGORIES:
        return f"{len(categories)} distinct values (more than {MAX_CATEGORIES}: an identifier?)"
    return FeatureSpec(
        name=name,
        kind="categorical",
        input_name=input_name,
        categories=tuple(categories),
        had_missing=had_missing or MISSING_CATEGORY in set(values.tolist()),
    )


def infer_schema(frame: pd.DataFrame, *, target: str) -> Schema:
    """Numeric vs categorical per column, categories, missing values; unusable columns dropped.

    Dropped (named with the reason in the card's ``data.dropped_columns`` and the run's
    notes): all-missing columns, string columns with more than :data:`MAX_CATEGORIES`
    distinct values (identifiers), date/time columns and nested (list/struct) columns.
    :class:`DataError` if nothing usable remains, or if a numeric column holds infinite
    values (``inf``, ``-inf``, or beyond float32's range): they are almost always a
    division by zero upstream, and silently treating them as missing would hide it.
    """
    features: list[FeatureSpec] = []
    dropped: dict[str, str] = {}
    for name in frame.columns:
        if name == target:
            continue
        spec = _feature_spec(name, frame[name], input_name=input_name_for(len(features)))
        if isinstance(spec, str):
            dropped[name] = spec
        else:
            features.append(spec)
    if not features:
        reasons = "; ".join(f"{k}: {v}" for k, v in dropped.items())
        raise DataError(
            "no usable feature columns besides the target" + (f" ({reasons})" if reasons else "")
        )
    return Schema(features=tuple(features), dropped=dropped)


def model_frame(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Columns renamed to ONNX input names, values encoded as the served model receives them."""
    columns: dict[str, Any] = {}
    for spec in features:
        series = frame[spec.name]
        if spec.kind == "numeric":
            # float32 like the ONNX input: the estimators see exactly the served values, and
            # a large training matrix takes half the memory of float64.
            columns[spec.input_name] = series.to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            columns[spec.input_name] = categorical_strings(series)
    # No copy: on a large data set the training rows' frame is the biggest object in memory.
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _integer_valued(values: npt.NDArray[np.float64]) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0))


def detect_task(target: pd.Series[Any]) -> Task:
    """The task ``--task auto`` picks for a target column (missing values removed).

    * strings and booleans: ``classification``;
    * numbers that are all whole (0/1/2, 1..5 ratings, 3.0) with at most
      :data:`AUTO_CLASSIFICATION_MAX_LEVELS` distinct values, each appearing at least
      twice on average: ``classification`` (the values become the class labels);
    * any other number -- fractions, or many distinct values such as prices or counts,
      or whole numbers that are mostly unique in a small table: ``regression``.

    Pass ``--task`` explicitly when the data says otherwise.
    """
    if not is_numeric_column(target):
        return "classification"
    values = target.to_numpy(dtype=np.float64, na_value=np.nan)
    levels = len(np.unique(values))
    if (
        _integer_valued(values)
        and levels <= AUTO_CLASSIFICATION_MAX_LEVELS
        and 2 * levels <= len(values)
    ):
        return "classification"
    return "regression"


def json_label(value: Any) -> JsonScalar:
    """A class label as a JSON-native value (numpy scalars unwrapped, 3.0 -> 3)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _number_key(value: JsonScalar) -> float:
    return float(value) if isinstance(value, int | float) else math.inf


@dataclass(frozen=True, kw_only=True)
class Target:
    task: Task
    y: npt.NDArray[Any]
    """float64 values (regression) or int64 indices into ``classes``."""
    classes: tuple[JsonScalar, ...] | None
    keep: npt.NDArray[np.bool_]
    """Rows of the input frame that have a usable target value."""


def prepare_target(series: pd.Series[Any], *, task: TaskChoice) -> Target:
    """Resolve the task and encode the target; :class:`DataError` if it cannot serve that task."""
    name = series.name
    keep = series.notna().to_numpy()
    if not keep.any():
        raise DataError(f"target column {name!r} has no values")
    present = series[keep]
    resolved: Task = detect_task(present) if task == "auto" else task
    if resolved == "regression":
        if not is_numeric_column(present):
            numeric = pd.to_numeric(present, errors="coerce")
            if numeric.isna().any():
                example = present[numeric.isna()].iloc[0]
                raise DataError(
                    f"target column {name!r} is not numeric (e.g. {example!r}); "
                    "use --task classification for class labels"
                )
            present = numeric
        values = present.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError(f"target column {name!r} has infinite values")
        if np.ptp(values) == 0:
            raise DataError(f"target column {name!r} is constant; nothing to learn")
        return Target(task="regression", y=values, classes=None, keep=keep)
    labels = [json_label(v) for v in present.to_numpy(dtype=object)]
    distinct = set(labels)
    if len(distinct) < 2:
        raise DataError(
            f"target column {name!r} has a single class {labels[0]!r}; classification needs two"
        )
    if len(distinct) > MAX_CLASSES:
        if is_numeric_column(present):
            raise DataError(
                f"target column {name!r} has {len(distinct)} distinct values, more than "
                f"{MAX_CLASSES} classes; use --task regression for a numeric target"
            )
        raise DataError(
            f"target column {name!r}: too many classes ({len(distinct)}, at most "
            f"{MAX_CLASSES}) for classification; is this an ID column? choose another --target"
        )
    all_numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    classes = tuple(sorted(distinct, key=_number_key if all_numbers else str))
    index = {label: i for i, label in enumerate(classes)}
    y = np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    return Target(task="classification", y=y, classes=classes, keep=keep)


@dataclass(frozen=True, kw_only=True)
class Split:
    train: npt.NDArray[np.intp]
    holdout: npt.NDArray[np.intp]
    stratified: bool


def holdout_size(rows: int) -> int:
    return max(1, min(MAX_HOLDOUT_ROWS, math.ceil(rows * HOLDOUT_FRACTION)))


def _minimum_rows() -> int:
    """The fewest labelled rows the pipeline can train and judge a model on: a holdout
    of :data:`MIN_SCORED_ROWS` or more, and training rows enough for every one of the
    :data:`~training_job.search.SMALL_DATA_FOLDS` cross-validation folds to score
    :data:`MIN_SCORED_ROWS` (13 with the defaults: 10 to cross-validate, 3 held out)."""
    rows = 1
    while (
        holdout_size(rows) < MIN_SCORED_ROWS
        or rows - holdout_size(rows) < SMALL_DATA_FOLDS * MIN_SCORED_ROWS
    ):
        rows += 1
    return rows


MIN_ROWS = _minimum_rows()


def require_enough_rows(rows: int, *, source: str, target: str) -> None:
    """:class:`DataError` (checked before anything else about the target) if ``rows``
    labelled rows are too few to split, cross-validate and compare on a holdout."""
    if rows < MIN_ROWS:
        plural = "row has" if rows == 1 else "rows have"
        raise DataError(
            f"{source}: only {rows} {plural} a value in target column {target!r}; training "
            f"needs at least {MIN_ROWS} ({holdout_size(MIN_ROWS)} held out to compare "
            f"models, the rest cross-validated in {SMALL_DATA_FOLDS} folds)"
        )


def split_rows(y: npt.NDArray[Any], *, task: Task, seed: int) -> Split:
    """Seeded train/holdout split of row positions; stratified when every class allows it."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    rows = len(y)
    if rows < MIN_ROWS:
        raise DataError(f"only {rows} labelled rows; need at least {MIN_ROWS}")
    test_size = holdout_size(rows)
    positions = np.arange(rows)
    stratify = None
    if task == "classification":
        counts = np.bincount(y)
        present = counts[counts > 0]
        if present.min() >= 2 and test_size >= len(present) and rows - test_size >= len(present):
            stratify = y
    train, holdout = train_test_split(
        positions, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify
    )
    return Split(train=np.sort(train), holdout=np.sort(holdout), stratified=stratify is not None)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def baseline_stats(
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    *,
    y: npt.NDArray[Any],
    classes: Sequence[JsonScalar] | None,
) -> dict[str, Any]:
    """Per-feature (and target) statistics of the training rows, for drift monitoring."""
    stats: dict[str, Any] = {}
    rows = len(frame)
    for spec in features:
        series = frame[spec.name]
        missing = float(series.isna().mean()) if rows else 0.0
        if spec.kind == "numeric":
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            values = values[np.isfinite(values)]
            if len(values) == 0:
                stats[spec.name] = {"kind": "numeric", "count": 0, "missing_fraction": missing}
                continue
            quantiles = np.quantile(values, QUANTILES)
            stats[spec.name] = {
                "kind": "numeric",
                "count": len(values),
                "missing_fraction": missing,
                "mean": _finite(float(values.mean())),
                "std": _finite(float(values.std())),
                "min": float(values.min()),
                "max": float(values.max()),
                "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
                # The monitor's PSI buckets (mlsys.monitoring.drift).
                "bins": numeric_baseline(values),
            }
        else:
            counts = pd.Series(categorical_strings(series)).value_counts(normalize=True)
            top = counts.head(TOP_CATEGORIES)
            stats[spec.name] = {
                "kind": "categorical",
                "count": rows,
                "missing_fraction": float(counts.get(MISSING_CATEGORY, 0.0)),
                "frequencies": {str(k): float(v) for k, v in top.items()},
                "other_fraction": round(float(max(0.0, 1.0 - top.sum())), 12),
            }
    if classes is None:
        target_stats: dict[str, Any] = {
            "mean": float(y.mean()),
            "std": float(y.std()),
            "quantiles": {
                str(q): float(v) for q, v in zip(QUANTILES, np.quantile(y, QUANTILES), strict=True)
            },
        }
    else:
        counts_by_class = np.bincount(y, minlength=len(classes)) / max(1, len(y))
        target_stats = {
            "class_frequencies": {
                str(label): float(f) for label, f in zip(classes, counts_by_class, strict=True)
            }
        }
    return {"features": stats, "target": target_stats, "rows": len(y)}


def prediction_baseline(scores: Any, *, classes: Sequence[JsonScalar] | None) -> dict[str, Any]:
    """The holdout's prediction distribution, the monitor's prediction-drift baseline:
    quantile bins of regression outputs, or predicted class frequencies."""
    if classes is None:
        values = np.asarray(scores.values, dtype=np.float64)
        return {"kind": "numeric", "missing_fraction": 0.0, "bins": numeric_baseline(values)}
    labels = np.asarray(scores.labels)
    known = labels[labels >= 0]
    shares = np.bincount(known, minlength=len(classes)) / max(1, len(labels))
    return {
        "kind": "categorical",
        "frequencies": {
            categorical_value(label): float(share)
            for label, share in zip(classes, shares, strict=True)
        },
        "other_fraction": float(np.mean(labels < 0)) if len(labels) else 0.0,
    }


@dataclass(frozen=True, kw_only=True)
class SchemaComparison:
    """How the new data and challenger relate to the champion's card."""

    champion_can_score: bool
    change: str | None
    """Human-readable description of the difference (``None``: same schema)."""


def compare_schema(
    champion: ModelCard,
    *,
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    task: Task,
    target: str,
) -> SchemaComparison:
    """Can the champion score ``frame``, and do the challenger's inputs differ from its?"""
    if champion.task != task:
        return SchemaComparison(
            champion_can_score=False, change=f"task changed from {champion.task} to {task}"
        )
    if champion.target != target:
        return SchemaComparison(
            champion_can_score=False,
            change=f"target changed from {champion.target!r} to {target!r}",
        )
    missing = [f.name for f in champion.features if f.name not in frame.columns]
    if missing:
        return SchemaComparison(
            champion_can_score=False,
            change="the new data lacks the champion's input column(s) "
            + ", ".join(repr(m) for m in missing),
        )
    now_text = [
        f.name
        for f in champion.features
        if f.kind == "numeric" and not is_numeric_column(frame[f.name])
    ]
    if now_text:
        return SchemaComparison(
            champion_can_score=False,
            change="numeric input column(s) of the champion now hold text: "
            + ", ".join(repr(m) for m in now_text),
        )
    differences = schema_changes(champion, task=task, target=target, features=features)
    return SchemaComparison(
        champion_can_score=True,
        change="; ".join(differences) if differences else None,
    )
