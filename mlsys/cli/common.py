"""What every ``mlsys`` subcommand shares: exit codes, location options, argument types."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlsys.knobs import BY_FIELD, Knob, KnobValueError
from mlsys.settings import LOCAL_REFRESH_SECONDS, Settings

if TYPE_CHECKING:
    from mlsys.registry import ModelRegistry

BAD_INPUT_EXIT = 2
"""Bad input or configuration (a one-line error names it)."""
FAILURE_EXIT = 1
"""An operational failure (or "no champion yet": a state, not bad input)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help pages as written (an epilog's example lines keep their breaks), with
    ``(default X)`` added to every option whose help does not already state its default
    (the style of the settings' own flags: ``(env MLSYS_SEED; default 0)``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
        ):
            return text
        return f"{text} (default %(default)s)"


def add_location_arguments(parser: argparse.ArgumentParser, *, log_help: str) -> None:
    """``--registry``, ``--model-name`` and ``--log``: where a subcommand finds its model
    and its system log. Unset, they fall back to the settings (``MLSYS_*``)."""
    parser.add_argument(
        "--registry", metavar="URI", help=knob_help(BY_FIELD[("runtime", "registry_uri")])
    )
    parser.add_argument(
        "--model-name", metavar="NAME", help=knob_help(BY_FIELD[("runtime", "model_name")])
    )
    log = BY_FIELD[("runtime", "log_uri")]
    parser.add_argument(
        "--log", metavar="URI", dest="log_uri", help=knob_help(log, subject=log_help)
    )


def knob_help(knob: Knob, *, subject: str | None = None) -> str:
    """The declared help, with where else the value can come from and its default.
    ``subject`` replaces what the help names before its first colon (``"system log: ..."``
    reads ``"system log to read: ..."`` for ``mlsys monitor --log``)."""
    text = knob.help
    if subject is not None and ": " in text:
        text = f"{subject}: {text.split(': ', 1)[1]}"
    if knob.default is None:
        return f"{text} (env {knob.env})"
    if isinstance(knob.default, bool):
        return f"{text} (env {knob.env}; default {'on' if knob.default else 'off'})"
    return f"{text} (env {knob.env}; default {knob.to_env(knob.default)})"


def add_knob_argument(
    parser: argparse.ArgumentParser, knob: Knob, *, choices: Sequence[str] | None = None
) -> None:
    """The knob's flag (``knob.flag``): validated as the environment variable is, help and
    default from the declaration. Its default is ``None`` so the caller can tell "not
    given" (the environment or the declared default applies) from a value."""
    assert knob.flag is not None, knob.field
    if knob.kind == "bool":
        parser.add_argument(knob.flag, action="store_true", default=None, help=knob_help(knob))
        return
    parser.add_argument(
        knob.flag,
        type=_flag_type(knob),
        choices=choices or knob.choices or None,
        metavar=knob.metavar,
        help=knob_help(knob),
    )


def _flag_type(knob: Knob) -> Any:
    def parse(raw: str) -> Any:
        try:
            return knob.parse(raw)
        except KnobValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = knob.kind  # argparse names the type in its "invalid ..." message
    return parse


def fraction(raw: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def pickup_note(registry: ModelRegistry, settings: Settings) -> str:
    """When running servers see a champion change (they re-read the pointer, not the CLI)."""
    if registry.uri.startswith("s3://"):
        return (
            f"warm servers switch within {settings.model_refresh_seconds:g} s "
            "(MLSYS_MODEL_REFRESH_SECONDS on the function); new ones load it at once"
        )
    local = min(settings.model_refresh_seconds, LOCAL_REFRESH_SECONDS)
    return f"a running `mlsys serve` on this registry switches within {local:g} s"
