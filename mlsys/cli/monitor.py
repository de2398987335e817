"""``mlsys monitor``: drift and live quality per model version over a window of the log.

Reads prediction, shadow and feedback events since ``--since`` (default the last
24 hours) and compares them with each version's training baseline (see
:mod:`mlsys.monitoring`). Prints a table, or the JSON document with ``--json``;
``--html FILE`` also writes the self-contained report.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from mlsys.cli.common import add_location_arguments
from mlsys.errors import ConfigError
from mlsys.eventlog import open_event_log_for
from mlsys.monitoring.drift import DRIFT_THRESHOLD
from mlsys.monitoring.monitor import MonitorReport, run_monitor
from mlsys.monitoring.report import render_html
from mlsys.monitoring.window import DEFAULT_SINCE, iso_z, parse_since
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings

EXAMPLES = """examples:
  mlsys monitor                              drift and live quality over the last 24 hours
  mlsys monitor --since 7d --html report.html
  mlsys monitor --json | jq '.versions'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        metavar="ISO|DURATION",
        help=f"window start: ISO-8601 time or duration back from now (default {DEFAULT_SINCE})",
    )
    add_location_arguments(parser, log_help="system log to read")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", metavar="FILE", type=Path, help="also write the HTML report")
    parser.add_argument(
        "--lookback",
        metavar="DURATION",
        help="also join the window's feedback with predictions made up to DURATION before "
        "it (ground truth that arrives late); default: the window only",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DRIFT_THRESHOLD,
        help=f"PSI above which a distribution counts as drifted (default {DRIFT_THRESHOLD})",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    since = parse_since(args.since, now=now)
    if args.threshold <= 0:
        raise ConfigError(f"--threshold must be positive, got {args.threshold}")
    registry = ModelRegistry.open(
        args.registry or settings.registry_uri,
        model_name=args.model_name or settings.model_name,
    )
    log = open_event_log_for(settings, args.log_uri)
    predictions_since = None
    if args.lookback is not None:
        start = datetime.fromisoformat(since)
        predictions_since = parse_since(args.lookback, now=start, name="--lookback")
    report = run_monitor(
        log=log,
        registry=registry,
        since=since,
        until=iso_z(now),
        threshold=args.threshold,
        predictions_since=predictions_since,
    )
    if args.html is not None:
        try:
            title = f"mlsys model monitor: {registry.model_name}"
            args.html.write_text(render_html(report, title=title), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.html}: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(summary(report))
    return 0


def summary(report: MonitorReport) -> str:
    lines = [f"window {report.since} .. {report.until}"]
    if not report.versions:
        lines.append("no predictions in this window")
    for version in report.versions:
        lines.append(f"version {version.version}: {version.records} records")
        for name, dist in version.features.items():
            flag = "  DRIFT" if dist.drift else ""
            psi = "-" if dist.psi is None else f"{dist.psi:.4f}"
            lines.append(f"  {name:<30} PSI {psi}{flag}")
        if version.prediction is not None:
            psi = "-" if version.prediction.psi is None else f"{version.prediction.psi:.4f}"
            flag = "  DRIFT" if version.prediction.drift else ""
            lines.append(f"  {'(prediction)':<30} PSI {psi}{flag}")
        quality = version.quality
        if quality is not None:
            lines.append(
                f"  live {quality.metric} {quality.value} on {quality.n} "
                f"(holdout {quality.offline})"
            )
        if version.unmatched_feedback:
            lines.append(f"  unmatched feedback: {version.unmatched_feedback}")
    return "\n".join(lines)
