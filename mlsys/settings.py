"""Runtime settings, read from the environment in exactly one place.

Every runtime component (CLI, training job, Lambda handlers, local server)
calls :func:`load_settings` once and passes the typed values on as keyword
arguments; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsys import names
from mlsys.errors import ConfigError

DEFAULT_REGISTRY_URI = ".mlsys/registry"
DEFAULT_LOG_URI = "sqlite:///.mlsys/log.sqlite3"
DEFAULT_MODEL_NAME = "default"
LOG_DELIVERIES = ("sync", "background", "stdout")
LOG_INPUTS = ("full", "digest", "sampled")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _optional_float(
    env: Mapping[str, str], name: str, *, above: float, below: float
) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not above < value < below:
        raise ConfigError(f"{name} must be between {above} and {below} (exclusive), got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value > 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {value}")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Typed runtime configuration. Field docs name the environment variable."""

    registry_uri: str = DEFAULT_REGISTRY_URI
    """MLSYS_REGISTRY_URI: a directory path or ``s3://bucket[/prefix]``."""
    model_name: str = DEFAULT_MODEL_NAME
    """MLSYS_MODEL_NAME: which model in the registry to train / serve."""
    log_uri: str = DEFAULT_LOG_URI
    """MLSYS_LOG_URI: ``sqlite:///path`` or ``dynamodb://table``."""
    log_delivery: str = "sync"
    """MLSYS_LOG_DELIVERY: ``sync`` writes events to the store in-request;
    ``background`` queues them for a writer thread that appends them in batches
    (long-lived processes; ``mlsys serve``'s default); ``stdout`` prints them as
    structured JSON for asynchronous ingestion (CloudWatch Logs subscription ->
    DynamoDB)."""
    tracing: bool = False
    """X-Ray tracing is active (the Lambda function has it on): the inference
    functions then trace model load and predict (importing the X-Ray SDK)."""
    log_inputs: str = "full"
    """MLSYS_LOG_INPUTS: ``full`` logs prediction inputs, ``digest`` only a sha256,
    ``sampled`` the inputs of a share of requests and the sha256 of the others."""
    log_inputs_sample_rate: float = 0.05
    """MLSYS_LOG_INPUTS_SAMPLE_RATE: that share (0-1) when ``sampled``."""
    log_retention_days: int = 30
    """MLSYS_LOG_RETENTION_DAYS: TTL of log events in DynamoDB."""
    log_shards: int = 8
    """MLSYS_LOG_SHARDS: write shards per event type in DynamoDB."""
    model_refresh_seconds: float = 30.0
    """MLSYS_MODEL_REFRESH_SECONDS: how often a warm container re-checks the champion."""
    max_batch_records: int = 10_000
    """MLSYS_MAX_BATCH_RECORDS: records per POST /batch."""
    max_body_bytes: int = 6_000_000
    """MLSYS_MAX_BODY_BYTES: request body limit (Lambda's payload limit is 6 MB)."""
    max_log_page: int = 1000
    """MLSYS_MAX_LOG_PAGE: largest ``limit`` GET /log accepts."""
    training_env: Mapping[str, str] = field(default_factory=dict)
    """The raw ``MLSYS_*`` training variables (see :class:`TrainingSettings`), validated only
    by :meth:`training`, so a bad training variable fails ``mlsys train`` and nothing else."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unrecognised MLSYS_* variables, kept so callers can warn about typos."""
    rollout_env: Mapping[str, str] = field(default_factory=dict)
    """The raw ``MLSYS_ROLLOUT_*`` policy variables, validated by :meth:`rollout_policy`."""
    alarm_topic_arn: str | None = None
    """MLSYS_ALARM_TOPIC_ARN: SNS topic the rollout evaluator notifies on complete/abort."""
    rollout_evidence: str = "log"
    """MLSYS_ROLLOUT_EVIDENCE: where the rollout evaluator reads requests, errors and p99
    latency: ``log`` (system-log events; local runs) or ``metrics`` (the serving functions'
    CloudWatch metrics over the whole bake; the deployed evaluator)."""

    def training(self) -> TrainingSettings:
        """The training defaults; :class:`ConfigError` names a bad variable."""
        return load_training_settings(self.training_env)

    def rollout_margins(self) -> dict[str, Any]:
        """The automatic rollout policy's margins, by :class:`~mlsys.rollout.policy.RolloutPolicy`
        field: MLSYS_ROLLOUT_MIN_REQUESTS (200), MLSYS_ROLLOUT_MIN_BAKE_SECONDS (900),
        MLSYS_ROLLOUT_MAX_ERROR_RATE_INCREASE (0.02), MLSYS_ROLLOUT_MAX_P99_RATIO (1.5),
        MLSYS_ROLLOUT_MAX_SHADOW_DEVIATION (0.25), MLSYS_ROLLOUT_MAX_QUALITY_DROP (0.02).
        :class:`ConfigError` names a bad variable."""
        env = self.rollout_env
        return {
            "min_requests": _int(env, names.ROLLOUT_MIN_REQUESTS, 200, minimum=1),
            "min_bake_seconds": _float(env, names.ROLLOUT_MIN_BAKE_SECONDS, 900.0),
            "max_error_rate_increase": _float(env, names.ROLLOUT_MAX_ERROR_RATE_INCREASE, 0.02),
            "max_p99_latency_ratio": _float(env, names.ROLLOUT_MAX_P99_RATIO, 1.5, minimum=1.0),
            "max_shadow_deviation": _float(env, names.ROLLOUT_MAX_SHADOW_DEVIATION, 0.25),
            "max_quality_drop": _float(env, names.ROLLOUT_MAX_QUALITY_DROP, 0.02),
        }


@dataclass(frozen=True, kw_only=True)
class GuardrailBudgets:
    """Limits an exported model must meet to be promoted (see :mod:`training_job.guardrails`)."""

    regression_rtol: float = 1e-4
    probability_atol: float = 1e-4
    latency_p95_ms: float = 50.0
    max_model_bytes: int = 50 * 1024 * 1024
    latency_samples: int = 200


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """Everything a training run is configured by: the one declaration.

    ``MLSYS_*`` variables give the defaults (:meth:`Settings.training`); the CLI applies
    its flags over them with :func:`dataclasses.replace`; tests construct it directly.
    """

    data: str | None = None
    """MLSYS_DATA: CSV/Parquet path or ``s3://`` URI (a prefix ending in ``/`` means its
    newest object); unset = scikit-learn's bundled diabetes data."""
    target: str | None = None
    """MLSYS_TARGET: target column (default: the data set's last column)."""
    task: str = "auto"
    """MLSYS_TASK: ``auto``, ``regression`` or ``classification``."""
    metric: str | None = None
    """MLSYS_METRIC: primary holdout metric (default: ``r2`` / ``f1_macro``)."""
    min_improvement: float = 0.0
    """MLSYS_MIN_IMPROVEMENT: absolute metric gain a challenger needs over the champion."""
    confidence: float | None = None
    """MLSYS_CONFIDENCE: if set (0-1), also require a significant paired-bootstrap gain."""
    seed: int = 0
    """MLSYS_SEED: seed of the split, the search and the bootstrap."""
    allow_schema_change: bool = False
    """MLSYS_ALLOW_SCHEMA_CHANGE: promote even if the champion cannot score the new data."""
    time_budget_seconds: float = 120.0
    """MLSYS_TIME_BUDGET_SECONDS: wall-clock budget of the model search (not the final fit)."""
    max_fit_rows: int | None = None
    """MLSYS_MAX_FIT_ROWS: fit the final model on a random sample of at most this many
    training rows (unset: every training row)."""
    candidates: tuple[str, ...] | None = None
    """Candidate models to search (``--models``); ``None`` = every one, cheapest first.
    Names are checked against :data:`training_job.search.CANDIDATES` when a run starts."""
    git_commit: str | None = None
    """MLSYS_GIT_COMMIT: source revision recorded in model cards (set at image build time;
    unset = read from ``.git`` if there is one)."""
    budgets: GuardrailBudgets = field(default_factory=GuardrailBudgets)
    bootstrap_resamples: int = 1000
    """Resamples of the paired bootstrap behind ``confidence``."""
    min_baseline_lift: float = 0.05
    """MLSYS_MIN_BASELINE_LIFT: skill over the trivial baseline a challenger needs,
    ``(score - baseline) / (perfect - baseline)`` (the quality floor)."""
    rollout: str = "direct"
    """MLSYS_ROLLOUT: ``direct``, ``canary`` or ``shadow`` for a promotion over a champion."""
    canary_fraction: float = 0.1
    """MLSYS_CANARY_FRACTION: share of requests a canary candidate answers."""


TRAINING_VARIABLES = frozenset(
    {
        names.DATA,
        names.TARGET,
        names.TASK,
        names.METRIC,
        names.MIN_IMPROVEMENT,
        names.CONFIDENCE,
        names.SEED,
        names.ALLOW_SCHEMA_CHANGE,
        names.TIME_BUDGET_SECONDS,
        names.MAX_FIT_ROWS,
        names.GIT_COMMIT,
        names.MIN_BASELINE_LIFT,
        names.ROLLOUT,
        names.CANARY_FRACTION,
    }
)
ROLLOUT_VARIABLES = frozenset(
    {
        names.ROLLOUT_MIN_REQUESTS,
        names.ROLLOUT_MIN_BAKE_SECONDS,
        names.ROLLOUT_MAX_ERROR_RATE_INCREASE,
        names.ROLLOUT_MAX_P99_RATIO,
        names.ROLLOUT_MAX_SHADOW_DEVIATION,
        names.ROLLOUT_MAX_QUALITY_DROP,
    }
)
KNOWN_VARIABLES = (
    TRAINING_VARIABLES
    | ROLLOUT_VARIABLES
    | {
        names.ALARM_TOPIC_ARN,
        names.ROLLOUT_EVIDENCE,
        names.REGISTRY_URI,
        names.MODEL_NAME,
        names.LOG_URI,
        names.LOG_DELIVERY,
        names.LOG_INPUTS,
        names.LOG_INPUTS_SAMPLE_RATE,
        names.LOG_RETENTION_DAYS,
        names.LOG_SHARDS,
        names.MODEL_REFRESH_SECONDS,
        names.MAX_BATCH_RECORDS,
        names.MAX_BODY_BYTES,
        names.MAX_LOG_PAGE,
    }
)
"""Every ``MLSYS_*`` variable mlsys reads; others end up in :attr:`Settings.extra`."""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``).

    Training variables are only captured here; :meth:`Settings.training` validates them,
    so ``mlsys models`` and ``mlsys serve`` keep working whatever ``MLSYS_TASK`` says.
    """
    env = os.environ if env is None else env
    return Settings(
        registry_uri=env.get(names.REGISTRY_URI) or DEFAULT_REGISTRY_URI,
        model_name=env.get(names.MODEL_NAME) or DEFAULT_MODEL_NAME,
        log_uri=env.get(names.LOG_URI) or DEFAULT_LOG_URI,
        log_delivery=_choice(env, names.LOG_DELIVERY, "sync", LOG_DELIVERIES),
        log_inputs=_choice(env, names.LOG_INPUTS, "full", LOG_INPUTS),
        log_inputs_sample_rate=_fraction(env, names.LOG_INPUTS_SAMPLE_RATE, 0.05),
        log_retention_days=_int(env, names.LOG_RETENTION_DAYS, 30, minimum=1),
        log_shards=_int(env, names.LOG_SHARDS, 8, minimum=1),
        model_refresh_seconds=_float(env, names.MODEL_REFRESH_SECONDS, 30.0),
        max_batch_records=_int(env, names.MAX_BATCH_RECORDS, 10_000, minimum=1),
        max_body_bytes=_int(env, names.MAX_BODY_BYTES, 6_000_000, minimum=1024),
        max_log_page=_int(env, names.MAX_LOG_PAGE, 1000, minimum=1),
        # Lambda sets the daemon address only when the function has active tracing.
        tracing=bool(env.get("AWS_XRAY_DAEMON_ADDRESS"))
        and env.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true"),
        training_env={k: v for k, v in env.items() if k in TRAINING_VARIABLES},
        rollout_env={k: v for k, v in env.items() if k in ROLLOUT_VARIABLES},
        alarm_topic_arn=env.get(names.ALARM_TOPIC_ARN) or None,
        rollout_evidence=_choice(env, names.ROLLOUT_EVIDENCE, "log", ("log", "metrics")),
        extra={
            k: v
            for k, v in env.items()
            if k.startswith(names.ENV_PREFIX) and k not in KNOWN_VARIABLES
        },
    )


def load_training_settings(env: Mapping[str, str]) -> TrainingSettings:
    """Validate the training variables of ``env``; :class:`ConfigError` names a bad one."""
    return TrainingSettings(
        data=env.get(names.DATA) or None,
        target=env.get(names.TARGET) or None,
        task=_choice(env, names.TASK, "auto", ("auto", "regression", "classification")),
        metric=env.get(names.METRIC) or None,
        min_improvement=_float(env, names.MIN_IMPROVEMENT, 0.0),
        confidence=_optional_float(env, names.CONFIDENCE, above=0.0, below=1.0),
        seed=_int(env, names.SEED, 0),
        allow_schema_change=_bool(env, names.ALLOW_SCHEMA_CHANGE, False),
        time_budget_seconds=_float(env, names.TIME_BUDGET_SECONDS, 120.0, minimum=1.0),
        max_fit_rows=_int(env, names.MAX_FIT_ROWS, 0, minimum=1)
        if env.get(names.MAX_FIT_ROWS)
        else None,
        git_commit=env.get(names.GIT_COMMIT) or None,
        min_baseline_lift=_float(env, names.MIN_BASELINE_LIFT, 0.05, minimum=-math.inf),
        rollout=_choice(env, names.ROLLOUT, "direct", ("direct", "canary", "shadow")),
        canary_fraction=_optional_float(env, names.CANARY_FRACTION, above=0.0, below=1.0) or 0.1,
    )
