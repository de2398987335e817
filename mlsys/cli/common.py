"""What every ``mlsys`` subcommand shares: exit codes, location options, argument types."""

from __future__ import annotations

import argparse

BAD_INPUT_EXIT = 2
"""Bad input or configuration (a one-line error names it)."""
FAILURE_EXIT = 1
"""An operational failure (or "no champion yet": a state, not bad input)."""


def add_location_arguments(parser: argparse.ArgumentParser, *, log_help: str) -> None:
    """``--registry``, ``--model-name`` and ``--log``: where a subcommand finds its model
    and its system log. Unset, they fall back to the settings (``MLSYS_*``)."""
    parser.add_argument(
        "--registry",
        metavar="URI",
        help="registry directory or s3://bucket/prefix (env MLSYS_REGISTRY_URI)",
    )
    parser.add_argument(
        "--model-name", metavar="NAME", help="model in the registry (env MLSYS_MODEL_NAME)"
    )
    parser.add_argument(
        "--log",
        metavar="URI",
        dest="log_uri",
        help=f"{log_help}: sqlite:///path or dynamodb://table (env MLSYS_LOG_URI)",
    )


def fraction(raw: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value
