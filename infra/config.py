"""Typed configuration for the CDK app, parsed once from CDK context.

``app.py`` is the only place that reads context (``cdk.json``, ``-c key=value``);
it hands the raw values to :func:`config_from_context`, which validates them and
returns keyword-only dataclasses that the stacks and constructs take as arguments.

Every key, its default and its meaning are listed in ``docs/configuration.md``, generated
from :data:`DEFAULTS`, :data:`CONTEXT_HELP` and, for the keys that set a runtime setting of
the training job or the predict function, from their declaration in :data:`mlsys.knobs.KNOBS`
(``cdk.json`` mirrors :data:`DEFAULTS`; a test keeps the two equal).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlsys.knobs import BY_CONTEXT, Knob, KnobValueError, knobs_of

PredictAuth = Literal["api-key", "iam"]
LogInputs = Literal["sampled", "digest", "full"]

PREDICT_DEPLOYMENTS = (
    "LambdaCanary10Percent5Minutes",
    "LambdaCanary10Percent10Minutes",
    "LambdaCanary10Percent15Minutes",
    "LambdaCanary10Percent30Minutes",
    "LambdaLinear10PercentEvery1Minute",
    "LambdaLinear10PercentEvery2Minutes",
    "LambdaLinear10PercentEvery3Minutes",
    "LambdaLinear10PercentEvery10Minutes",
    "LambdaAllAtOnce",
)
"""CodeDeploy's predefined Lambda deployment configurations (``predict_deployment``)."""
_LOG_INPUTS: Mapping[str, LogInputs] = {"sampled": "sampled", "digest": "digest", "full": "full"}

DEFAULTS: Mapping[str, object] = {
    "stage": "dev",
    "account": "",
    "region": "",
    "model_name": "default",
    "training_schedule": "cron(0 3 ? * SUN *)",
    "training_on_upload": True,
    "training_instance_types": ["c6i.xlarge", "m6i.xlarge", "c5.xlarge"],
    "training_max_vcpus": 16,
    "training_spot": True,
    "training_job_vcpus": 2,
    "training_job_memory_mib": 6144,
    "training_timeout_minutes": 120,
    "training_image_tag": "",
    "predict_auth": "api-key",
    "throttle_rate": 100,
    "throttle_burst": 200,
    "quota_per_day": 100000,
    "lambda_memory_mb": 1024,
    "lambda_timeout_seconds": 15,
    "provisioned_concurrency_min": 0,
    "provisioned_concurrency_max": 10,
    "provisioned_utilization_target": 0.7,
    "reserved_concurrency": 0,
    "predict_deployment": "LambdaCanary10Percent5Minutes",
    "minimal_idle_cost": False,
    "log_retention_days": 30,
    "alarm_email": "",
    "latency_p99_ms": 1000,
    "monitor_schedule": "rate(1 hour)",
    "monitor_window_minutes": 60,
    "monitor_lookback_minutes": 0,
    "monitor_drift_threshold": 0.2,
    "monitor_quality_floor": 0.0,
    "monitor_retrain_on_alarm": False,
    "github_repository": "owner/repo",
    "github_oidc_provider": "create",
    "cdk_qualifier": "hnb659fds",
    "lambda_bundle_dir": ".build/lambda",
    **{key: knob.deploy_default for key, knob in BY_CONTEXT.items()},
}
"""Every context key and its default (the training and predict settings among them take
their defaults from :data:`mlsys.knobs.KNOBS`)."""

CONTEXT_HELP: Mapping[str, str] = {
    "stage": "stage name: stack names and API stage",
    "account": "pin the stacks to an account; empty = environment-agnostic (CLI credentials "
    "decide)",
    "region": "pin the stacks to a region; empty = environment-agnostic",
    "model_name": "registry model trained and served",
    "training_schedule": "EventBridge schedule of training jobs; empty disables it",
    "training_on_upload": "retrain when an object lands under data/ in the model bucket",
    "training_instance_types": "EC2 instance types of the Batch compute environment (x86_64: "
    "the image CI builds)",
    "training_max_vcpus": "compute environment ceiling",
    "training_spot": "use Spot capacity (a failed run leaves the champion untouched, so "
    "interruption is safe)",
    "training_job_vcpus": "vCPUs per training job",
    "training_job_memory_mib": "memory per training job (docs/training.md, 'Sizing on AWS')",
    "training_timeout_minutes": "Batch attempt timeout",
    "training_image_tag": "pin the training image tag in ECR; empty = the TrainingImageTag "
    "stack parameter, which the deploy workflow passes after pushing an image and any other "
    "deploy keeps",
    "predict_auth": "api-key (key + usage plan) or iam",
    "throttle_rate": "stage and usage-plan throttling, requests/s",
    "throttle_burst": "stage and usage-plan throttling, burst",
    "quota_per_day": "usage-plan quota (requests per day)",
    "lambda_memory_mb": "memory of the inference functions",
    "lambda_timeout_seconds": "timeout of the inference functions (below API Gateway's 29 s)",
    "provisioned_concurrency_min": "provisioned concurrency floor (0 = none, no idle cost; "
    "> 0 needs an account concurrency quota above 100 + this value)",
    "provisioned_concurrency_max": "provisioned concurrency autoscaling ceiling; equal to the "
    "min for a fixed pool, the only one a canary or linear predict_deployment allows",
    "provisioned_utilization_target": "target tracking on provisioned-concurrency utilisation",
    "reserved_concurrency": "hard cap on the predict function; 0 = none (a fresh account's "
    "quota cannot reserve any)",
    "predict_deployment": "CodeDeploy configuration shifting the live alias to a new "
    "version (rolled back on alarm)",
    "minimal_idle_cost": "no dashboard, KMS key or model monitor, only the three rollback "
    "alarms: idle cost ~USD 0.65 a month, nothing within the free tier (needs "
    "provisioned_concurrency_min 0)",
    "log_retention_days": "CloudWatch Logs retention and system-log TTL",
    "alarm_email": "optional e-mail subscription to the alarm topic",
    "latency_p99_ms": "p99 latency alarm threshold",
    "monitor_schedule": "EventBridge schedule of the model monitor; empty disables it",
    "monitor_window_minutes": "log window each monitor run reads",
    "monitor_lookback_minutes": "also join a run's feedback with predictions this much "
    "older than its window (late labels; each run then reads that much more log)",
    "monitor_drift_threshold": "PSI above which a feature or the predictions count as "
    "drifted (alarm threshold)",
    "monitor_quality_floor": "alarm when the champion's live metric (r2, f1_macro...) falls "
    "below this",
    "monitor_retrain_on_alarm": "a drift or quality alarm submits a training job on the "
    "newest data (as the schedule does)",
    "github_repository": "repository (OWNER/NAME) allowed to assume the deploy role, from "
    "its GitHub environment named <stage>; synthesis refuses the placeholder owner/repo",
    "github_oidc_provider": "create the account's GitHub OIDC provider, or reuse it: "
    "existing (this account's) or its ARN (an account holds one)",
    "cdk_qualifier": "bootstrap qualifier of the deploy roles",
    "lambda_bundle_dir": "code asset built by make lambda-package",
}
"""What each context key that is not a runtime setting means (``docs/configuration.md``)."""

API_GATEWAY_TIMEOUT_SECONDS = 29
"""API Gateway's default integration timeout; the functions must finish first."""

LOG_RETENTION_CHOICES = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096)
"""Retention periods CloudWatch Logs accepts."""


_CLI_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


class ContextError(ValueError):
    """A context value is missing or invalid; the message names the key."""


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    schedule: str
    on_upload: bool
    instance_types: tuple[str, ...]
    max_vcpus: int
    spot: bool
    job_vcpus: int
    job_memory_mib: int
    timeout_minutes: int
    image_tag: str
    job_settings: Mapping[str, str]
    """``MLSYS_*`` variables of the job from the context keys that set training knobs
    (:data:`mlsys.knobs.KNOBS`); a knob left unset (empty, or 0 for a row cap) is absent."""


@dataclass(frozen=True, kw_only=True)
class ServingConfig:
    predict_auth: PredictAuth
    throttle_rate: float
    throttle_burst: int
    quota_per_day: int
    lambda_memory_mb: int
    lambda_timeout_seconds: int
    provisioned_concurrency_min: int
    provisioned_concurrency_max: int
    provisioned_utilization_target: float
    reserved_concurrency: int | None
    """None: no reserved concurrency (the function draws on the account's pool)."""
    deployment: str
    """One of :data:`PREDICT_DEPLOYMENTS`."""
    log_inputs: LogInputs
    log_inputs_sample_rate: float
    lambda_bundle_dir: str


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    alarm_email: str
    latency_p99_ms: int
    minimal: bool
    """``minimal_idle_cost``: no dashboard, KMS key or model monitor; rollback alarms only."""


@dataclass(frozen=True, kw_only=True)
class ModelMonitorConfig:
    schedule: str
    window_minutes: int
    lookback_minutes: int
    drift_threshold: float
    quality_floor: float
    retrain_on_alarm: bool


@dataclass(frozen=True, kw_only=True)
class CiConfig:
    github_repository: str
    github_oidc_provider: str
    """``create``, ``existing`` or a provider ARN."""
    cdk_qualifier: str


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    stage: str
    account: str
    region: str
    model_name: str
    log_retention_days: int
    training: TrainingConfig
    serving: ServingConfig
    monitoring: MonitoringConfig
    model_monitor: ModelMonitorConfig
    ci: CiConfig


class _Reader:
    """Typed access to raw context values (``-c key=value`` arrives as a string)."""

    def __init__(self, context: Mapping[str, object]) -> None:
        # Feature flags ("@aws-cdk/..."), the CLI's own keys ("aws:cdk:...", lookups in
        # cdk.context.json, acknowledged notices) are not ours.
        unknown = sorted(
            key
            for key in context
            if key not in DEFAULTS
            and key not in _CLI_KEYS
            and not key.startswith("@")
            and ":" not in key
        )
        if unknown:
            raise ContextError(f"unknown context key(s): {', '.join(unknown)}")
        self._values = {**DEFAULTS, **{k: v for k, v in context.items() if v is not None}}

    def text(self, key: str, *, pattern: str | None = None, empty_ok: bool = True) -> str:
        value = self._values[key]
        if not isinstance(value, str):
            raise ContextError(f"context {key} must be a string, got {value!r}")
        if not value and not empty_ok:
            raise ContextError(f"context {key} must not be empty")
        if value and pattern and not re.fullmatch(pattern, value):
            raise ContextError(f"context {key}={value!r} does not match {pattern}")
        return value

    def flag(self, key: str) -> bool:
        value = self._values[key]
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ContextError(f"context {key} must be true or false, got {value!r}")

    def number(self, key: str, *, minimum: float, maximum: float | None = None) -> float:
        value = self._values[key]
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ContextError(f"context {key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ContextError(f"context {key} must be a number, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ContextError(f"context {key} must be {bounds}, got {value}")
        return float(value)

    def integer(self, key: str, *, minimum: int, maximum: int | None = None) -> int:
        value = self.number(key, minimum=minimum, maximum=maximum)
        if not value.is_integer():
            raise ContextError(f"context {key} must be an integer, got {value}")
        return int(value)

    def knob(self, knob: Knob) -> Any:
        """The context value of a runtime setting, validated by its declaration."""
        assert knob.context is not None
        try:
            return knob.parse(self._values[knob.context])
        except KnobValueError as error:
            raise ContextError(f"context {knob.context} {error}") from None

    def job_settings(self) -> dict[str, str]:
        settings = {}
        for knob in knobs_of("training"):
            if knob.context is None:
                continue
            raw = self._values[knob.context]
            if raw in ("", None) or (knob.zero_unsets and raw in (0, "0")):
                continue
            settings[knob.env] = knob.to_env(self.knob(knob))
        return settings

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._values[key]
        if isinstance(value, str):  # -c key='["a","b"]' or -c key=a,b
            value = json.loads(value) if value.startswith("[") else value.split(",")
        if (
            not isinstance(value, Sequence)
            or not value
            or not all(isinstance(item, str) and item for item in value)
        ):
            raise ContextError(f"context {key} must be a non-empty list of strings, got {value!r}")
        return tuple(str(item).strip() for item in value)


def _serving_config(read: _Reader) -> ServingConfig:
    auth = read.text("predict_auth")
    if auth not in ("api-key", "iam"):
        raise ContextError(f"context predict_auth must be 'api-key' or 'iam', got {auth!r}")
    pc_min = read.integer("provisioned_concurrency_min", minimum=0)
    pc_max = read.integer("provisioned_concurrency_max", minimum=max(pc_min, 1))
    reserved = read.integer("reserved_concurrency", minimum=0)
    if reserved and reserved < pc_max:
        raise ContextError(
            f"context reserved_concurrency ({reserved}) must be 0 (none) or >= "
            f"provisioned_concurrency_max ({pc_max})"
        )
    deployment = _predict_deployment(read, pc_min=pc_min, pc_max=pc_max)
    log_inputs = read.knob(BY_CONTEXT["log_inputs"])
    return ServingConfig(
        predict_auth="iam" if auth == "iam" else "api-key",
        throttle_rate=read.number("throttle_rate", minimum=1),
        throttle_burst=read.integer("throttle_burst", minimum=1),
        quota_per_day=read.integer("quota_per_day", minimum=1),
        lambda_memory_mb=read.integer("lambda_memory_mb", minimum=128, maximum=10240),
        lambda_timeout_seconds=read.integer(
            "lambda_timeout_seconds", minimum=1, maximum=API_GATEWAY_TIMEOUT_SECONDS - 1
        ),
        provisioned_concurrency_min=pc_min,
        provisioned_concurrency_max=pc_max,
        provisioned_utilization_target=read.number(
            "provisioned_utilization_target", minimum=0.1, maximum=0.9
        ),
        reserved_concurrency=reserved or None,
        deployment=deployment,
        log_inputs=_LOG_INPUTS[log_inputs],
        log_inputs_sample_rate=read.knob(BY_CONTEXT["log_inputs_sample_rate"]),
        lambda_bundle_dir=read.text("lambda_bundle_dir", empty_ok=False),
    )


ALL_AT_ONCE = "LambdaAllAtOnce"


def _predict_deployment(read: _Reader, *, pc_min: int, pc_max: int) -> str:
    """CodeDeploy's config for the predict alias, in the one combination with provisioned
    concurrency that works: while a canary or linear shift weights the ``live`` alias,
    Lambda refuses every change of its provisioned concurrency ("Alias with weights can not
    be used with Provisioned Concurrency"), so autoscaling (min < max) would fail on each
    step of every shift. An autoscaled pool therefore deploys all at once; a canary needs
    a fixed pool (min == max, no scaling) or none."""
    deployment = read.text("predict_deployment", empty_ok=False)
    if deployment not in PREDICT_DEPLOYMENTS:
        raise ContextError(
            f"context predict_deployment must be one of {', '.join(PREDICT_DEPLOYMENTS)}, "
            f"got {deployment!r}"
        )
    if 0 < pc_min < pc_max and deployment != ALL_AT_ONCE:
        raise ContextError(
            f"context predict_deployment={deployment} weights the live alias, and Lambda "
            f"refuses provisioned-concurrency changes on a weighted alias, so autoscaling "
            f"provisioned_concurrency_min={pc_min} to provisioned_concurrency_max={pc_max} "
            f"would fail during every shift: use predict_deployment={ALL_AT_ONCE}, or a "
            f"fixed pool (provisioned_concurrency_max={pc_min})"
        )
    return deployment


def config_from_context(context: Mapping[str, object]) -> AppConfig:
    """Validate raw context values (missing keys take :data:`DEFAULTS`)."""
    read = _Reader(context)
    retention = read.integer("log_retention_days", minimum=1)
    if retention not in LOG_RETENTION_CHOICES:
        raise ContextError(
            f"context log_retention_days must be one of {LOG_RETENTION_CHOICES}, got {retention}"
        )
    serving = _serving_config(read)
    minimal = read.flag("minimal_idle_cost")
    if minimal and serving.provisioned_concurrency_min:
        raise ContextError(
            "context minimal_idle_cost=true needs provisioned_concurrency_min=0 "
            "(provisioned concurrency bills while idle)"
        )
    return AppConfig(
        stage=read.text("stage", pattern=r"[a-z][a-z0-9-]{0,20}", empty_ok=False),
        account=read.text("account", pattern=r"\d{12}"),
        region=read.text("region", pattern=r"[a-z]{2}(-[a-z]+)+-\d"),
        model_name=read.text("model_name", pattern=r"[A-Za-z0-9_.-]{1,64}", empty_ok=False),
        log_retention_days=retention,
        training=_training_config(read),
        serving=serving,
        monitoring=MonitoringConfig(
            alarm_email=read.text("alarm_email", pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+"),
            latency_p99_ms=read.integer("latency_p99_ms", minimum=1),
            minimal=minimal,
        ),
        model_monitor=ModelMonitorConfig(
            schedule=read.text("monitor_schedule", pattern=r"(cron|rate)\(.+\)"),
            window_minutes=read.integer("monitor_window_minutes", minimum=1, maximum=1440),
            lookback_minutes=read.integer("monitor_lookback_minutes", minimum=0, maximum=43200),
            drift_threshold=read.number("monitor_drift_threshold", minimum=0.01),
            quality_floor=read.number("monitor_quality_floor", minimum=-1e9),
            retrain_on_alarm=read.flag("monitor_retrain_on_alarm"),
        ),
        ci=CiConfig(
            github_repository=_github_repository(read),
            github_oidc_provider=read.text(
                "github_oidc_provider",
                pattern=r"create|existing|arn:aws[a-z-]*:iam::\d{12}:oidc-provider/.+",
                empty_ok=False,
            ),
            cdk_qualifier=read.text("cdk_qualifier", pattern=r"[a-z0-9]{1,10}", empty_ok=False),
        ),
    )


PLACEHOLDER_REPOSITORY = "owner/repo"
"""cdk.json's stand-in for the user's repository; synthesis refuses it (see below)."""


def _github_repository(read: _Reader) -> str:
    """OWNER/NAME of the repository whose GitHub environment may assume the deploy role.

    The placeholder is refused: the role would trust ``repo:owner/repo:environment:<stage>``,
    i.e. whoever owns that GitHub repository could deploy into the account.
    """
    value = read.text(
        "github_repository", pattern=r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", empty_ok=False
    )
    if value.lower() == PLACEHOLDER_REPOSITORY:
        raise ContextError(
            f"context github_repository is the placeholder {PLACEHOLDER_REPOSITORY!r}: set your "
            'repository in cdk.json ("github_repository": "OWNER/NAME") or pass '
            "-c github_repository=OWNER/NAME"
        )
    return value


def _training_config(read: _Reader) -> TrainingConfig:
    training = TrainingConfig(
        schedule=read.text("training_schedule", pattern=r"(cron|rate)\(.+\)"),
        on_upload=read.flag("training_on_upload"),
        instance_types=read.texts("training_instance_types"),
        max_vcpus=read.integer("training_max_vcpus", minimum=1),
        spot=read.flag("training_spot"),
        job_vcpus=read.integer("training_job_vcpus", minimum=1),
        job_memory_mib=read.integer("training_job_memory_mib", minimum=512),
        timeout_minutes=read.integer("training_timeout_minutes", minimum=5),
        job_settings=read.job_settings(),
        image_tag=read.text("training_image_tag", pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"),
    )
    if training.job_vcpus > training.max_vcpus:
        raise ContextError("context training_job_vcpus must be <= training_max_vcpus")
    return training
