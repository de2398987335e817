"""``mlsys predict``: score a whole file with the champion (or a chosen version).

A thin adapter over :mod:`lambda_inference.scoring`: CSV, gzipped CSV or Parquet in and out,
local paths or ``s3://`` URIs, read and written in chunks. Rows are validated as ``/batch``
validates records; ``--on-error`` says what a refused row does (``fail``: stop, exit 2,
nothing written; ``skip``: leave it out; ``null``: write it with empty prediction columns).
Every run, failed or not, appends a ``scoring`` event to the system log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from lambda_inference.errors import PredictionNotFiniteError
from lambda_inference.predictor import ServingModel
from lambda_inference.scoring import (
    ON_ERROR_CHOICES,
    FileScorer,
    ScoringResult,
    score_file,
    scores_uri_for,
)
from mlsys.cli.common import BAD_INPUT_EXIT, add_location_arguments
from mlsys.contract import LoadedModel, create_session
from mlsys.errors import ConfigError, MlsysError
from mlsys.eventlog import open_event_log_for, parse_log_uri
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings

EXAMPLES = """examples:
  mlsys predict --data customers.parquet --out scores.parquet --keep customer_id
  mlsys predict --data march.csv.gz --out march-scores.csv --on-error skip --json
  mlsys predict --data s3://bucket/score/march.csv      writes s3://bucket/scores/march.csv.parquet"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="file to score: .csv, .csv.gz, .parquet or .pq; a path or s3://bucket/key",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="file to write (its ending picks the format, as for --data); default for "
        "s3://BUCKET/score/KEY: s3://BUCKET/scores/KEY.parquet",
    )
    add_location_arguments(parser, log_help="system log for the scoring event")
    parser.add_argument("--version", metavar="V", help="model version (default: the champion)")
    parser.add_argument(
        "--keep",
        nargs="+",
        action="extend",
        default=[],
        metavar="COL",
        help="input columns to copy to the output, before the prediction (e.g. an id)",
    )
    parser.add_argument(
        "--on-error",
        choices=ON_ERROR_CHOICES,
        default="fail",
        help="a row /batch would refuse: fail (default: stop, exit 2, write nothing), skip "
        "(leave it out) or null (write it with empty predictions); skip and null count them",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="N",
        help="onnxruntime threads (default: one per available core)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _threads(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, got {raw!r}")
    return int(raw)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def load_model(registry: ModelRegistry, version: str | None, *, threads: int) -> ServingModel:
    """The version to score with (the champion by default), its session on ``threads``."""
    chosen = version if version is not None else registry.require_champion().version
    card = registry.card(chosen)
    model_bytes = registry.model_bytes(chosen)
    session = create_session(model_bytes, intra_op_threads=threads)
    return ServingModel.from_loaded(LoadedModel(card, model_bytes, session=session), etag=None)


def summary(result: ScoringResult) -> str:
    refused = ""
    if result.refused:
        codes = ", ".join(f"{code} {count}" for code, count in sorted(result.errors.items()))
        action = "left out" if result.on_error == "skip" else "written without a prediction"
        refused = f"; {result.refused:,} row(s) refused ({codes}), {action}"
        if result.first_errors:
            refused += f"; first: {result.first_errors[0].error.message}"
    return (
        f"scored {result.rows_read:,} row(s) of {result.data} with {result.model_name} "
        f"version {result.model_version}: {result.rows_written:,} row(s) written to "
        f"{result.out} in {result.seconds:.1f} s{refused}"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    out = args.out or scores_uri_for(args.data)
    if out is None:
        raise ConfigError("--out is required (it names the file to write)")
    log_uri = _pick(args.log_uri, settings.log_uri)
    parse_log_uri(log_uri)  # a mistyped --log fails before any scoring
    registry = ModelRegistry.open(
        _pick(args.registry, settings.registry_uri),
        model_name=_pick(args.model_name, settings.model_name),
    )
    threads = args.threads or len(os.sched_getaffinity(0))
    scorer = FileScorer(
        load_model(registry, args.version, threads=threads),
        keep=args.keep,
        on_error=args.on_error,
    )

    def record(result: ScoringResult, failure: MlsysError | None) -> None:
        try:
            open_event_log_for(settings, log_uri).append(result.event(failure=failure))
        except Exception as exc:  # the log is best effort; the file is what was asked for
            print(f"mlsys predict: warning: scoring event not logged: {exc}", file=sys.stderr)

    try:
        result = score_file(scorer, data=args.data, out=out, on_result=record)
    except PredictionNotFiniteError as exc:  # a refused row is bad input, whatever its code
        print(f"mlsys predict: error: {exc.message}", file=sys.stderr)
        return BAD_INPUT_EXIT
    print(json.dumps(result.to_dict()) if args.json else summary(result))
    return 0
