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

from mlsys.cli.common import add_knob_argument, add_location_arguments
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, EventLog, open_event_log_for, parse_log_uri
from mlsys.knobs import Knob, knobs_of
from mlsys.metrics import METRICS
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings, TrainingSettings
from training_job.cloudwatch import emit_training_metrics
from training_job.progress import SilentProgress, StreamProgress, TrainingProgress
from training_job.run import TrainingRun, summary_lines
from training_job.search import CANDIDATES

EXAMPLES = """examples:
  mlsys train                                the bundled diabetes data, default settings
  mlsys train --data churn.parquet --target churned --metric roc_auc
  mlsys train --data s3://bucket/data/ --drop customer_id --time-budget 600
  mlsys train --json --quiet | jq .promoted  only the result, as JSON"""


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
    for knob in TRAINING_FLAGS:
        add_knob_argument(parser, knob, choices=tuple(METRICS) if knob.field == "metric" else None)
    add_location_arguments(parser, log_help="system log for the training event")
    _add_search_and_output_arguments(parser)


def _add_search_and_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drop",
        action="append",
        metavar="COL",
        dest="drop_columns",
        help="leave column COL out of the features, e.g. an ID (repeatable; recorded in the "
        "model card)",
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
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (progress: stderr)"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress on stderr (by default: a line per phase, a bar on a terminal, and "
        "a leaderboard of the candidates at the end)",
    )


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


TRAINING_FLAGS = tuple(knob for knob in knobs_of("training") if knob.flag)
"""The training knobs ``mlsys train`` has a flag for (declared in :mod:`mlsys.knobs`)."""


def dest_of(knob: Knob) -> str:
    """The argparse destination of a knob's flag."""
    return str(knob.flag).removeprefix("--").replace("-", "_")


FLAG_FIELDS = {
    **{dest_of(knob): knob.field for knob in TRAINING_FLAGS},
    "models": "candidates",
    "drop_columns": "drop_columns",
}
"""argparse destination -> :class:`TrainingSettings` field it overrides when given."""


def config_from(args: argparse.Namespace, settings: Settings) -> TrainingSettings:
    """Flags over ``MLSYS_*`` defaults; a bad training variable is a :class:`ConfigError`."""
    flags = {field: getattr(args, dest) for dest, field in FLAG_FIELDS.items()}
    if flags["drop_columns"] is not None:
        flags["drop_columns"] = tuple(flags["drop_columns"])
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
    progress: TrainingProgress = (
        SilentProgress() if args.quiet else StreamProgress.for_stream(sys.stderr)
    )
    try:
        outcome = TrainingRun(
            config, registry=registry, event_log=event_log, progress=progress
        ).execute()
    finally:
        progress.close()
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
