"""One training run, end to end: data -> challenger -> fair comparison -> maybe promotion.

Order of effects, chosen so that a crash at any point leaves the champion serving:

1. Load and validate the data; resolve target, task and metric. Bad input raises
   :class:`DataError` / :class:`ConfigError` here, before anything is written.
2. Read the champion pointer (with its ETag): the decision is made against it.
3. Search, fit, export to ONNX; score challenger and champion on the same holdout
   through onnxruntime (:class:`mlsys.contract.LoadedModel`, exactly as served);
   guardrails; the pure policy :func:`~training_job.policy.decide_promotion`.
4. Register the immutable version (``model.onnx`` then ``card.json``) whether or not
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from mlsys.contract import LoadedModel, ModelCard, frame_to_feeds
from mlsys.errors import ConcurrentUpdateError, DataError, MlsysError
from mlsys.eventlog import Event
from mlsys.registry import ChampionPointer, ModelRegistry, iso, new_version_id, utc_now
from training_job import evaluation, guardrails, schema
from training_job.data import Dataset, load_dataset
from training_job.export import export_onnx
from training_job.guardrails import GuardrailBudgets, GuardrailResult
from training_job.policy import (
    ChallengerMetrics,
    ChampionMetrics,
    Decision,
    PromotionPolicy,
    decide_promotion,
)
from training_job.search import CANDIDATES, DEFAULT_CANDIDATES, SearchResult, estimator_params
from training_job.search import search as run_search

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class EventSink(Protocol):
    """The part of :class:`mlsys.eventlog.EventLog` a run needs (lets the CLI open the log
    lazily, only once there is an outcome to write)."""

    def append(self, event: Event) -> None: ...


LIBRARIES = ("mlsys", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas")
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    data: str | None = None
    target: str | None = None
    task: schema.TaskChoice = "auto"
    metric: str | None = None
    min_improvement: float = 0.0
    confidence: float | None = None
    seed: int = 0
    allow_schema_change: bool = False
    time_budget_seconds: float = 120.0
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    max_fit_rows: int | None = None
    budgets: GuardrailBudgets = field(default_factory=GuardrailBudgets)
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES
    git_commit: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            from mlsys.errors import ConfigError  # noqa: PLC0415

            raise ConfigError(
                f"unknown candidate model(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(CANDIDATES)}"
            )


@dataclass(kw_only=True)
class TrainingOutcome:
    """What a run did; ``to_dict()`` is the ``--json`` output, run record and event data."""

    run_id: str
    model_name: str
    promoted: bool
    reason: str
    code: str
    version: str | None
    champion_version: str | None
    """The champion when the run started."""
    metric: str
    challenger_score: float | None
    champion_score: float | None
    improvement: float | None = None
    task: str = ""
    target: str = ""
    estimator: str | None = None
    data_source: str = ""
    data_sha256: str = ""
    rows: int = 0
    train_rows: int = 0
    fit_rows: int = 0
    """Rows the final model was fitted on (``train_rows`` unless capped)."""
    holdout_rows: int = 0
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    schema_change: str | None = None
    bootstrap: dict[str, Any] | None = None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    status: str = "completed"

    def to_dict(self) -> dict[str, Any]:
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
            "improvement": self.improvement,
            "task": self.task,
            "target": self.target,
            "estimator": self.estimator,
            "data": {
                "source": self.data_source,
                "sha256": self.data_sha256,
                "rows": self.rows,
                "train_rows": self.train_rows,
                "training_rows": self.train_rows,
                "fit_rows": self.fit_rows,
                "holdout_rows": self.holdout_rows,
            },
            "guardrails": self.guardrails,
            "schema_change": self.schema_change,
            "bootstrap": self.bootstrap,
            "challenger_metrics": self.challenger_metrics,
            "champion_metrics": self.champion_metrics,
            "notes": self.notes,
            "timings": self.timings,
            "duration_seconds": self.duration_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class PreparedData:
    dataset: Dataset
    frame: pd.DataFrame
    """Rows with a usable target, original column names."""
    target_name: str
    target: schema.Target
    inferred: schema.Schema
    metric: evaluation.Metric
    split: schema.Split


def prepare(config: TrainingConfig, dataset: Dataset) -> PreparedData:
    """Every check of user input; raises :class:`DataError`/``ConfigError`` on bad input."""
    frame = dataset.frame
    target_name = config.target or dataset.default_target or str(frame.columns[-1])
    if target_name not in frame.columns:
        columns = ", ".join(repr(c) for c in list(frame.columns)[:20])
        raise DataError(
            f"target column {target_name!r} not found in {dataset.source} (columns: {columns})"
        )
    if frame.shape[1] < 2:
        raise DataError(f"data set {dataset.source} has only the target column; no features")
    # Before the target's own checks: with too few rows, "a single class" or "constant"
    # would blame the values when the problem is the row count.
    schema.require_enough_rows(
        int(frame[target_name].notna().sum()), source=dataset.source, target=target_name
    )
    target = schema.prepare_target(frame[target_name], task=config.task)
    # Without unlabelled rows no copy is made (a large frame would briefly exist twice).
    labelled = frame if target.keep.all() else frame.loc[target.keep].reset_index(drop=True)
    inferred = schema.infer_schema(labelled, target=target_name)
    metric = evaluation.resolve_metric(config.metric, target.task)
    split = schema.split_rows(target.y, task=target.task, seed=config.seed)
    return PreparedData(
        dataset=dataset,
        frame=labelled,
        target_name=target_name,
        target=target,
        inferred=inferred,
        metric=metric,
        split=split,
    )


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
class _Evaluation:
    challenger_scores: evaluation.Scores
    challenger_metrics: dict[str, float]
    champion_scores: evaluation.Scores | None
    champion_metrics: dict[str, float] | None
    champion: ChampionMetrics | None
    checks: list[GuardrailResult]


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


def _evaluate(
    *,
    config: TrainingConfig,
    prepared: PreparedData,
    result: SearchResult,
    challenger: LoadedModel,
    model_bytes: bytes,
    registry: ModelRegistry,
    pointer: ChampionPointer | None,
) -> _Evaluation:
    task, classes = prepared.target.task, prepared.target.classes
    holdout = prepared.frame.iloc[prepared.split.holdout]
    y_holdout = prepared.target.y[prepared.split.holdout]

    challenger_scores = evaluation.score_model(challenger, holdout, task=task, classes=classes)
    challenger_metrics = evaluation.all_metrics(task, y_holdout, challenger_scores)

    checks = [
        guardrails.onnx_check(model_bytes),
        _sklearn_parity(prepared, result, holdout, challenger, config.budgets),
        guardrails.latency_check(
            guardrails.measure_latency(
                challenger,
                frame_to_feeds(challenger.card.features, holdout.iloc[:1]),
                samples=config.budgets.latency_samples,
            ),
            budgets=config.budgets,
        ),
        guardrails.size_check(len(model_bytes), budgets=config.budgets),
    ]

    if pointer is None:
        return _Evaluation(challenger_scores, challenger_metrics, None, None, None, checks)
    champion_scores: evaluation.Scores | None = None
    champion_metrics: dict[str, float] | None = None
    score: float | None = None
    try:
        champion_model = registry.load(pointer.version)
    except (MlsysError, ValueError) as exc:
        change: str | None = f"champion {pointer.version} cannot be loaded ({exc})"
    else:
        comparison = schema.compare_schema(
            champion_model.card,
            frame=holdout,
            features=prepared.inferred.features,
            task=task,
            target=prepared.target_name,
        )
        change = comparison.change
        if comparison.champion_can_score:
            try:
                champion_scores = evaluation.score_model(
                    champion_model, holdout, task=task, classes=classes
                )
            except (ValueError, TypeError, RuntimeError) as exc:  # onnxruntime errors too
                change = f"champion {pointer.version} cannot score the new data ({exc})"
            else:
                champion_metrics = evaluation.all_metrics(task, y_holdout, champion_scores)
                score = champion_metrics.get(prepared.metric.name)
    champion = ChampionMetrics(version=pointer.version, score=score, schema_change=change)
    return _Evaluation(
        challenger_scores, challenger_metrics, champion_scores, champion_metrics, champion, checks
    )


class TrainingRun:
    """Runs one training; collaborators are injected so tests can use moto and tmp dirs."""

    def __init__(
        self,
        config: TrainingConfig,
        *,
        registry: ModelRegistry,
        event_log: EventSink | None,
        s3_client: S3Client | None = None,
        actor: str = "training_job",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.registry = registry
        self.event_log = event_log
        self.s3_client = s3_client
        self.actor = actor
        self.clock = clock

    def execute(self) -> TrainingOutcome:
        started = self.clock()
        run_id = new_version_id()
        config = self.config
        dataset = load_dataset(config.data, s3_client=self.s3_client, target=config.target)
        prepared = prepare(config, dataset)
        timings = {"load_seconds": self.clock() - started}
        pointer = self.registry.champion()
        try:
            outcome = self._train_and_decide(run_id, prepared, pointer, timings, started)
        except Exception as exc:
            self._record_failure(run_id, prepared, pointer, exc, started)
            raise
        self._record(outcome)
        return outcome

    def _train_and_decide(
        self,
        run_id: str,
        prepared: PreparedData,
        pointer: ChampionPointer | None,
        timings: dict[str, float],
        started: float,
    ) -> TrainingOutcome:
        config = self.config
        target = prepared.target
        features = prepared.inferred.features
        train = prepared.split.train
        x_train = schema.model_frame(prepared.frame.iloc[train], features)
        result = run_search(
            x_train,
            target.y[train],
            features=features,
            task=target.task,
            metric=prepared.metric,
            seed=config.seed,
            time_budget_seconds=config.time_budget_seconds,
            candidates=config.candidates,
            max_fit_rows=config.max_fit_rows,
            clock=self.clock,
        )
        timings["search_seconds"] = result.search_seconds
        timings["final_fit_seconds"] = result.fit_seconds

        model_classes = None
        if target.classes is not None:
            assert result.class_indices is not None
            model_classes = tuple(target.classes[i] for i in result.class_indices)
        mark = self.clock()
        exported = export_onnx(
            result.pipeline,
            features,
            task=target.task,
            n_classes=len(model_classes) if model_classes is not None else None,
            doc=f"mlsys model {self.registry.model_name} version {run_id}",
        )
        timings["export_seconds"] = self.clock() - mark
        card = ModelCard(
            model_name=self.registry.model_name,
            version=run_id,
            task=target.task,
            target=prepared.target_name,
            features=features,
            metric=prepared.metric.name,
            classes=model_classes,
            created_at=iso(utc_now()),
            data={
                "source": prepared.dataset.source,
                "sha256": prepared.dataset.sha256,
                "rows": len(prepared.dataset.frame),
                "labelled_rows": len(prepared.frame),
                "train_rows": len(train),
                "training_rows": result.training_rows,
                "fit_rows": result.fit_rows,
                "holdout_rows": len(prepared.split.holdout),
                "stratified": prepared.split.stratified,
                "dropped_columns": dict(prepared.inferred.dropped),
            },
            training={
                **result.to_dict(),
                "params": estimator_params(result.pipeline),
                "seed": config.seed,
                "time_budget_seconds": config.time_budget_seconds,
                "candidate_names": list(config.candidates),
            },
            library_versions=library_versions(),
            git_commit=config.git_commit or git_commit(),
            baseline_stats=schema.baseline_stats(
                prepared.frame.iloc[train], features, y=target.y[train], classes=target.classes
            ),
            onnx=exported.to_dict(),
        )
        mark = self.clock()
        challenger = LoadedModel(card, exported.model_bytes)
        evaluated = _evaluate(
            config=config,
            prepared=prepared,
            result=result,
            challenger=challenger,
            model_bytes=exported.model_bytes,
            registry=self.registry,
            pointer=pointer,
        )
        y_holdout = target.y[prepared.split.holdout]
        metric = prepared.metric
        challenger_score = evaluated.challenger_metrics.get(metric.name)
        if challenger_score is None:
            raise DataError(
                f"metric {metric.name} is undefined on this holdout "
                f"({len(y_holdout)} rows); choose another --metric"
            )
        bootstrap = None
        champion = evaluated.champion
        if (
            config.confidence is not None
            and champion is not None
            and evaluated.champion_scores is not None
        ):
            bootstrap = evaluation.paired_bootstrap(
                y_holdout,
                evaluated.champion_scores,
                evaluated.challenger_scores,
                metric=metric,
                confidence=config.confidence,
                resamples=config.bootstrap_resamples,
                seed=config.seed,
            )
        timings["evaluate_seconds"] = self.clock() - mark
        failures = tuple(c.detail for c in evaluated.checks if not c.passed)
        decision = decide_promotion(
            champion,
            ChallengerMetrics(
                metric=metric.name,
                score=challenger_score,
                higher_is_better=metric.higher_is_better,
                guardrail_failures=failures,
                bootstrap=bootstrap,
            ),
            PromotionPolicy(
                min_improvement=config.min_improvement,
                confidence=config.confidence,
                allow_schema_change=config.allow_schema_change,
            ),
        )
        card = replace(
            card,
            metrics={
                "primary": metric.name,
                "holdout_rows": len(y_holdout),
                "challenger": evaluated.challenger_metrics,
                "champion": evaluated.champion_metrics,
                "champion_version": pointer.version if pointer else None,
            },
            decision={
                **decision.to_dict(),
                "bootstrap": bootstrap.to_dict() if bootstrap else None,
                "champion_version": pointer.version if pointer else None,
            },
            guardrails={"passed": not failures, "checks": [c.to_dict() for c in evaluated.checks]},
        )
        self.registry.register(card, exported.model_bytes)

        promoted, reason, code = self._promote(decision, run_id, pointer)
        return TrainingOutcome(
            run_id=run_id,
            model_name=self.registry.model_name,
            promoted=promoted,
            reason=reason,
            code=code,
            version=run_id,
            champion_version=pointer.version if pointer else None,
            metric=metric.name,
            challenger_score=challenger_score,
            champion_score=champion.score if champion else None,
            improvement=decision.improvement,
            task=target.task,
            target=prepared.target_name,
            estimator=result.best.name,
            data_source=prepared.dataset.source,
            data_sha256=prepared.dataset.sha256,
            rows=len(prepared.frame),
            train_rows=len(train),
            fit_rows=result.fit_rows,
            holdout_rows=len(y_holdout),
            guardrails=[c.to_dict() for c in evaluated.checks],
            schema_change=champion.schema_change if champion else None,
            bootstrap=bootstrap.to_dict() if bootstrap else None,
            challenger_metrics=evaluated.challenger_metrics,
            champion_metrics=evaluated.champion_metrics,
            notes=[
                *(
                    f"column {name!r} is not used as a feature: {why}"
                    for name, why in prepared.inferred.dropped.items()
                ),
                *result.notes,
            ],
            timings=timings,
            duration_seconds=self.clock() - started,
        )

    def _promote(
        self, decision: Decision, version: str, pointer: ChampionPointer | None
    ) -> tuple[bool, str, str]:
        if not decision.promote:
            return False, decision.reason, decision.code
        try:
            self.registry.promote(
                version, reason=decision.reason, actor=f"{self.actor}:{version}", expected=pointer
            )
        except ConcurrentUpdateError:
            return (
                False,
                "the champion changed while this run was training (another promotion won); "
                f"not promoted, although the policy said: {decision.reason}",
                "concurrent_update",
            )
        return True, decision.reason, decision.code

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
            version=None,
            champion_version=pointer.version if pointer else None,
            metric=prepared.metric.name,
            challenger_score=None,
            champion_score=None,
            task=prepared.target.task,
            target=prepared.target_name,
            data_source=prepared.dataset.source,
            data_sha256=prepared.dataset.sha256,
            rows=len(prepared.frame),
            duration_seconds=self.clock() - started,
            status="failed",
        )
        try:
            self._record(outcome)
        except Exception as record_exc:  # never mask the original failure
            print(f"could not record the failed run: {record_exc}", file=sys.stderr)


def run_training(
    config: TrainingConfig,
    *,
    registry: ModelRegistry,
    event_log: EventSink | None,
    s3_client: S3Client | None = None,
) -> TrainingOutcome:
    """Convenience wrapper: one :class:`TrainingRun` with default collaborators."""
    return TrainingRun(
        config, registry=registry, event_log=event_log, s3_client=s3_client
    ).execute()


def summary_lines(outcome: TrainingOutcome) -> Sequence[str]:
    """The human-readable report of a run."""
    fitted = ""
    if 0 < outcome.fit_rows < outcome.train_rows:
        fitted = f" (final fit on {outcome.fit_rows} of them: row cap)"
    lines = [
        f"trained {outcome.estimator} ({outcome.task}, target {outcome.target!r}) on "
        f"{outcome.data_source}: {outcome.train_rows} training rows{fitted} / "
        f"{outcome.holdout_rows} holdout rows in {outcome.duration_seconds:.1f}s",
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
        f"{g['name']} {'ok' if g['passed'] else 'FAILED'}" for g in outcome.guardrails
    )
    lines.append(f"guardrails: {checks}")
    lines.extend(f"note: {note}" for note in outcome.notes)
    verdict = "PROMOTED" if outcome.promoted else "not promoted"
    lines.append(f"{verdict}: {outcome.reason}")
    return lines
