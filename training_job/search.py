"""A small, time-bounded model search with cross-validation, then one final fit.

Candidates run cheapest first (a linear model always completes, so there is
always a challenger). The search works on at most :data:`MAX_SEARCH_ROWS`
training rows and the time budget governs it alone: cross-validation runs fold
by fold and abandons a candidate whose projected time no longer fits. The
winner is then fitted on every training row (or the user's row cap): the final
fit is not cut short to meet the budget. Candidates whose measured fit time
projects a final fit beyond :data:`FINAL_FIT_LIMIT_FACTOR` times the budget
cannot win (scikit-learn's boosting on millions of rows would take hours where
LightGBM takes minutes).

Only estimators skl2onnx converts are candidates (not HistGradientBoosting:
skl2onnx 1.20 cannot convert it with scikit-learn 1.9; LightGBM through
onnxmltools' converter, :mod:`training_job.lgbm_onnx`). Tree models are capped
in size so the exported graph stays within the model-size guardrail even on
millions of rows.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsys.contract import FeatureSpec, Task
from mlsys.errors import MlsysError
from mlsys.metrics import Metric

MAX_SEARCH_ROWS = 20_000
FINAL_FIT_LIMIT_FACTOR = 10.0
"""A candidate whose projected final fit on all rows exceeds this many time budgets cannot
win (it is reported with status ``too_slow``); the search's first candidate always can."""
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


def _lightgbm(task: Task, seed: int) -> Any:
    # libgomp's default wait policy spins on its barriers: on a machine whose cores are
    # shared with other processes, that made one 200,000-row fit 8x slower (87 s instead
    # of 11 s with one thread, 14.5 s with two passive threads). Set before lightgbm (and
    # with it libgomp) is first imported; an explicit setting by the user wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from lightgbm import LGBMClassifier, LGBMRegressor  # noqa: PLC0415

    params: dict[str, Any] = {
        "n_estimators": 300,
        "num_leaves": 63,
        "learning_rate": 0.1,
        "min_child_samples": 20,
        "random_state": seed,
        "verbose": -1,
    }
    if task == "regression":
        return LGBMRegressor(**params)
    return LGBMClassifier(**params)


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[Task, int], Any]
    scale_numeric: bool
    """Standardise numeric inputs (linear models need it; trees do not, and skipping it
    keeps tree inputs bit-identical between scikit-learn and onnxruntime)."""
    cost_exponent: float
    """Fit time grows roughly like rows ** exponent (used to project the final fit)."""
    impute_numeric: bool = True
    """Fill missing numbers with the median; LightGBM learns where missing values go
    instead (and its converter keeps that in the graph)."""
    matrix_dtype: Any = np.float64
    """Dtype of the preprocessed matrix: float32 halves LightGBM's input on large data
    (the ONNX graph computes in float32 either way)."""
    chunked_transform: bool = False
    """The preprocessing learns nothing but the category sets, so the final fit may fit it
    on one row per category and build the model's matrix chunk by chunk (see
    :func:`fit_in_chunks`) instead of through ``Pipeline.fit``'s whole-data copies."""


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate("linear", _linear, scale_numeric=True, cost_exponent=1.0),
        Candidate(
            "lightgbm",
            _lightgbm,
            scale_numeric=False,
            # Measured: a 13,300-row fold in 1.4-2.6 s, 900,000 rows in 37 s, 9,900,000 in
            # ~135 s (exponents 0.64 and 0.69): per-tree costs dominate small fits.
            cost_exponent=0.7,
            impute_numeric=False,
            matrix_dtype=np.float32,
            chunked_transform=True,
        ),
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
    if numeric and not candidate.impute_numeric:
        transformers.append(("numeric", "passthrough", numeric))
    elif numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if candidate.scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        # Missing categories arrive as "" (the contract's encoding) and are a category of
        # their own; categories never seen in training encode as all zeros. LightGBM gets
        # the same one-hot columns rather than its own categorical splits: see
        # docs/training.md ("Categorical columns and LightGBM") for the measurements.
        transformers.append(
            (
                "categorical",
                OneHotEncoder(
                    handle_unknown="ignore", sparse_output=False, dtype=candidate.matrix_dtype
                ),
                categorical,
            )
        )
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("model", candidate.build(task, seed))])


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    name: str
    status: str
    """``ok``, ``partial`` (fewer folds, time budget), ``too_slow`` (projected final fit
    beyond the limit), ``skipped`` or ``failed``."""
    cv_score: float | None = None
    cv_scores: tuple[float, ...] = ()
    fit_seconds: float | None = None
    """Mean fit time of one fold."""
    fold_rows: int = 0
    projected_fit_seconds: float | None = None
    """The final fit's projected time on all the rows it would use."""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "cv_score": self.cv_score,
            "cv_scores": list(self.cv_scores),
            "fit_seconds": self.fit_seconds,
            "fold_rows": self.fold_rows,
            "projected_fit_seconds": self.projected_fit_seconds,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    best: Candidate
    pipeline: Any
    """The winner, fitted on ``fit_rows`` training rows."""
    candidates: tuple[CandidateResult, ...]
    search_rows: int
    training_rows: int
    """Training rows available (labelled rows minus the holdout)."""
    fit_rows: int
    """Rows the final model was fitted on: ``training_rows`` unless a row cap applies."""
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
            "training_rows": self.training_rows,
            "fit_rows": self.fit_rows,
            "search_seconds": self.search_seconds,
            "final_fit_seconds": self.fit_seconds,
            "notes": list(self.notes),
        }


class SearchObserver(Protocol):
    """What the search tells as it goes (:mod:`training_job.progress` prints it)."""

    def search_started(
        self,
        *,
        candidates: Sequence[str],
        search_rows: int,
        training_rows: int,
        folds: int,
        budget_seconds: float,
        metric: str,
    ) -> None: ...

    def candidate_started(self, name: str) -> None: ...

    def candidate_finished(self, result: CandidateResult) -> None: ...

    def final_fit_started(
        self, name: str, *, rows: int, projected_seconds: float | None
    ) -> None: ...

    def final_fit_finished(self, seconds: float) -> None: ...


class SilentObserver:
    """A :class:`SearchObserver` that says nothing (the default)."""

    def search_started(
        self,
        *,
        candidates: Sequence[str],
        search_rows: int,
        training_rows: int,
        folds: int,
        budget_seconds: float,
        metric: str,
    ) -> None:
        return None

    def candidate_started(self, name: str) -> None:
        return None

    def candidate_finished(self, result: CandidateResult) -> None:
        return None

    def final_fit_started(self, name: str, *, rows: int, projected_seconds: float | None) -> None:
        return None

    def final_fit_finished(self, seconds: float) -> None:
        return None


SILENT = SilentObserver()
"""The observer of a search nobody watches (it holds no state)."""


def _folds(y: npt.NDArray[Any], task: Task, seed: int) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold  # noqa: PLC0415

    splits = SMALL_DATA_FOLDS if len(y) < SMALL_DATA_ROWS else LARGE_DATA_FOLDS
    if task == "classification":
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        if smallest >= 2:
            return StratifiedKFold(n_splits=min(splits, smallest), shuffle=True, random_state=seed)
    return KFold(n_splits=splits, shuffle=True, random_state=seed)


def projected_seconds(*, fold_rows: int, fold_seconds: float, rows: int, exponent: float) -> float:
    """Time of a fit on ``rows`` rows, from one measured on ``fold_rows`` rows."""
    if fold_rows <= 0 or rows <= fold_rows:
        return fold_seconds
    return float(fold_seconds * (rows / fold_rows) ** exponent)


def _subsample(rows: int, limit: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    if rows <= limit:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=limit, replace=False))


def _fit_errors() -> tuple[type[BaseException], ...]:
    """What a candidate's fit raises for data it cannot learn (anything else is a bug)."""
    errors: tuple[type[BaseException], ...] = (ValueError, ArithmeticError, MemoryError)
    try:
        from lightgbm.basic import LightGBMError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - lightgbm is a pinned training dependency
        return errors
    return (*errors, LightGBMError)


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
        except _fit_errors() as exc:
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


def _with_projection(
    result: CandidateResult, candidate: Candidate, *, fit_rows: int, limit_seconds: float
) -> CandidateResult:
    """Attach the projected final-fit time; ``too_slow`` when it exceeds ``limit_seconds``."""
    if result.cv_score is None or result.fit_seconds is None:
        return result
    seconds = projected_seconds(
        fold_rows=result.fold_rows,
        fold_seconds=result.fit_seconds,
        rows=fit_rows,
        exponent=candidate.cost_exponent,
    )
    if seconds <= limit_seconds:
        return replace(result, projected_fit_seconds=seconds)
    return replace(
        result,
        status="too_slow",
        projected_fit_seconds=seconds,
        detail=f"final fit on {fit_rows:,} rows projected at {seconds:.0f}s, over the "
        f"{limit_seconds:g}s limit ({FINAL_FIT_LIMIT_FACTOR:g} x the time budget)",
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
    max_fit_rows: int | None = None,
    release_rows: bool = False,
    clock: Callable[[], float] = time.monotonic,
    observer: SearchObserver | None = None,
) -> SearchResult:
    """Cross-validate the candidates on (a sample of) ``x`` and fit the best one on all rows
    (at most ``max_fit_rows``); ``observer`` hears of each candidate and the final fit. With
    ``release_rows`` the final fit may delete ``x``'s columns once copied into the model's
    matrix (the caller hands ``x`` over: on large data that saves a whole copy of the rows).

    ``clock`` is the only source of time: it decides when the budget is used up (candidates
    ``skipped``, folds cut short: ``partial``) and measures the fold fits that project the
    final fit (``too_slow``). With a clock that stands still, every candidate is judged on
    every fold and the winner depends on the data and ``seed`` alone, not on the machine's
    load: tests that assert a decision pin it so."""
    started = clock()
    rng = np.random.default_rng(seed)
    sample = _subsample(len(y), MAX_SEARCH_ROWS, rng)
    fit_rows = len(y) if max_fit_rows is None else min(len(y), max_fit_rows)
    results, winner = _compare(
        x.iloc[sample],
        y[sample],
        candidates=candidates,
        features=features,
        task=task,
        metric=metric,
        seed=seed,
        deadline=started + time_budget_seconds,
        fit_rows=fit_rows,
        limit_seconds=FINAL_FIT_LIMIT_FACTOR * time_budget_seconds,
        clock=clock,
        observer=observer or SILENT,
        training_rows=len(y),
    )
    return _final_fit(
        winner,
        x,
        y,
        features=features,
        task=task,
        seed=seed,
        rng=rng,
        fit_rows=fit_rows,
        release_rows=release_rows,
        results=results,
        search_rows=len(sample),
        search_seconds=clock() - started,
        clock=clock,
        observer=observer or SILENT,
    )


def _compare(
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    candidates: Sequence[str],
    features: Sequence[FeatureSpec],
    task: Task,
    metric: Metric,
    seed: int,
    deadline: float,
    fit_rows: int,
    limit_seconds: float,
    clock: Callable[[], float],
    observer: SearchObserver,
    training_rows: int,
) -> tuple[tuple[CandidateResult, ...], Candidate]:
    """Each candidate's cross-validation result, and the best one that may win."""
    folds = list(_folds(y, task, seed).split(x, y))
    observer.search_started(
        candidates=candidates,
        search_rows=len(y),
        training_rows=training_rows,
        folds=len(folds),
        budget_seconds=deadline - clock(),
        metric=metric.name,
    )
    results: list[CandidateResult] = []
    best: tuple[float, Candidate] | None = None
    sign = 1.0 if metric.higher_is_better else -1.0
    for name in candidates:
        candidate = CANDIDATES[name]
        if best is not None and clock() >= deadline:
            results.append(_skipped(name, observer))
            continue
        observer.candidate_started(name)
        result = _cross_validate(
            candidate,
            x,
            y,
            folds=folds,
            features=features,
            task=task,
            metric=metric,
            seed=seed,
            deadline=deadline if best is not None else None,
            clock=clock,
        )
        # The first candidate always qualifies (there must be a winner): no time limit.
        limit = limit_seconds if best is not None else math.inf
        result = _with_projection(result, candidate, fit_rows=fit_rows, limit_seconds=limit)
        results.append(result)
        observer.candidate_finished(result)
        if result.cv_score is None or result.status == "too_slow":
            continue
        if best is None or sign * result.cv_score > best[0]:  # greater is better
            best = (sign * result.cv_score, candidate)
    if best is None:
        failures = "; ".join(f"{r.name}: {r.detail}" for r in results)
        raise TrainingFailedError(f"every candidate model failed to train ({failures})")
    return tuple(results), best[1]


def _skipped(name: str, observer: SearchObserver) -> CandidateResult:
    """A candidate the search had no time left for."""
    result = CandidateResult(name=name, status="skipped", detail="search time budget used up")
    observer.candidate_finished(result)
    return result


def _final_fit(
    winner: Candidate,
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    features: Sequence[FeatureSpec],
    task: Task,
    seed: int,
    rng: np.random.Generator,
    fit_rows: int,
    release_rows: bool,
    results: tuple[CandidateResult, ...],
    search_rows: int,
    search_seconds: float,
    clock: Callable[[], float],
    observer: SearchObserver,
) -> SearchResult:
    """Fit the winner on ``fit_rows`` training rows (all of them unless the user capped it)."""
    notes: list[str] = []
    if fit_rows < len(y):
        notes.append(
            f"final fit on {fit_rows} of {len(y)} training rows (a random sample: "
            "the row cap --max-fit-rows)"
        )
        rows = _subsample(len(y), fit_rows, rng)
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
    projected = next(r.projected_fit_seconds for r in results if r.name == winner.name)
    observer.final_fit_started(winner.name, rows=len(y_final), projected_seconds=projected)
    fit_started = clock()
    if winner.chunked_transform:
        fit_in_chunks(pipeline, x_final, y_final, features=features, release=release_rows)
    else:
        pipeline.fit(x_final, y_final)
    fit_seconds = clock() - fit_started
    observer.final_fit_finished(fit_seconds)
    return SearchResult(
        best=winner,
        pipeline=pipeline,
        candidates=results,
        search_rows=search_rows,
        training_rows=len(y),
        fit_rows=len(y_final),
        search_seconds=search_seconds,
        fit_seconds=fit_seconds,
        class_indices=class_indices,
        notes=notes,
    )


TRANSFORM_CHUNK_ROWS = 250_000


def category_cover(x: pd.DataFrame, features: Sequence[FeatureSpec]) -> npt.NDArray[np.intp]:
    """Row positions holding every value of every categorical column at least once (and
    row 0): fitting the one-hot encoder on them learns the same sorted categories as
    fitting it on all of ``x``."""
    rows = {0}
    for spec in features:
        if spec.kind == "categorical":
            column = pd.Series(x[spec.input_name].to_numpy(), copy=False)
            rows.update(np.flatnonzero(~column.duplicated().to_numpy()).tolist())
    return np.array(sorted(rows), dtype=np.intp)


def fit_in_chunks(
    pipeline: Any,
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    *,
    features: Sequence[FeatureSpec],
    release: bool = False,
) -> None:
    """Fit ``preprocess`` + ``model`` as ``pipeline.fit`` would, with one matrix in memory.

    ``Pipeline.fit`` materialises the preprocessed data twice over (column selections,
    then their concatenation). Here the preprocessing is fitted on :func:`category_cover`'s
    rows and a column-major float32 matrix (LightGBM reads it without a copy) is filled:
    passed-through columns one by one (with ``release``, each is then deleted from ``x``,
    so the matrix replaces them instead of adding to them), encoded ones
    :data:`TRANSFORM_CHUNK_ROWS` rows at a time.
    """
    preprocess, model = pipeline.named_steps["preprocess"], pipeline.named_steps["model"]
    preprocess.fit(x.iloc[category_cover(x, features)])
    width = len(preprocess.get_feature_names_out())
    matrix = np.empty((len(x), width), dtype=np.float32, order="F")
    passthrough = {name for name, step, _ in preprocess.transformers if step == "passthrough"}
    for name, transformer, columns in preprocess.transformers_:
        block = preprocess.output_indices_[name]
        if name in passthrough:
            for offset, column in enumerate(columns):
                matrix[:, block.start + offset] = x[column].to_numpy(dtype=np.float32)
                if release:
                    del x[column]
        elif block.stop > block.start:
            part = x[columns]
            for start in range(0, len(x), TRANSFORM_CHUNK_ROWS):
                stop = min(start + TRANSFORM_CHUNK_ROWS, len(x))
                matrix[start:stop, block] = transformer.transform(part.iloc[start:stop])
    model.fit(matrix, y)


def estimator_params(pipeline: Any) -> dict[str, Any]:
    """JSON-friendly parameters of the fitted estimator, for the model card."""
    params = pipeline.named_steps["model"].get_params()
    return {
        k: v if v is None or isinstance(v, bool | int | float | str) else repr(v)
        for k, v in sorted(params.items())
    }
