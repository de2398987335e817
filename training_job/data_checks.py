"""Data checks before training: refusals for ambiguous input, warnings for suspicious data.

Refused (:class:`~mlsys.errors.DataError`, exit 2, nothing written):

* duplicate column names -- pandas would silently rename the second ``age`` to
  ``age.1``, and a model would then be trained (and served) on a column that does not
  exist under that name anywhere;
* a target with one distinct value (in :func:`training_job.schema.prepare_target`).

Warned about (recorded in the model card's ``data.checks`` and the run's notes, printed
by ``mlsys train``): constant columns, columns with more than half their values missing,
and -- when a champion exists -- features whose range or category set moved far from
the champion's training statistics (``baseline_stats`` in its card).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlsys.contract import FeatureSpec
from mlsys.errors import DataError
from training_job.schema import categorical_strings, is_numeric_column

MAX_MISSING_FRACTION = 0.5
DRIFT_STD_SHIFT = 3.0
"""A numeric feature whose mean moved by more than this many champion standard
deviations has drifted."""
DRIFT_RANGE_FACTOR = 1.0
"""... or whose range reaches beyond the champion's by more than this many champion ranges."""
DRIFT_UNSEEN_SHARE = 0.25
"""A categorical feature with more than this share of rows in categories the champion
never saw has drifted."""


def reject_duplicate_columns(
    path: Path, *, compression: Literal["gzip"] | None, sep: str, source: str
) -> None:
    """:class:`DataError` naming the repeated header names of the CSV at ``path``, if any."""
    header = pd.read_csv(path, compression=compression, sep=sep, header=None, nrows=1, dtype=str)
    names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(n) for n in repeated[:10])
        raise DataError(
            f"{source} has duplicate column names ({shown}); rename them so each is unique"
        )


@dataclass(frozen=True, kw_only=True)
class DataWarning:
    check: str
    column: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "column": self.column, "detail": self.detail}

    def line(self) -> str:
        return f"data check {self.check}: column {self.column!r} {self.detail}"


def column_warnings(frame: pd.DataFrame, *, target: str) -> list[DataWarning]:
    """Constant and mostly-missing feature columns."""
    found: list[DataWarning] = []
    rows = len(frame)
    for name in frame.columns:
        if name == target or rows == 0:
            continue
        series = frame[name]
        missing = float(series.isna().mean())
        if missing > MAX_MISSING_FRACTION:
            found.append(
                DataWarning(
                    check="mostly_missing",
                    column=str(name),
                    detail=f"is {missing:.0%} missing (more than {MAX_MISSING_FRACTION:.0%})",
                )
            )
        present = series.dropna()
        if len(present) and _single_value(present):
            found.append(
                DataWarning(
                    check="constant",
                    column=str(name),
                    detail=f"has a single value ({str(present.iloc[0])[:40]!r}); it cannot help",
                )
            )
    return found


FEW_DISTINCT = 16
"""Above this many distinct values a column is not constant, whatever their text."""


def _single_value(present: pd.Series[Any]) -> bool:
    """Whether every value reads the same (``1`` and ``"1"`` do). The distinct values are
    found by hashing first: rendering a million floats as text took 2 s per column."""
    distinct = pd.unique(present.to_numpy())
    if len(distinct) <= 1:
        return True
    return len(distinct) <= FEW_DISTINCT and pd.Series(distinct).astype(str).nunique() == 1


def _numeric_drift(name: str, values: np.ndarray[Any, Any], old: Mapping[str, Any]) -> str | None:
    values = values[np.isfinite(values)]
    low, high, mean, std = old.get("min"), old.get("max"), old.get("mean"), old.get("std")
    if not len(values) or not all(isinstance(v, int | float) for v in (low, high, mean)):
        return None
    low, high, mean = float(low), float(high), float(mean)  # type: ignore[arg-type]
    new_mean = float(values.mean())
    if isinstance(std, int | float) and std > 0 and abs(new_mean - mean) > DRIFT_STD_SHIFT * std:
        return (
            f"mean moved from {mean:.4g} to {new_mean:.4g} "
            f"(more than {DRIFT_STD_SHIFT:g} champion standard deviations)"
        )
    span = max(high - low, 1e-12)
    new_low, new_high = float(values.min()), float(values.max())
    if new_high > high + DRIFT_RANGE_FACTOR * span or new_low < low - DRIFT_RANGE_FACTOR * span:
        return (
            f"range [{new_low:.4g}, {new_high:.4g}] reaches far beyond the champion's "
            f"[{low:.4g}, {high:.4g}]"
        )
    return None


def _categorical_drift(series: pd.Series[Any], old: Mapping[str, Any]) -> str | None:
    frequencies = old.get("frequencies")
    if not isinstance(frequencies, Mapping) or float(old.get("other_fraction", 0.0)) > 0.0:
        return None  # the champion's category set is not fully known
    values = pd.Series(categorical_strings(series))
    unseen = ~values.isin(set(frequencies))
    share = float(unseen.mean()) if len(values) else 0.0
    if share <= DRIFT_UNSEEN_SHARE:
        return None
    examples = ", ".join(repr(v) for v in values[unseen].unique()[:5])
    return f"{share:.0%} of rows have categories the champion never saw ({examples})"


def drift_warnings(
    frame: pd.DataFrame, features: Sequence[FeatureSpec], champion_stats: Mapping[str, Any]
) -> list[DataWarning]:
    """Features whose range or category set moved far from the champion's training data."""
    old_features = champion_stats.get("features")
    if not isinstance(old_features, Mapping):
        return []
    found: list[DataWarning] = []
    for spec in features:
        old = old_features.get(spec.name)
        if not isinstance(old, Mapping) or spec.name not in frame.columns:
            continue
        series = frame[spec.name]
        if old.get("kind") == "numeric" and spec.kind == "numeric" and is_numeric_column(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            detail = _numeric_drift(spec.name, values, old)
        elif old.get("kind") == "categorical" and spec.kind == "categorical":
            detail = _categorical_drift(series, old)
        else:
            continue
        if detail is not None:
            found.append(DataWarning(check="drift", column=spec.name, detail=detail))
    return found
