"""A small, time-bounded model search with cross-validation.

Candidates run cheapest first (a linear model always completes, so there is
always a challenger). The search works on at most :data:`MAX_SEARCH_ROWS`
training rows and gets :data:`SEARCH_SHARE` of the time budget; cross-validation
runs fold by fold and abandons a candidate whose projected time no longer fits.
The winner is then refit on all training rows, or on as many as its measured
fit time projects to fit in the rest of the budget.

Only estimators skl2onnx converts are candidates (not HistGradientBoosting:
skl2onnx 1.20 cannot convert it with scikit-learn 1.9). Tree models are capped
in size so the exported graph stays within the model-size guardrail even on
millions of rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsys.contract import FeatureSpec, Task
from mlsys.errors import MlsysError
from training_job.evaluation import Metric

MAX_SEARCH_ROWS = 20_000
SEARCH_SHARE = 0.4
"""Fraction of the time budget the search may use; the rest is for the final fit."""
SMALL_DATA_ROWS = 2_000
"""Below this, :data:`SMALL_DATA_FOLDS`-fold cross-validation (cheap and less noisy);
above, :data:`LARGE_DATA_FOLDS`-fold."""
SMALL_DATA_FOLDS = 5
LARGE_DATA_FOLDS = 3


class TrainingFailedError(MlsysError):
    """No candidate model could be trained (an operational failure, exit 1: the data passed
    validation, so the cause is the estimators or the machine, not the user's input)."""

    code = "training_failed"


def _linear(task: Task, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

    if task == "regression":
        return Ridge(alpha=1.0)
    return LogisticRegression(max_iter=1000, random_state=seed)


def _random_forest(task: Task, seed: int) -> Any:
    from sklearn.ensemble import (  # noqa: PLC0415
        RandomForestClassifier,
        RandomForestRegressor,
    )

    params: dict[str, Any] = {
        "n_estimators": 50,
        "max_depth": 10,
        "min_samples_leaf": 2,
        "n_jobs": -1,
        "random_state": seed,
    }
    if task == "regression":
        return RandomForestRegressor(**params)
    return RandomForestClassifier(**params)


def _gradient_boosting(task: Task, seed: int) -> Any:
    from sklearn.ensemble import (  # noqa: PLC0415
        GradientBoostingClassifier,
        GradientBoostingRegressor,
    )

    params: dict[str, Any] = {
        "n_estimators": 100,
        "max_depth": 3,
        "learning_rate": 0.1,
        "random_state": seed,
    }
    if task == "regression":
        return GradientBoostingRegressor(**params)
    return GradientBoostingClassifier(**params)


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[Task, int], Any]
    scale_numeric: bool
    """Standardise numeric inputs (linear models need it; trees do not, and skipping it
    keeps tree inputs bit-identical between scikit-learn and onnxruntime)."""
    cost_exponent: float
    """Fit time grows roughly like rows ** exponent (used to project the final fit)."""


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate("linear", _linear, scale_numeric=True, cost_exponent=1.0),
        Candidate("random_forest", _random_forest, scale_numeric=False, cost_exponent=1.2),
        Candidate("gradient_boosting", _gradient_boosting, scale_numeric=False, cost_exponent=1.2),
    )
}
DEFAULT_CANDIDATES: tuple[str, ...] = tuple(CANDIDATES)


def build_pipeline(
    candidate: Candidate, features: Sequence[FeatureSpec], task: Task, seed: int
) -> Any:
    """Preprocessing + estimator, on columns named by the features' ONNX input names."""
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415
    from sklearn.impute import SimpleImputer  # noqa: PLC0415
    from sklearn.pipeline import Pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: PLC0415

    numeric = [f.input_name for f in features if f.kind == "numeric"]
    categorical = [f.input_name for f in features if f.kind == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if candidate.scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        # Missing categories arrive as "" (the contract's encoding) and are a category of
        # their own; categories never seen in training encode as all zeros.
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            )
        )
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("model", candidate.build(task, seed))])


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    name: str
    status: str
    """``ok``, ``partial`` (fewer folds, time budget), ``skipped`` or ``failed``."""
    cv_score: float | None = None
    cv_scores: tuple[float, ...] = ()
    fit_seconds: float | None = None
    """Mean fit time of one fold."""
    fold_rows: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "cv_score": self.cv_score,
            "cv_scores": list(self.cv_scores),
            "fit_seconds": self.fit_seconds,
            "fold_rows": self.fold_rows,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    best: Candidate
    pipeline: Any
    """The winner, fitted on ``final_rows`` training rows."""
    candidates: tuple[CandidateResult, ...]
    search_rows: int
    final_rows: int
    search_seconds: float
    fit_seconds: float
    class_indices: npt.NDArray[np.int64] | None = None
    """Classification: which of the data's classes the model knows, in its label order."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.best.name,
            "candidates": [c.to_dict() for c in self.candidates],
            "search_rows": self.search_rows,
            "final_fit_rows": self.final_rows,
            "search_seconds": self.search_seconds,
            "final_fit_seconds": self.fit_seconds,
            "notes": list(self.notes),
        }


def _folds(y: npt.NDArray[Any], task: Task, seed: int) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold  # noqa: PLC0415

    splits = SMALL_DATA_FOLDS if len(y) < SMALL_DATA_ROWS else LARGE_DATA_FOLDS
    if task == "classification":
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        if smallest >= 2:
            return StratifiedKFold(n_splits=min(splits, smallest), shuffle=True, random_state=seed)
    return KFold(n_splits=splits, shuffle=True, random_state=seed)


def projected_rows(
    *, fold_rows: int, fold_seconds: float, budget_seconds: float, exponent: float, available: int
) -> int:
    """How many rows a fit measured at ``fold_rows`` can use within ``budget_seconds``."""
    if fold_seconds <= 0.0:
        return available
    scale = (max(budget_seconds, 0.0) / fold_seconds) ** (1.0 / exponent)
    rows = int(fold_rows * scale)
    if rows >= available:
        return available
    # Two significant figures: the row count is recorded and reported, keep it readable.
    digits = max(0, len(str(rows)) - 2)
    rows = (rows // 10**digits) * 10**digits
    return int(max(min(fold_rows, available), rows))


def _subsample(rows: int, limit: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    if rows <= limit:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=limit, replace=False))


def _cross_validate(
    candidate: Candidate,
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    folds: Sequence[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]],
    features: Sequence[FeatureSpec],
    task: Task,
    metric: Metric,
    seed: int,
    deadline: float | None,
    clock: Callable[[], float],
) -> CandidateResult:
    """Fold by fold; stops early (``partial``) once the remaining folds would pass ``deadline``."""
    from sklearn.metrics import get_scorer  # noqa: PLC0415

    scorer = get_scorer(metric.sklearn_scoring)
    scores: list[float] = []
    fit_times: list[float] = []
    status, detail = "ok", ""
    for fold, (train_idx, test_idx) in enumerate(folds):
        model = build_pipeline(candidate, features, task, seed)
        fit_started = clock()
        try:
            model.fit(x.iloc[train_idx], y[train_idx])
            fit_times.append(clock() - fit_started)
            scores.append(float(scorer(model, x.iloc[test_idx], y[test_idx])))
        except (ValueError, ArithmeticError, MemoryError) as exc:
            return CandidateResult(
                name=candidate.name, status="failed", detail=f"{type(exc).__name__}: {exc}"
            )
        remaining = len(folds) - fold - 1
        if (
            deadline is not None
            and remaining
            and clock() + remaining * (clock() - fit_started) > deadline
        ):
            status = "partial"
            detail = f"{fold + 1} of {len(folds)} folds within the search time budget"
            break
    # scikit-learn scorers are "greater is better"; report the metric's own sign.
    sign = 1.0 if metric.higher_is_better else -1.0
    cv_scores = tuple(sign * v for v in scores)
    return CandidateResult(
        name=candidate.name,
        status=status,
        cv_score=float(np.mean(cv_scores)),
        cv_scores=cv_scores,
        fit_seconds=float(np.mean(fit_times)),
        fold_rows=len(folds[0][0]),
        detail=detail,
    )


def search(
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    features: Sequence[FeatureSpec],
    task: Task,
    metric: Metric,
    seed: int,
    time_budget_seconds: float,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Cross-validate the candidates on (a sample of) ``x`` and fit the best one."""
    started = clock()
    search_deadline = started + time_budget_seconds * SEARCH_SHARE
    deadline = started + time_budget_seconds
    rng = np.random.default_rng(seed)
    sample = _subsample(len(y), MAX_SEARCH_ROWS, rng)
    x_search, y_search = x.iloc[sample], y[sample]
    folds = list(_folds(y_search, task, seed).split(x_search, y_search))
    results: list[CandidateResult] = []
    best: tuple[float, Candidate, CandidateResult] | None = None
    sign = 1.0 if metric.higher_is_better else -1.0
    for name in candidates:
        candidate = CANDIDATES[name]
        if best is not None and clock() >= search_deadline:
            results.append(
                CandidateResult(name=name, status="skipped", detail="search time budget used up")
            )
            continue
        result = _cross_validate(
            candidate,
            x_search,
            y_search,
            folds=folds,
            features=features,
            task=task,
            metric=metric,
            seed=seed,
            deadline=search_deadline if best is not None else None,
            clock=clock,
        )
        results.append(result)
        if result.cv_score is None:
            continue
        comparable = sign * result.cv_score  # greater is better
        if best is None or comparable > best[0]:
            best = (comparable, candidate, result)

    if best is None:
        failures = "; ".join(f"{r.name}: {r.detail}" for r in results)
        raise TrainingFailedError(f"every candidate model failed to train ({failures})")
    _, winner, measured = best
    search_seconds = clock() - started
    return _final_fit(
        winner,
        measured,
        x,
        y,
        features=features,
        task=task,
        seed=seed,
        rng=rng,
        budget_seconds=deadline - clock(),
        time_budget_seconds=time_budget_seconds,
        results=tuple(results),
        search_rows=len(sample),
        search_seconds=search_seconds,
        clock=clock,
    )


def _final_fit(
    winner: Candidate,
    measured: CandidateResult,
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    features: Sequence[FeatureSpec],
    task: Task,
    seed: int,
    rng: np.random.Generator,
    budget_seconds: float,
    time_budget_seconds: float,
    results: tuple[CandidateResult, ...],
    search_rows: int,
    search_seconds: float,
    clock: Callable[[], float],
) -> SearchResult:
    """Fit the winner on all training rows, or on as many as the rest of the budget allows."""
    notes: list[str] = []
    final_rows = projected_rows(
        fold_rows=measured.fold_rows,
        fold_seconds=measured.fit_seconds or 0.0,
        budget_seconds=budget_seconds,
        exponent=winner.cost_exponent,
        available=len(y),
    )
    if final_rows < len(y):
        notes.append(
            f"final fit on {final_rows} of {len(y)} training rows to stay within the "
            f"{time_budget_seconds:g}s time budget"
        )
        rows = _subsample(len(y), final_rows, rng)
        x_final, y_final = x.iloc[rows], y[rows]
    else:
        x_final, y_final = x, y
    class_indices: npt.NDArray[np.int64] | None = None
    if task == "classification":
        # The exported label output must index the card's classes densely, so classes
        # absent from the final rows (rare ones, after subsampling) are left out.
        class_indices = np.unique(y_final).astype(np.int64)
        y_final = np.searchsorted(class_indices, y_final)
    pipeline = build_pipeline(winner, features, task, seed)
    fit_started = clock()
    pipeline.fit(x_final, y_final)
    return SearchResult(
        best=winner,
        pipeline=pipeline,
        candidates=results,
        search_rows=search_rows,
        final_rows=len(y_final),
        search_seconds=search_seconds,
        fit_seconds=clock() - fit_started,
        class_indices=class_indices,
        notes=notes,
    )


def estimator_params(pipeline: Any) -> dict[str, Any]:
    """JSON-friendly parameters of the fitted estimator, for the model card."""
    params = pipeline.named_steps["model"].get_params()
    return {
        k: v if v is None or isinstance(v, bool | int | float | str) else repr(v)
        for k, v in sorted(params.items())
    }
