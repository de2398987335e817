"""``mlsys train``: train a challenger and promote it if it beats the champion.

Every option defaults to the matching ``MLSYS_*`` environment variable (read
in :mod:`mlsys.settings`), so the AWS Batch container can be configured either
way. Exit 0 whether or not the challenger is promoted; bad input exits 2 (via
the ``mlsys`` dispatcher) with nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from mlsys.cli.common import add_location_arguments, fraction
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, EventLog, open_event_log_for, parse_log_uri
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings, TrainingSettings
from training_job.cloudwatch import emit_training_metrics
from training_job.run import TrainingRun, summary_lines
from training_job.schema import AUTO_CLASSIFICATION_MAX_LEVELS
from training_job.search import CANDIDATES

METRIC_CHOICES = ("r2", "rmse", "mae", "f1_macro", "accuracy", "log_loss", "roc_auc")


def _non_negative(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(raw: str) -> float:
    value = _non_negative(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _row_cap(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _candidates(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        choices = ", ".join(CANDIDATES)
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from {choices}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser)
    add_location_arguments(parser, log_help="system log for the training event")
    _add_policy_arguments(parser)
    _add_search_and_output_arguments(parser)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH_OR_S3_URI",
        help="CSV/Parquet file or s3:// URI; a directory or an s3:// prefix ending in '/' "
        "means its newest file (env MLSYS_DATA; default, also named sklearn:diabetes: "
        "scikit-learn's diabetes data)",
    )
    parser.add_argument(
        "--target", metavar="COL", help="target column (env MLSYS_TARGET; default: the last column)"
    )
    parser.add_argument(
        "--task",
        choices=("auto", "regression", "classification"),
        help="env MLSYS_TASK; default auto: strings and booleans are class labels, and so "
        f"are whole numbers with at most {AUTO_CLASSIFICATION_MAX_LEVELS} distinct values "
        "(e.g. 0/1/2) each seen twice on average; any other number (fractions, many "
        "distinct values) is regression",
    )
    parser.add_argument(
        "--metric",
        choices=METRIC_CHOICES,
        help="primary holdout metric (env MLSYS_METRIC; default r2 for "
        "regression, f1_macro for classification)",
    )


def _add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-improvement",
        type=_non_negative,
        metavar="X",
        help="absolute metric gain needed over the champion "
        "(env MLSYS_MIN_IMPROVEMENT; default 0: any strict improvement)",
    )
    parser.add_argument(
        "--confidence",
        type=fraction,
        metavar="LEVEL",
        help="also require a paired-bootstrap improvement significant at this "
        "level, e.g. 0.95 (env MLSYS_CONFIDENCE)",
    )
    parser.add_argument(
        "--min-baseline-lift",
        type=float,
        metavar="X",
        help="quality floor: skill over the trivial baseline (training mean / majority "
        "class) a challenger needs, (score - baseline) / (perfect - baseline) "
        "(env MLSYS_MIN_BASELINE_LIFT; default 0.05)",
    )
    parser.add_argument(
        "--rollout",
        choices=("direct", "canary", "shadow"),
        help="how a challenger replaces an existing champion: at once, as a canary, or in "
        "shadow (env MLSYS_ROLLOUT; default direct; a first champion is always direct)",
    )
    parser.add_argument(
        "--canary-fraction",
        type=fraction,
        metavar="F",
        help="share of requests a canary answers (env MLSYS_CANARY_FRACTION; default 0.1)",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="env MLSYS_SEED; default 0")
    parser.add_argument(
        "--allow-schema-change",
        action="store_true",
        default=None,
        help="promote even if the champion cannot score the new data "
        "(env MLSYS_ALLOW_SCHEMA_CHANGE)",
    )


def _add_search_and_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-budget",
        type=_positive,
        metavar="SECONDS",
        help="wall-clock budget of the model search; the final fit uses every training row "
        "whatever it takes (env MLSYS_TIME_BUDGET_SECONDS; default 120)",
    )
    parser.add_argument(
        "--max-fit-rows",
        type=_row_cap,
        metavar="N",
        help="fit the final model on a random sample of at most N training rows "
        "(env MLSYS_MAX_FIT_ROWS; default: every row)",
    )
    parser.add_argument(
        "--models",
        type=_candidates,
        metavar="NAMES",
        help=f"comma-separated candidate models (default: {','.join(CANDIDATES)})",
    )
    parser.add_argument(
        "--emf",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print CloudWatch EMF metrics on stdout (the training container passes "
        "--emf: its stdout goes to CloudWatch Logs; default off)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


class DeferredEventLog:
    """The system log, opened on the first append: a run stopped by bad input never
    creates (or connects to) the log, so it leaves nothing behind."""

    def __init__(self, uri: str, *, settings: Settings) -> None:
        # Checked now so a mistyped --log fails before training, not after it.
        parse_log_uri(uri)
        self.uri = uri
        self._settings = settings
        self._log: EventLog | None = None

    def append(self, event: Event) -> None:
        if self._log is None:
            self._log = open_event_log_for(self._settings, self.uri)
        self._log.append(event)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


FLAG_FIELDS = {
    "data": "data",
    "target": "target",
    "task": "task",
    "metric": "metric",
    "min_improvement": "min_improvement",
    "confidence": "confidence",
    "seed": "seed",
    "allow_schema_change": "allow_schema_change",
    "time_budget": "time_budget_seconds",
    "max_fit_rows": "max_fit_rows",
    "models": "candidates",
    "min_baseline_lift": "min_baseline_lift",
    "rollout": "rollout",
    "canary_fraction": "canary_fraction",
}
"""argparse destination -> :class:`TrainingSettings` field it overrides when given."""


def config_from(args: argparse.Namespace, settings: Settings) -> TrainingSettings:
    """Flags over ``MLSYS_*`` defaults; a bad training variable is a :class:`ConfigError`."""
    flags = {field: getattr(args, dest) for dest, field in FLAG_FIELDS.items()}
    return replace(settings.training(), **{k: v for k, v in flags.items() if v is not None})


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = config_from(args, settings)
    if config.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {config.seed}")
    registry = ModelRegistry.open(
        _pick(args.registry, settings.registry_uri),
        model_name=_pick(args.model_name, settings.model_name),
    )
    event_log = DeferredEventLog(_pick(args.log_uri, settings.log_uri), settings=settings)
    outcome = TrainingRun(config, registry=registry, event_log=event_log).execute()
    result = outcome.to_dict()
    for warning in result["data_checks"]:
        print(
            f"mlsys train: warning: data check {warning['check']}: column "
            f"{warning['column']!r} {warning['detail']}",
            file=sys.stderr,
        )
    if getattr(args, "emf", None):
        emit_training_metrics(result, stream=sys.stdout)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("\n".join(summary_lines(outcome)))
    return 0
