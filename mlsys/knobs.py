"""Every runtime setting, declared once.

A :class:`Knob` names a setting's field, environment variable, command-line flag and CDK
context key (where it has them), its type, default, bounds and help. Everything else is
derived from :data:`KNOBS`:

* :func:`mlsys.settings.load_settings` / ``load_training_settings`` read and validate the
  environment with :meth:`Knob.from_env`, and the settings dataclasses take their defaults
  from :func:`default_of`;
* the CLI builds its flags, their validation and their help (environment variable and
  default included) with :func:`mlsys.cli.common.add_knob_argument`;
* the CDK app validates a context value with :meth:`Knob.parse` and turns it into the
  training job's environment with :meth:`Knob.to_env` (``infra/config.py``);
* ``docs/configuration.md`` is generated from it (``make docs``; a test fails when stale).

This module imports nothing beyond the standard library, :mod:`mlsys.names` and
:mod:`mlsys.errors`, so the CDK app can use it without the runtime stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlsys import names
from mlsys.errors import ConfigError

Group = Literal["runtime", "training", "rollout"]

AUTO_CLASSIFICATION_MAX_LEVELS = 20
"""``task=auto``: whole numbers with at most this many distinct values (each seen twice on
average) are class labels."""
Kind = Literal["text", "int", "float", "bool", "choice"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class KnobValueError(ValueError):
    """A value a knob refuses; the message says why without naming where it came from,
    so each caller can prefix the variable, flag or context key."""


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One setting. ``default`` is the local default; ``deploy_default`` the value the CDK
    app passes when it differs (e.g. a longer search budget on AWS)."""

    field: str
    """Attribute of :class:`~mlsys.settings.Settings` (``runtime``), of
    :class:`~mlsys.settings.TrainingSettings` (``training``) or of
    :class:`~mlsys.rollout.policy.RolloutPolicy` (``rollout``)."""
    env: str
    group: Group
    kind: Kind
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    """Bounds are exclusive (``0 < x < 1``) instead of inclusive."""
    flag: str | None = None
    """``mlsys train`` flag (training knobs only)."""
    metavar: str | None = None
    context: str | None = None
    """CDK context key whose value reaches the training job as ``env``."""
    deploy_default: Any = None
    zero_unsets: bool = False
    """A context value of 0 means "unset" (the job then uses ``default``, ``None``)."""

    def parse(self, raw: Any) -> Any:
        """``raw`` (a string from the environment or a flag, or a JSON value from CDK
        context) as this knob's type; :class:`KnobValueError` says what is wrong."""
        if self.kind == "text":
            return str(raw)
        if self.kind == "bool":
            return self._parse_bool(raw)
        if self.kind == "choice":
            if raw not in self.choices:
                raise KnobValueError(f"must be one of {', '.join(self.choices)}, got {raw!r}")
            return str(raw)
        return self._check_bounds(self._parse_number(raw))

    def from_env(self, env: Mapping[str, str]) -> Any:
        """The value ``env`` gives, or the default when unset or empty."""
        raw = env.get(self.env)
        if raw is None or (raw == "" and self.kind != "bool"):
            return self.default
        try:
            return self.parse(raw.strip() if self.kind != "text" else raw)
        except KnobValueError as error:
            raise ConfigError(f"{self.env} {error}") from None

    def to_env(self, value: Any) -> str:
        """``value`` as the environment variable's text (``parse`` reads it back)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def describe_bounds(self) -> str:
        if self.kind == "choice":
            return " | ".join(self.choices)
        low, high = self.minimum, self.maximum
        if low is None and high is None:
            return ""
        less = "<" if self.exclusive else "<="
        if high is None:
            return f"{'>' if self.exclusive else '>='} {_number(low)}"
        if low is None:
            return f"{less} {_number(high)}"
        between = f"between {_number(low)} and {_number(high)}"
        return f"{between} (exclusive)" if self.exclusive else between

    def _parse_bool(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE or text == "":
            return False
        raise KnobValueError(f"must be true or false, got {raw!r}")

    def _parse_number(self, raw: Any) -> float | int:
        if isinstance(raw, bool):
            raise KnobValueError(f"must be a number, got {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            what = "an integer" if self.kind == "int" else "a number"
            raise KnobValueError(f"must be {what}, got {raw!r}") from None
        if not math.isfinite(value):
            raise KnobValueError(f"must be a finite number, got {raw!r}")
        if self.kind == "int":
            if not value.is_integer():
                raise KnobValueError(f"must be an integer, got {raw!r}")
            return int(value)
        return value

    def _check_bounds(self, value: float | int) -> float | int:
        low, high = self.minimum, self.maximum
        if self.exclusive:
            inside = (low is None or value > low) and (high is None or value < high)
        else:
            inside = (low is None or value >= low) and (high is None or value <= high)
        if not inside:
            raise KnobValueError(f"must be {self.describe_bounds()}, got {_number(value)}")
        return value


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


KNOBS: tuple[Knob, ...] = (
    # -- where models and the log live, and how the server treats requests --------------
    Knob(
        field="registry_uri",
        env=names.REGISTRY_URI,
        group="runtime",
        kind="text",
        default=".mlsys/registry",
        help="model registry: a directory path or s3://bucket[/prefix]",
    ),
    Knob(
        field="model_name",
        env=names.MODEL_NAME,
        group="runtime",
        kind="text",
        default="default",
        help="which model in the registry to train, serve and monitor: ASCII letters, digits, "
        "'.', '_' and '-', starting with a letter or digit, at most 64 characters",
    ),
    Knob(
        field="log_uri",
        env=names.LOG_URI,
        group="runtime",
        kind="text",
        default="sqlite:///.mlsys/log.sqlite3",
        help="system log: sqlite:///path or dynamodb://table",
    ),
    Knob(
        field="log_delivery",
        env=names.LOG_DELIVERY,
        group="runtime",
        kind="choice",
        choices=("sync", "background", "stdout"),
        default="sync",
        help="sync writes events to the store in the request; background queues them for a "
        "writer thread (long-lived processes only); stdout prints them as JSON lines for "
        "asynchronous ingestion (CloudWatch Logs subscription -> DynamoDB, on AWS)",
    ),
    Knob(
        field="log_inputs",
        env=names.LOG_INPUTS,
        group="runtime",
        kind="choice",
        choices=("full", "digest", "sampled"),
        default="full",
        help="prediction inputs in the log: full, only a sha256 digest, or the inputs of a "
        "sampled share of requests and the digest of the others",
        context="log_inputs",
        deploy_default="sampled",
    ),
    Knob(
        field="log_inputs_sample_rate",
        env=names.LOG_INPUTS_SAMPLE_RATE,
        group="runtime",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        default=0.05,
        help="share of requests logged with their inputs when log inputs are sampled",
        context="log_inputs_sample_rate",
        deploy_default=0.05,
    ),
    Knob(
        field="log_retention_days",
        env=names.LOG_RETENTION_DAYS,
        group="runtime",
        kind="int",
        minimum=1,
        default=30,
        help="time-to-live of log events in DynamoDB (CloudWatch Logs retention on AWS)",
    ),
    Knob(
        field="log_shards",
        env=names.LOG_SHARDS,
        group="runtime",
        kind="int",
        minimum=1,
        default=8,
        help="write shards per event type in DynamoDB",
    ),
    Knob(
        field="model_refresh_seconds",
        env=names.MODEL_REFRESH_SECONDS,
        group="runtime",
        kind="float",
        minimum=0.0,
        default=30.0,
        help="how often a warm server or Lambda container re-checks the champion pointer",
    ),
    Knob(
        field="max_batch_records",
        env=names.MAX_BATCH_RECORDS,
        group="runtime",
        kind="int",
        minimum=1,
        default=10_000,
        help="records one POST /batch accepts",
    ),
    Knob(
        field="max_body_bytes",
        env=names.MAX_BODY_BYTES,
        group="runtime",
        kind="int",
        minimum=1024,
        default=6_000_000,
        help="request body limit in bytes (Lambda's payload limit is 6 MB)",
    ),
    Knob(
        field="max_log_page",
        env=names.MAX_LOG_PAGE,
        group="runtime",
        kind="int",
        minimum=1,
        default=1000,
        help="largest limit GET /log accepts",
    ),
    # -- training --------------------------------------------------------------------------
    Knob(
        field="data",
        env=names.DATA,
        group="training",
        kind="text",
        default=None,
        flag="--data",
        metavar="PATH_OR_S3_URI",
        help="CSV/Parquet file or s3:// URI; a directory or an s3:// prefix ending in '/' "
        "means its newest file; unset (or sklearn:diabetes): scikit-learn's diabetes data",
    ),
    Knob(
        field="target",
        env=names.TARGET,
        group="training",
        kind="text",
        default=None,
        flag="--target",
        metavar="COL",
        help="target column (unset: the data's last column)",
        context="training_target",
        deploy_default="",
    ),
    Knob(
        field="task",
        env=names.TASK,
        group="training",
        kind="choice",
        choices=("auto", "regression", "classification"),
        default="auto",
        flag="--task",
        help="auto: strings and booleans are class labels, and so are whole numbers with "
        f"at most {AUTO_CLASSIFICATION_MAX_LEVELS} distinct values (e.g. 0/1/2) each seen twice "
        "on average; any other number (fractions, many distinct values) is regression",
    ),
    Knob(
        field="metric",
        env=names.METRIC,
        group="training",
        kind="text",
        default=None,
        flag="--metric",
        help="primary holdout metric (unset: r2 for regression, f1_macro for classification)",
    ),
    Knob(
        field="min_improvement",
        env=names.MIN_IMPROVEMENT,
        group="training",
        kind="float",
        minimum=0.0,
        default=0.0,
        flag="--min-improvement",
        metavar="X",
        help="absolute metric gain a challenger needs over the champion (0: any strict "
        "improvement)",
        context="training_min_improvement",
        deploy_default=0.0,
    ),
    Knob(
        field="confidence",
        env=names.CONFIDENCE,
        group="training",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        exclusive=True,
        default=None,
        flag="--confidence",
        metavar="LEVEL",
        help="also require a paired-bootstrap improvement significant at this level, e.g. 0.95",
    ),
    Knob(
        field="seed",
        env=names.SEED,
        group="training",
        kind="int",
        minimum=0,
        default=0,
        flag="--seed",
        metavar="N",
        help="seed of the split, the search and the bootstrap",
    ),
    Knob(
        field="allow_schema_change",
        env=names.ALLOW_SCHEMA_CHANGE,
        group="training",
        kind="bool",
        default=False,
        flag="--allow-schema-change",
        help="promote even if the champion cannot score the new data",
    ),
    Knob(
        field="time_budget_seconds",
        env=names.TIME_BUDGET_SECONDS,
        group="training",
        kind="float",
        minimum=1.0,
        default=120.0,
        flag="--time-budget",
        metavar="SECONDS",
        help="wall-clock budget of the model search; the final fit uses every training row "
        "whatever it takes",
        context="training_time_budget_seconds",
        deploy_default=1800,
    ),
    Knob(
        field="max_fit_rows",
        env=names.MAX_FIT_ROWS,
        group="training",
        kind="int",
        minimum=1,
        default=None,
        flag="--max-fit-rows",
        metavar="N",
        help="fit the final model on a random sample of at most N training rows (unset: every row)",
        context="training_max_fit_rows",
        deploy_default=0,
        zero_unsets=True,
    ),
    Knob(
        field="git_commit",
        env=names.GIT_COMMIT,
        group="training",
        kind="text",
        default=None,
        help="source revision recorded in model cards (set at image build time; unset: read "
        "from .git if there is one)",
    ),
    Knob(
        field="min_baseline_lift",
        env=names.MIN_BASELINE_LIFT,
        group="training",
        kind="float",
        default=0.05,
        flag="--min-baseline-lift",
        metavar="X",
        help="quality floor: skill over the trivial baseline (training mean / majority class) "
        "a challenger needs, (score - baseline) / (perfect - baseline)",
    ),
    Knob(
        field="rollout",
        env=names.ROLLOUT,
        group="training",
        kind="choice",
        choices=("direct", "canary", "shadow"),
        default="direct",
        flag="--rollout",
        help="how a challenger replaces an existing champion: at once, as a canary or in "
        "shadow (a first champion is always direct)",
        context="training_rollout",
        deploy_default="canary",
    ),
    Knob(
        field="canary_fraction",
        env=names.CANARY_FRACTION,
        group="training",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        exclusive=True,
        default=0.1,
        flag="--canary-fraction",
        metavar="F",
        help="share of requests a canary candidate answers",
        context="training_canary_fraction",
        deploy_default=0.1,
    ),
    # -- the automatic rollout policy -----------------------------------------------------
    Knob(
        field="min_requests",
        env=names.ROLLOUT_MIN_REQUESTS,
        group="rollout",
        kind="int",
        minimum=1,
        default=200,
        help="candidate requests (canary) or shadow comparisons needed before completing",
    ),
    Knob(
        field="min_bake_seconds",
        env=names.ROLLOUT_MIN_BAKE_SECONDS,
        group="rollout",
        kind="float",
        minimum=0.0,
        default=900.0,
        help="time since the rollout started needed before completing",
    ),
    Knob(
        field="max_error_rate_increase",
        env=names.ROLLOUT_MAX_ERROR_RATE_INCREASE,
        group="rollout",
        kind="float",
        minimum=0.0,
        default=0.02,
        help="abort when candidate error rate - champion error rate exceeds this",
    ),
    Knob(
        field="max_p99_latency_ratio",
        env=names.ROLLOUT_MAX_P99_RATIO,
        group="rollout",
        kind="float",
        minimum=1.0,
        default=1.5,
        help="abort when the candidate's p99 latency exceeds the champion's times this",
    ),
    Knob(
        field="max_shadow_deviation",
        env=names.ROLLOUT_MAX_SHADOW_DEVIATION,
        group="rollout",
        kind="float",
        minimum=0.0,
        default=0.25,
        help="shadow: abort when the mean prediction deviation from the champion exceeds this",
    ),
    Knob(
        field="max_quality_drop",
        env=names.ROLLOUT_MAX_QUALITY_DROP,
        group="rollout",
        kind="float",
        minimum=0.0,
        default=0.02,
        help="abort when live quality (from feedback) is worse than the champion's by more",
    ),
    # -- operations -------------------------------------------------------------------------
    Knob(
        field="alarm_topic_arn",
        env=names.ALARM_TOPIC_ARN,
        group="runtime",
        kind="text",
        default=None,
        help="SNS topic the rollout evaluator notifies when it completes or aborts a rollout "
        "(set by the CDK app)",
    ),
    Knob(
        field="rollout_evidence",
        env=names.ROLLOUT_EVIDENCE,
        group="runtime",
        kind="choice",
        choices=("log", "metrics"),
        default="log",
        help="where the rollout evaluator reads each version's requests, errors and p99 "
        "latency: log (system-log events, bounded reads; local runs) or metrics (the serving "
        "functions' CloudWatch metrics over the whole bake; the CDK app sets it on the "
        "deployed evaluator)",
    ),
)
"""The declaration. Order is the order of the generated reference."""

BY_FIELD: Mapping[tuple[Group, str], Knob] = {(knob.group, knob.field): knob for knob in KNOBS}
BY_ENV: Mapping[str, Knob] = {knob.env: knob for knob in KNOBS}
BY_CONTEXT: Mapping[str, Knob] = {knob.context: knob for knob in KNOBS if knob.context}


def knobs_of(group: Group) -> tuple[Knob, ...]:
    return tuple(knob for knob in KNOBS if knob.group == group)


def default_of(group: Group, field: str) -> Any:
    """The declared default of ``group``'s ``field`` (what dataclass fields use)."""
    return BY_FIELD[(group, field)].default


def read_group(group: Group, env: Mapping[str, str]) -> dict[str, Any]:
    """Field -> validated value of every knob in ``group``."""
    return {knob.field: knob.from_env(env) for knob in knobs_of(group)}


def environment_variables(groups: Iterable[Group] = ("runtime", "training", "rollout")) -> set[str]:
    return {knob.env for knob in KNOBS if knob.group in set(groups)}
