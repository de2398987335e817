"""One training run, end to end: data -> challenger -> fair comparison -> maybe promotion.

Order of effects, chosen so that a crash at any point leaves the champion serving:

1. Load and validate the data; resolve target, task and metric. Bad input raises
   :class:`DataError` / :class:`ConfigError` here, before anything is written.
2. Read the champion pointer (with its ETag): the decision is made against it.
3. Fit (search, then refit the winner), export to ONNX, evaluate challenger and
   champion on the same holdout through onnxruntime
   (:class:`mlsys.contract.LoadedModel`, exactly as served) with guardrails, and
   decide with the pure policy :func:`~training_job.policy.decide_promotion`.
4. Publish: build the model card once, with everything the run knows; register
   the immutable version (``model.onnx`` then ``card.json``) whether or not
   it is promoted, so every run's model can be inspected or promoted by hand.
5. If the policy says so, compare-and-swap the champion pointer against the pointer
   read in step 2; a concurrent promotion makes this run lose, never overwrite.
6. Record the run (``runs/<run_id>.json``) and append a ``training`` event to the
   system log, with the actual outcome. A run that fails after step 2 is recorded
   as failed (best effort) and re-raised.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd

from mlsys.contract import JsonScalar, LoadedModel, ModelCard
from mlsys.errors import ConcurrentUpdateError, ConfigError, DataError, MlsysError
from mlsys.eventlog import Event
from mlsys.metrics import Metric, Scores, all_metrics, resolve_metric
from mlsys.registry import ChampionPointer, ModelRegistry, RolloutMode, iso, new_version_id, utc_now
from mlsys.rollout.state import ROLLOUT_CHOICES, start_rollout
from mlsys.settings import GuardrailBudgets, TrainingSettings
from training_job import evaluation, guardrails, schema
from training_job.baseline import FloorEvidence, floor_evidence
from training_job.data import DEFAULT_SOURCE, Dataset, load_dataset
from training_job.data_checks import DataWarning, column_warnings, drift_warnings
from training_job.evaluation import BootstrapResult
from training_job.export import ExportedModel, export_onnx
from training_job.guardrails import GuardrailResult
from training_job.policy import (
    ChallengerMetrics,
    ChampionMetrics,
    Decision,
    PromotionPolicy,
    decide_promotion,
)
from training_job.progress import SilentProgress, TrainingProgress, format_seconds
from training_job.search import CANDIDATES, DEFAULT_CANDIDATES, SearchResult, estimator_params
from training_job.search import search as run_search

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class EventAppender(Protocol):
    """The part of :class:`mlsys.eventlog.EventLog` a run needs (lets the CLI open the log
    lazily, only once there is an outcome to write)."""

    def append(self, event: Event) -> None: ...


LIBRARIES = ("mlsys", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas")


def candidate_names(settings: TrainingSettings) -> tuple[str, ...]:
    """The candidate models to search; :class:`ConfigError` names unknown ones."""
    names = DEFAULT_CANDIDATES if settings.candidates is None else settings.candidates
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown or not names:
        raise ConfigError(
            f"unknown candidate model(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CANDIDATES)}"
        )
    return tuple(names)


@dataclass(kw_only=True)
class TrainingOutcome:
    """What a run did; ``to_dict()`` is the ``--json`` output, run record and event data.

    Everything about the challenger is read from its registered :attr:`card`, so the outcome
    cannot disagree with the registry; a run that failed before registering has no card.
    """

    run_id: str
    model_name: str
    promoted: bool
    reason: str
    code: str
    champion_version: str | None
    """The champion when the run started."""
    metric: str
    task: str
    target: str
    data: dict[str, Any]
    """``source``, ``sha256``, ``rows`` (labelled), ``train_rows``, ``holdout_rows``."""
    card: ModelCard | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    status: str = "completed"
    rollout: dict[str, Any] | None = None
    """The rollout this run started instead of promoting outright, if any."""

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        *,
        promotion: Decision,
        timings: dict[str, float],
        duration_seconds: float,
    ) -> TrainingOutcome:
        """The outcome of a completed run whose challenger ``card`` was registered."""
        data = card.data
        return cls(
            run_id=card.version,
            model_name=card.model_name,
            promoted=promotion.promote,
            reason=promotion.reason,
            code=promotion.code,
            champion_version=card.decision["champion_version"],
            metric=card.metric,
            task=card.task,
            target=card.target,
            data={
                "source": data["source"],
                "sha256": data["sha256"],
                "rows": data["labelled_rows"],
                "train_rows": data["train_rows"],
                "training_rows": data["training_rows"],
                "fit_rows": data["fit_rows"],
                "holdout_rows": data["holdout_rows"],
            },
            card=card,
            notes=[
                *(
                    f"column {name!r} is not used as a feature: {why}"
                    for name, why in data["dropped_columns"].items()
                ),
                *card.training["notes"],
            ],
            timings=timings,
            duration_seconds=duration_seconds,
        )

    @property
    def version(self) -> str | None:
        return self.card.version if self.card else None

    @property
    def challenger_metrics(self) -> dict[str, float]:
        return dict(self.card.metrics["challenger"]) if self.card else {}

    @property
    def champion_metrics(self) -> dict[str, float] | None:
        champion = self.card.metrics["champion"] if self.card else None
        return dict(champion) if champion is not None else None

    @property
    def challenger_score(self) -> float | None:
        return self.challenger_metrics.get(self.metric)

    @property
    def baseline_score(self) -> float | None:
        baseline = self.card.metrics.get("baseline") if self.card else None
        return baseline.get(self.metric) if isinstance(baseline, dict) else None

    @property
    def champion_score(self) -> float | None:
        return (self.champion_metrics or {}).get(self.metric)

    def _decision(self, key: str) -> Any:
        return self.card.decision.get(key) if self.card else None

    def to_dict(self) -> dict[str, Any]:
        card = self.card
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "status": self.status,
            "promoted": self.promoted,
            "reason": self.reason,
            "code": self.code,
            "version": self.version,
            "champion_version": self.champion_version,
            "metric": self.metric,
            "challenger_score": self.challenger_score,
            "champion_score": self.champion_score,
            "improvement": self._decision("improvement"),
            "task": self.task,
            "target": self.target,
            "estimator": card.training["estimator"] if card else None,
            "data": self.data,
            "guardrails": list(card.guardrails["checks"]) if card else [],
            "schema_change": self._decision("schema_change"),
            "bootstrap": self._decision("bootstrap"),
            "challenger_metrics": self.challenger_metrics,
            "champion_metrics": self.champion_metrics,
            "notes": self.notes,
            "timings": self.timings,
            "duration_seconds": self.duration_seconds,
            "baseline_score": self.baseline_score,
            "data_checks": list(card.data.get("checks", [])) if card else [],
            "rollout": self.rollout,
        }


@dataclass(frozen=True, kw_only=True)
class PreparedData:
    dataset: Dataset
    frame: pd.DataFrame
    """Rows with a usable target, original column names."""
    target_name: str
    target: schema.Target
    inferred: schema.Schema
    metric: Metric
    split: schema.Split
    left_out: tuple[str, ...] = ()
    """Columns the user left out with ``--drop``."""


def _task_choice(task: str) -> schema.TaskChoice:
    if task not in ("auto", "regression", "classification"):
        raise ConfigError(f"task must be auto, regression or classification, got {task!r}")
    return cast(schema.TaskChoice, task)


def prepare(settings: TrainingSettings, dataset: Dataset) -> PreparedData:
    """Every check of user input; raises :class:`DataError`/``ConfigError`` on bad input."""
    frame = dataset.frame
    # The default target is the last column the user did not leave out.
    kept = [c for c in frame.columns if c not in settings.drop_columns] or list(frame.columns)
    target_name = settings.target or dataset.default_target or str(kept[-1])
    if target_name not in frame.columns:
        columns = ", ".join(repr(c) for c in list(frame.columns)[:20])
        raise DataError(
            f"target column {target_name!r} not found in {dataset.source} (columns: {columns})"
        )
    frame = _drop_columns(frame, settings.drop_columns, source=dataset.source, target=target_name)
    if frame.shape[1] < 2:
        raise DataError(f"data set {dataset.source} has only the target column; no features")
    # Before the target's own checks: with too few rows, "a single class" or "constant"
    # would blame the values when the problem is the row count.
    schema.require_enough_rows(
        int(frame[target_name].notna().sum()), source=dataset.source, target=target_name
    )
    target = schema.prepare_target(frame[target_name], task=_task_choice(settings.task))
    # Without unlabelled rows no copy is made (a large frame would briefly exist twice).
    labelled = frame if target.keep.all() else frame.loc[target.keep].reset_index(drop=True)
    inferred = schema.infer_schema(labelled, target=target_name)
    metric = resolve_metric(settings.metric, target.task)
    split = schema.split_rows(target.y, task=target.task, seed=settings.seed)
    return PreparedData(
        dataset=dataset,
        frame=labelled,
        target_name=target_name,
        target=target,
        inferred=inferred,
        metric=metric,
        split=split,
        left_out=tuple(settings.drop_columns),
    )


DROPPED_BY_USER = "left out with --drop"


def _drop_columns(
    frame: pd.DataFrame, columns: Sequence[str], *, source: str, target: str
) -> pd.DataFrame:
    """``frame`` without the columns the user left out; a name it lacks is bad input."""
    if not columns:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        available = ", ".join(repr(c) for c in list(frame.columns)[:20])
        raise DataError(
            f"--drop: no column {', '.join(repr(c) for c in missing)} in {source} "
            f"(columns: {available})"
        )
    if target in columns:
        raise DataError(f"--drop: {target!r} is the target column; it cannot be left out")
    return frame.drop(columns=list(dict.fromkeys(columns)))


def git_commit(start: Path | None = None) -> str | None:
    """The checked-out commit, read from ``.git`` directly (no git binary in the image)."""
    here = (start or Path(__file__)).resolve()
    for directory in (here, *here.parents):
        head = directory / ".git" / "HEAD"
        if not head.is_file():
            continue
        try:
            content = head.read_text().strip()
            if not content.startswith("ref: "):
                return content or None
            ref = content[5:]
            ref_file = directory / ".git" / ref
            if ref_file.is_file():
                return ref_file.read_text().strip() or None
            packed = directory / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        except OSError:
            return None
        return None
    return None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class _Fitted:
    result: SearchResult
    classes: tuple[JsonScalar, ...] | None
    """Class labels in the order of the model's probability columns."""


@dataclass(frozen=True)
class _Exported:
    model: ExportedModel
    challenger: LoadedModel
    """The exported graph in onnxruntime, exactly as it will be served."""


@dataclass(frozen=True)
class _Evaluation:
    challenger_metrics: dict[str, float]
    challenger_score: float
    champion_metrics: dict[str, float] | None
    champion: ChampionMetrics | None
    checks: list[GuardrailResult]
    bootstrap: BootstrapResult | None
    prediction_baseline: dict[str, Any] = field(default_factory=dict)
    """The holdout's prediction distribution (the monitor's prediction-drift baseline)."""
    baseline_score: float | None = None
    """The trivial baseline on the same holdout (the quality floor)."""
    baseline_bootstrap: BootstrapResult | None = None


def _sklearn_parity(
    prepared: PreparedData,
    result: SearchResult,
    holdout: pd.DataFrame,
    challenger: LoadedModel,
    budgets: GuardrailBudgets,
) -> GuardrailResult:
    x_holdout = schema.model_frame(holdout, prepared.inferred.features)
    prediction = challenger.predict_frame(holdout)
    if prepared.target.task == "regression":
        return guardrails.regression_parity_check(
            result.pipeline.predict(x_holdout), np.asarray(prediction.raw), budgets=budgets
        )
    return guardrails.classification_parity_check(
        result.pipeline.predict(x_holdout),
        result.pipeline.predict_proba(x_holdout),
        np.asarray(prediction.raw),
        np.asarray(prediction.probabilities),
        budgets=budgets,
    )


def _guardrail_checks(
    prepared: PreparedData, fitted: _Fitted, exported: _Exported, budgets: GuardrailBudgets
) -> list[GuardrailResult]:
    holdout = prepared.frame.iloc[prepared.split.holdout]
    challenger, model_bytes = exported.challenger, exported.model.model_bytes
    latencies = guardrails.measure_latency(
        challenger,
        challenger.encoder.from_frame(holdout.iloc[:1]),
        samples=budgets.latency_samples,
    )
    return [
        guardrails.onnx_check(model_bytes),
        _sklearn_parity(prepared, fitted.result, holdout, challenger, budgets),
        guardrails.latency_check(latencies, budgets=budgets),
        guardrails.size_check(len(model_bytes), budgets=budgets),
    ]


def _score_champion(
    prepared: PreparedData, champion_model: LoadedModel
) -> tuple[Scores | None, str | None]:
    """The champion's scores on the holdout, or why it cannot score it."""
    holdout = prepared.frame.iloc[prepared.split.holdout]
    comparison = schema.compare_schema(
        champion_model.card,
        frame=holdout,
        features=prepared.inferred.features,
        task=prepared.target.task,
        target=prepared.target_name,
    )
    if not comparison.champion_can_score:
        return None, comparison.change
    try:
        scores = evaluation.score_model(
            champion_model, holdout, task=prepared.target.task, classes=prepared.target.classes
        )
    except (ValueError, TypeError, RuntimeError) as exc:  # onnxruntime errors too
        return None, f"champion {champion_model.version} cannot score the new data ({exc})"
    return scores, comparison.change


def _load_and_score_champion(
    prepared: PreparedData, registry: ModelRegistry, version: str
) -> tuple[Scores | None, str | None]:
    try:
        champion_model = registry.load(version)
    except (MlsysError, ValueError) as exc:
        return None, f"champion {version} cannot be loaded ({exc})"
    return _score_champion(prepared, champion_model)


def _challenger_score(prepared: PreparedData, metrics: dict[str, float]) -> float:
    score = metrics.get(prepared.metric.name)
    if score is None:
        raise DataError(
            f"metric {prepared.metric.name} is undefined on this holdout "
            f"({len(prepared.split.holdout)} rows); choose another --metric"
        )
    return score


class TrainingRun:
    """Runs one training as named steps: fit -> export -> evaluate -> decide -> publish.

    Collaborators are injected so tests can use moto and tmp dirs, and ``clock``, which
    times the phases and bounds the model search (:func:`training_job.search.search`), so
    tests that assert a decision can stop time.
    """

    def __init__(
        self,
        settings: TrainingSettings,
        *,
        registry: ModelRegistry,
        event_log: EventAppender | None,
        s3_client: S3Client | None = None,
        actor: str = "training_job",
        clock: Callable[[], float] = time.monotonic,
        progress: TrainingProgress | None = None,
    ) -> None:
        self.settings = settings
        self.progress: TrainingProgress = progress or SilentProgress()
        self.candidates = candidate_names(settings)
        if settings.rollout not in ROLLOUT_CHOICES:
            raise ConfigError(
                f"unknown rollout {settings.rollout!r}; choose from {', '.join(ROLLOUT_CHOICES)}"
            )
        self.registry = registry
        self.event_log = event_log
        self.s3_client = s3_client
        self.actor = actor
        self.clock = clock

    def execute(self) -> TrainingOutcome:
        started = self.clock()
        run_id = new_version_id()
        self.progress.step(f"loading {self.settings.data or DEFAULT_SOURCE}")
        dataset = load_dataset(
            self.settings.data, s3_client=self.s3_client, target=self.settings.target
        )
        prepared = prepare(self.settings, dataset)
        timings = {"load_seconds": self.clock() - started}
        self.progress.step(loaded_line(prepared, seconds=timings["load_seconds"]))
        pointer = self.registry.champion()
        mark = self.clock()
        warnings = self._data_warnings(prepared, pointer)
        timings["checks_seconds"] = self.clock() - mark
        self.progress.step(checks_line(warnings, seconds=timings["checks_seconds"]))
        try:
            outcome = self._train_and_decide(
                run_id, prepared, pointer, timings, started, warnings=warnings
            )
        except Exception as exc:
            self._record_failure(run_id, prepared, pointer, exc, started)
            raise
        self._record(outcome)
        if outcome.card is not None:
            self.progress.finished(
                candidates=outcome.card.training["candidates"],
                winner=outcome.card.training["estimator"],
                metric=outcome.metric,
                timings=outcome.timings,
                total_seconds=outcome.duration_seconds,
            )
        return outcome

    def _train_and_decide(
        self,
        run_id: str,
        prepared: PreparedData,
        pointer: ChampionPointer | None,
        timings: dict[str, float],
        started: float,
        *,
        warnings: Sequence[DataWarning] = (),
    ) -> TrainingOutcome:
        fitted = self._fit(prepared, timings)
        exported = self._export(run_id, prepared, fitted, timings)
        mark = self.clock()
        evaluated = self._evaluate(prepared, fitted, exported, pointer)
        timings["evaluate_seconds"] = self.clock() - mark
        self.progress.step(evaluated_line(prepared, evaluated, timings["evaluate_seconds"]))
        decision = self._decide(prepared, evaluated)
        self.progress.step(f"decision: {decision.code}: {decision.reason}")
        mark = self.clock()
        card = self._model_card(
            prepared=prepared,
            fitted=fitted,
            exported=exported,
            evaluated=evaluated,
            decision=decision,
            pointer=pointer,
            warnings=warnings,
            timings=timings,
        )
        promotion = self._publish(card, exported.model.model_bytes, decision, pointer)
        timings["publish_seconds"] = self.clock() - mark
        self.progress.step(published_line(card.version, promotion, timings["publish_seconds"]))
        outcome = TrainingOutcome.from_card(
            card, promotion=promotion, timings=timings, duration_seconds=self.clock() - started
        )
        outcome.rollout = promotion.details.get("rollout")
        return outcome

    def _data_warnings(
        self, prepared: PreparedData, pointer: ChampionPointer | None
    ) -> list[DataWarning]:
        """Suspicious columns, and drift against the champion's training statistics."""
        warnings = column_warnings(prepared.frame, target=prepared.target_name)
        if pointer is None:
            return warnings
        try:
            stats = self.registry.card(pointer.version).baseline_stats
        except MlsysError:
            return warnings  # a champion without a readable card: the schema check says so
        return warnings + drift_warnings(prepared.frame, prepared.inferred.features, stats)

    def _fit(self, prepared: PreparedData, timings: dict[str, float]) -> _Fitted:
        """Search the candidates on the training rows and refit the winner."""
        target, features, train = prepared.target, prepared.inferred.features, prepared.split.train
        result = run_search(
            schema.model_frame(prepared.frame.iloc[train], features),
            target.y[train],
            features=features,
            task=target.task,
            metric=prepared.metric,
            seed=self.settings.seed,
            time_budget_seconds=self.settings.time_budget_seconds,
            candidates=self.candidates,
            max_fit_rows=self.settings.max_fit_rows,
            release_rows=True,  # the model frame above is built for this call alone
            clock=self.clock,
            observer=self.progress,
        )
        timings["search_seconds"] = result.search_seconds
        timings["final_fit_seconds"] = result.fit_seconds
        classes = None
        if target.classes is not None:
            assert result.class_indices is not None
            classes = tuple(target.classes[i] for i in result.class_indices)
        return _Fitted(result=result, classes=classes)

    def _export(
        self, run_id: str, prepared: PreparedData, fitted: _Fitted, timings: dict[str, float]
    ) -> _Exported:
        """ONNX graph, loaded into onnxruntime under its serving contract."""
        mark = self.clock()
        features = prepared.inferred.features
        model = export_onnx(
            fitted.result.pipeline,
            features,
            task=prepared.target.task,
            n_classes=len(fitted.classes) if fitted.classes is not None else None,
            doc=f"mlsys model {self.registry.model_name} version {run_id}",
        )
        timings["export_seconds"] = self.clock() - mark
        self.progress.step(
            f"exported to ONNX ({len(model.model_bytes) / 1e6:.2f} MB) in "
            f"{format_seconds(timings['export_seconds'])}"
        )
        # Only the fields that decide how the graph is fed and decoded; the card that is
        # registered is built once, after the decision, by _model_card.
        contract = ModelCard(
            model_name=self.registry.model_name,
            version=run_id,
            task=prepared.target.task,
            target=prepared.target_name,
            features=features,
            metric=prepared.metric.name,
            classes=fitted.classes,
            input_layout=model.input_layout,
        )
        return _Exported(model=model, challenger=LoadedModel(contract, model.model_bytes))

    def _evaluate(
        self,
        prepared: PreparedData,
        fitted: _Fitted,
        exported: _Exported,
        pointer: ChampionPointer | None,
    ) -> _Evaluation:
        """Challenger and champion on the same holdout, guardrails, and the bootstrap."""
        task, classes = prepared.target.task, prepared.target.classes
        holdout = prepared.frame.iloc[prepared.split.holdout]
        y_holdout = prepared.target.y[prepared.split.holdout]
        scores = evaluation.score_model(exported.challenger, holdout, task=task, classes=classes)
        metrics = all_metrics(task, y_holdout, scores)
        checks = _guardrail_checks(prepared, fitted, exported, self.settings.budgets)
        score = _challenger_score(prepared, metrics)
        floor = self._quality_floor(prepared, scores)
        predictions = schema.prediction_baseline(scores, classes=classes)
        if pointer is None:
            return _Evaluation(
                metrics,
                score,
                None,
                None,
                checks,
                None,
                prediction_baseline=predictions,
                baseline_score=floor.score,
                baseline_bootstrap=floor.bootstrap,
            )
        champion_scores, change = _load_and_score_champion(prepared, self.registry, pointer.version)
        champion_metrics = None
        if champion_scores is not None:
            champion_metrics = all_metrics(task, y_holdout, champion_scores)
        champion = ChampionMetrics(
            version=pointer.version,
            score=champion_metrics.get(prepared.metric.name) if champion_metrics else None,
            schema_change=change,
        )
        bootstrap = None
        if self.settings.confidence is not None and champion_scores is not None:
            bootstrap = evaluation.paired_bootstrap(
                y_holdout,
                champion_scores,
                scores,
                metric=prepared.metric,
                confidence=self.settings.confidence,
                resamples=self.settings.bootstrap_resamples,
                seed=self.settings.seed,
            )
        return _Evaluation(
            metrics,
            score,
            champion_metrics,
            champion,
            checks,
            bootstrap,
            prediction_baseline=predictions,
            baseline_score=floor.score,
            baseline_bootstrap=floor.bootstrap,
        )

    def _quality_floor(self, prepared: PreparedData, scores: Scores) -> FloorEvidence:
        """The trivial baseline on the same holdout (and, for classifiers, its bootstrap)."""
        classes = prepared.target.classes
        return floor_evidence(
            prepared.metric,
            prepared.target.task,
            y_train=prepared.target.y[prepared.split.train],
            y_holdout=prepared.target.y[prepared.split.holdout],
            challenger=scores,
            n_classes=len(classes) if classes is not None else None,
            resamples=self.settings.bootstrap_resamples,
            seed=self.settings.seed,
        )

    def _decide(self, prepared: PreparedData, evaluated: _Evaluation) -> Decision:
        """The pure promotion policy over the evaluation."""
        metric = prepared.metric
        return decide_promotion(
            evaluated.champion,
            ChallengerMetrics(
                metric=metric.name,
                score=evaluated.challenger_score,
                higher_is_better=metric.higher_is_better,
                guardrail_failures=tuple(c.detail for c in evaluated.checks if not c.passed),
                bootstrap=evaluated.bootstrap,
                baseline_score=evaluated.baseline_score,
                best_possible=metric.perfect,
                baseline_bootstrap=evaluated.baseline_bootstrap,
            ),
            PromotionPolicy(
                min_improvement=self.settings.min_improvement,
                confidence=self.settings.confidence,
                allow_schema_change=self.settings.allow_schema_change,
                min_baseline_lift=self.settings.min_baseline_lift,
            ),
        )

    def _model_card(
        self,
        *,
        prepared: PreparedData,
        fitted: _Fitted,
        exported: _Exported,
        evaluated: _Evaluation,
        decision: Decision,
        pointer: ChampionPointer | None,
        warnings: Sequence[DataWarning] = (),
        timings: Mapping[str, float],
    ) -> ModelCard:
        """The challenger's card, built once, with everything the run knows (each phase's
        time too; publishing's is in the run record only)."""
        settings, contract = self.settings, exported.challenger.card
        train = prepared.split.train
        champion_version = pointer.version if pointer else None
        return ModelCard(
            model_name=contract.model_name,
            version=contract.version,
            task=contract.task,
            target=contract.target,
            features=contract.features,
            metric=contract.metric,
            classes=contract.classes,
            input_layout=contract.input_layout,
            created_at=iso(utc_now()),
            data={
                **_data_section(prepared, fitted.result),
                "checks": [w.to_dict() for w in warnings],
            },
            training={
                **fitted.result.to_dict(),
                "params": estimator_params(fitted.result.pipeline),
                "seed": settings.seed,
                "time_budget_seconds": settings.time_budget_seconds,
                "candidate_names": list(self.candidates),
                "timings": dict(timings),
            },
            library_versions=library_versions(),
            git_commit=settings.git_commit or git_commit(),
            baseline_stats={
                **schema.baseline_stats(
                    prepared.frame.iloc[train],
                    contract.features,
                    y=prepared.target.y[train],
                    classes=prepared.target.classes,
                ),
                "prediction": evaluated.prediction_baseline,
            },
            onnx=exported.model.to_dict(),
            metrics=_metrics_section(prepared, evaluated, champion_version),
            decision=_decision_section(decision, evaluated, champion_version),
            guardrails={
                "passed": all(c.passed for c in evaluated.checks),
                "checks": [c.to_dict() for c in evaluated.checks],
            },
        )

    def _publish(
        self,
        card: ModelCard,
        model_bytes: bytes,
        decision: Decision,
        pointer: ChampionPointer | None,
    ) -> Decision:
        """Register the version, then promote it if the policy says so.

        Returns what actually happened: the policy's decision, or a refusal when another
        promotion moved the champion while this run was training."""
        self.registry.register(card, model_bytes)
        if not decision.promote:
            return decision
        version = card.version
        try:
            if pointer is not None and self.settings.rollout in ("canary", "shadow"):
                return self._start_rollout(version, decision, pointer)
            self.registry.promote(
                version, reason=decision.reason, actor=f"{self.actor}:{version}", expected=pointer
            )
        except ConcurrentUpdateError:
            return replace(
                decision,
                promote=False,
                reason="the champion changed while this run was training (another promotion "
                f"won); not promoted, although the policy said: {decision.reason}",
                code="concurrent_update",
            )
        return decision

    def _start_rollout(
        self, version: str, decision: Decision, pointer: ChampionPointer
    ) -> Decision:
        """A canary or shadow rollout instead of an outright promotion (a first champion is
        always direct: there is nothing to compare it with)."""
        mode: RolloutMode = "canary" if self.settings.rollout == "canary" else "shadow"
        started = start_rollout(
            self.registry,
            version,
            mode=mode,
            fraction=self.settings.canary_fraction,
            reason=decision.reason,
            actor=f"{self.actor}:{version}",
            expected=pointer,
        )
        assert started.rollout is not None
        return replace(
            decision,
            promote=False,
            code="rollout_started",
            reason=f"{mode} rollout started: {decision.reason}",
            details={**decision.details, "rollout": started.rollout.to_dict()},
        )

    def _record(self, outcome: TrainingOutcome) -> None:
        """Durable run record and system-log event; failures here never undo a promotion."""
        record = outcome.to_dict()
        try:
            self.registry.record_run(outcome.run_id, record)
        except MlsysError as exc:
            outcome.notes.append(f"could not record the run in the registry: {exc.message}")
        if self.event_log is not None:
            # The default log is shared by every registry used from one directory: say
            # which registry and model this outcome is about.
            data = {**record, "registry": self.registry.uri, "model_name": outcome.model_name}
            event = Event(type="training", data=data, model_version=outcome.version)
            try:
                self.event_log.append(event)
            except Exception as exc:  # the log is best effort after the fact
                outcome.notes.append(f"could not append the training event to the log: {exc}")

    def _record_failure(
        self,
        run_id: str,
        prepared: PreparedData,
        pointer: ChampionPointer | None,
        exc: Exception,
        started: float,
    ) -> None:
        outcome = TrainingOutcome(
            run_id=run_id,
            model_name=self.registry.model_name,
            promoted=False,
            reason=f"run failed: {type(exc).__name__}: {exc}",
            code="failed",
            champion_version=pointer.version if pointer else None,
            metric=prepared.metric.name,
            task=prepared.target.task,
            target=prepared.target_name,
            data={
                "source": prepared.dataset.source,
                "sha256": prepared.dataset.sha256,
                "rows": len(prepared.frame),
                "train_rows": 0,
                "holdout_rows": 0,
            },
            duration_seconds=self.clock() - started,
            status="failed",
        )
        try:
            self._record(outcome)
        except Exception as record_exc:  # never mask the original failure
            print(f"could not record the failed run: {record_exc}", file=sys.stderr)


def _decision_section(
    decision: Decision, evaluated: _Evaluation, champion_version: str | None
) -> dict[str, Any]:
    """The card's record of the promotion decision and what it compared against."""
    bootstrap, champion = evaluated.bootstrap, evaluated.champion
    return {
        **decision.to_dict(),
        "bootstrap": bootstrap.to_dict() if bootstrap else None,
        "champion_version": champion_version,
        "schema_change": champion.schema_change if champion else None,
    }


def _metrics_section(
    prepared: PreparedData, evaluated: _Evaluation, champion_version: str | None
) -> dict[str, Any]:
    """The card's holdout metrics: challenger, champion and the trivial baseline."""
    metric = prepared.metric.name
    baseline = evaluated.baseline_score
    return {
        "primary": metric,
        "holdout_rows": len(prepared.split.holdout),
        "challenger": evaluated.challenger_metrics,
        "champion": evaluated.champion_metrics,
        "champion_version": champion_version,
        "baseline": {} if baseline is None else {metric: baseline},
    }


def _data_section(prepared: PreparedData, result: SearchResult) -> dict[str, Any]:
    """The card's fingerprint of the data the run saw, and how many rows the model saw."""
    return {
        "source": prepared.dataset.source,
        "sha256": prepared.dataset.sha256,
        "rows": len(prepared.dataset.frame),
        "labelled_rows": len(prepared.frame),
        "train_rows": len(prepared.split.train),
        "training_rows": result.training_rows,
        "fit_rows": result.fit_rows,
        "holdout_rows": len(prepared.split.holdout),
        "stratified": prepared.split.stratified,
        "dropped_columns": {
            **dict.fromkeys(prepared.left_out, DROPPED_BY_USER),
            **prepared.inferred.dropped,
        },
    }


def loaded_line(prepared: PreparedData, *, seconds: float) -> str:
    """The load phase, as one line: what was read and how it will be used."""
    frame, split = prepared.dataset.frame, prepared.split
    return (
        f"loaded {len(frame):,} rows x {frame.shape[1]} columns from "
        f"{prepared.dataset.source} in {format_seconds(seconds)}: target "
        f"{prepared.target_name!r} ({prepared.target.task}, metric {prepared.metric.name}), "
        f"{len(prepared.inferred.features)} features, {len(split.train):,} training / "
        f"{len(split.holdout):,} holdout rows"
    )


def evaluated_line(prepared: PreparedData, evaluated: _Evaluation, seconds: float) -> str:
    """The evaluation phase: challenger, champion and trivial baseline on one holdout."""
    metric = prepared.metric.name
    parts = [f"challenger {metric} = {evaluated.challenger_score:.4f}"]
    champion = evaluated.champion
    if champion is not None:
        parts.append(
            f"champion {champion.version} "
            + (
                f"{metric} = {champion.score:.4f}"
                if champion.score is not None
                else "cannot score it"
            )
        )
    if evaluated.baseline_score is not None:
        parts.append(f"trivial baseline {evaluated.baseline_score:.4f}")
    failed = [c.name for c in evaluated.checks if not c.passed]
    parts.append(f"guardrails {'FAILED: ' + ', '.join(failed) if failed else 'passed'}")
    return (
        f"evaluated on {len(prepared.split.holdout):,} holdout rows in "
        f"{format_seconds(seconds)}: {', '.join(parts)}"
    )


def checks_line(warnings: Sequence[DataWarning], *, seconds: float) -> str:
    """The data checks (each warning is printed again at the end of ``mlsys train``)."""
    took = format_seconds(seconds)
    if not warnings:
        return f"data checks passed in {took}"
    return f"data checks: {len(warnings)} warning(s) in {took}: " + "; ".join(
        w.line() for w in warnings
    )


def published_line(version: str, promotion: Decision, seconds: float) -> str:
    """What publishing did: the version is registered whatever the decision."""
    took = f" in {format_seconds(seconds)}"
    if promotion.promote:
        return f"registered {version} and promoted it to champion{took}"
    if promotion.code == "rollout_started":
        return f"registered {version}{took}; {promotion.reason}"
    return f"registered {version}{took} (not promoted)"


def run_training(
    settings: TrainingSettings,
    *,
    registry: ModelRegistry,
    event_log: EventAppender | None,
    s3_client: S3Client | None = None,
) -> TrainingOutcome:
    """Convenience wrapper: one :class:`TrainingRun` with default collaborators."""
    return TrainingRun(
        settings, registry=registry, event_log=event_log, s3_client=s3_client
    ).execute()


def summary_lines(outcome: TrainingOutcome) -> Sequence[str]:
    """The human-readable report of a run."""
    result = outcome.to_dict()
    data = result["data"]
    fitted = ""
    if 0 < data.get("fit_rows", 0) < data["train_rows"]:
        fitted = f" (final fit on {data['fit_rows']} of them: row cap)"
    lines = [
        f"trained {result['estimator']} ({outcome.task}, target {outcome.target!r}) on "
        f"{data['source']}: {data['train_rows']} training rows{fitted} / "
        f"{data['holdout_rows']} holdout rows in {outcome.duration_seconds:.1f}s",
        f"challenger {outcome.version}: {outcome.metric} = {outcome.challenger_score:.4f}",
    ]
    if outcome.champion_version is None:
        lines.append("champion: none yet")
    elif outcome.champion_score is None:
        lines.append(f"champion {outcome.champion_version}: could not score the new data")
    else:
        lines.append(
            f"champion {outcome.champion_version}: {outcome.metric} = {outcome.champion_score:.4f}"
        )
    checks = ", ".join(
        f"{g['name']} {'ok' if g['passed'] else 'FAILED'}" for g in result["guardrails"]
    )
    lines.append(f"guardrails: {checks}")
    if outcome.baseline_score is not None:
        lines.append(f"baseline (trivial): {outcome.metric} = {outcome.baseline_score:.4f}")
    lines.extend(f"note: {note}" for note in outcome.notes)
    verdict = "PROMOTED" if outcome.promoted else "not promoted"
    if outcome.rollout is not None:
        verdict = "ROLLOUT"
    lines.append(f"{verdict}: {outcome.reason}")
    return lines
