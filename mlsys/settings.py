"""Runtime settings, read from the environment in exactly one place.

Every runtime component (CLI, training job, Lambda handlers, local server)
calls :func:`load_settings` once and passes the typed values on as keyword
arguments; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsys import names
from mlsys.knobs import BY_ENV, default_of, environment_variables, read_group

DEFAULT_REGISTRY_URI: str = default_of("runtime", "registry_uri")
DEFAULT_LOG_URI: str = default_of("runtime", "log_uri")
DEFAULT_MODEL_NAME: str = default_of("runtime", "model_name")
LOG_DELIVERIES = BY_ENV[names.LOG_DELIVERY].choices
LOG_INPUTS = BY_ENV[names.LOG_INPUTS].choices
LOCAL_REFRESH_SECONDS = 1.0
"""How often ``mlsys serve`` re-reads a directory registry's champion pointer at most (a
small file read, so a promotion shows up at once rather than after the Lambda interval)."""


def _runtime(field_name: str) -> Any:
    return default_of("runtime", field_name)


def _training(field_name: str) -> Any:
    return default_of("training", field_name)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Typed runtime configuration. Each field's variable, default, bounds and meaning are
    declared once, in :data:`mlsys.knobs.KNOBS` (``docs/configuration.md``)."""

    registry_uri: str = DEFAULT_REGISTRY_URI
    model_name: str = DEFAULT_MODEL_NAME
    log_uri: str = DEFAULT_LOG_URI
    log_delivery: str = _runtime("log_delivery")
    tracing: bool = False
    """X-Ray tracing is active (the Lambda function has it on): the inference
    functions then trace model load and predict (importing the X-Ray SDK)."""
    log_inputs: str = _runtime("log_inputs")
    log_inputs_sample_rate: float = _runtime("log_inputs_sample_rate")
    log_retention_days: int = _runtime("log_retention_days")
    log_shards: int = _runtime("log_shards")
    model_refresh_seconds: float = _runtime("model_refresh_seconds")
    max_batch_records: int = _runtime("max_batch_records")
    max_body_bytes: int = _runtime("max_body_bytes")
    max_log_page: int = _runtime("max_log_page")
    alarm_topic_arn: str | None = _runtime("alarm_topic_arn")
    training_env: Mapping[str, str] = field(default_factory=dict)
    """The raw ``MLSYS_*`` training variables (see :class:`TrainingSettings`), validated only
    by :meth:`training`, so a bad training variable fails ``mlsys train`` and nothing else."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unrecognised MLSYS_* variables, kept so callers can warn about typos."""
    rollout_env: Mapping[str, str] = field(default_factory=dict)
    """The raw ``MLSYS_ROLLOUT_*`` policy variables, validated by :meth:`rollout_margins`."""

    def training(self) -> TrainingSettings:
        """The training defaults; :class:`ConfigError` names a bad variable."""
        return load_training_settings(self.training_env)

    def rollout_margins(self) -> dict[str, Any]:
        """The automatic rollout policy's margins (``MLSYS_ROLLOUT_*``), by
        :class:`~mlsys.rollout.policy.RolloutPolicy` field; :class:`ConfigError` names a
        bad variable."""
        return read_group("rollout", self.rollout_env)


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
    """Everything a training run is configured by.

    ``MLSYS_*`` variables give the defaults (:meth:`Settings.training`); the CLI applies
    its flags over them with :func:`dataclasses.replace`; tests construct it directly.
    Fields that are knobs are declared in :data:`mlsys.knobs.KNOBS`.
    """

    data: str | None = _training("data")
    target: str | None = _training("target")
    task: str = _training("task")
    metric: str | None = _training("metric")
    min_improvement: float = _training("min_improvement")
    confidence: float | None = _training("confidence")
    seed: int = _training("seed")
    allow_schema_change: bool = _training("allow_schema_change")
    time_budget_seconds: float = _training("time_budget_seconds")
    max_fit_rows: int | None = _training("max_fit_rows")
    git_commit: str | None = _training("git_commit")
    min_baseline_lift: float = _training("min_baseline_lift")
    rollout: str = _training("rollout")
    canary_fraction: float = _training("canary_fraction")
    candidates: tuple[str, ...] | None = None
    """Candidate models to search (``--models``); ``None`` = every one, cheapest first.
    Names are checked against :data:`training_job.search.CANDIDATES` when a run starts."""
    drop_columns: tuple[str, ...] = ()
    """Columns left out of the features (``--drop COL``, repeatable), e.g. an ID column;
    recorded in the model card. A name the data does not have is a :class:`DataError`."""
    budgets: GuardrailBudgets = field(default_factory=GuardrailBudgets)
    bootstrap_resamples: int = 1000
    """Resamples of the paired bootstrap behind ``confidence``."""


TRAINING_VARIABLES = frozenset(environment_variables(["training"]))
ROLLOUT_VARIABLES = frozenset(environment_variables(["rollout"]))
KNOWN_VARIABLES = frozenset(environment_variables())
"""Every ``MLSYS_*`` variable mlsys reads; others end up in :attr:`Settings.extra`."""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``).

    Training variables are only captured here; :meth:`Settings.training` validates them,
    so ``mlsys models`` and ``mlsys serve`` keep working whatever ``MLSYS_TASK`` says.
    """
    env = os.environ if env is None else env
    return Settings(
        **read_group("runtime", env),
        # Lambda sets the daemon address only when the function has active tracing.
        tracing=bool(env.get("AWS_XRAY_DAEMON_ADDRESS"))
        and env.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true"),
        training_env={k: v for k, v in env.items() if k in TRAINING_VARIABLES},
        rollout_env={k: v for k, v in env.items() if k in ROLLOUT_VARIABLES},
        extra={
            k: v
            for k, v in env.items()
            if k.startswith(names.ENV_PREFIX) and k not in KNOWN_VARIABLES
        },
    )


def load_training_settings(env: Mapping[str, str]) -> TrainingSettings:
    """Validate the training variables of ``env``; :class:`ConfigError` names a bad one."""
    return TrainingSettings(**read_group("training", env))
