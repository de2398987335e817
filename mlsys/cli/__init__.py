"""The ``mlsys`` command line: ``train``, ``models ...``, ``serve``, ``predict`` and ``monitor``.

One module per subcommand in this package (:mod:`~mlsys.cli.train`,
:mod:`~mlsys.cli.serve`, :mod:`~mlsys.cli.predict`, :mod:`~mlsys.cli.models` with
:mod:`~mlsys.cli.rollout`, :mod:`~mlsys.cli.monitor`), each exposing ``add_arguments(parser)`` and
``run(args, settings) -> int``; this module only dispatches and maps errors to
one-line messages and exit codes (2 for bad input or configuration, 1 for
operational failures). A subcommand module imports its heavy dependencies
(scikit-learn for ``train``, the server for ``serve``) inside its functions, and
only the chosen subcommand's arguments are built, so ``mlsys serve`` never pays for
scikit-learn and ``mlsys train`` never for the server.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol

from mlsys import __version__, names
from mlsys.cli.common import BAD_INPUT_EXIT, FAILURE_EXIT, HelpFormatter
from mlsys.errors import (
    ConfigError,
    DataError,
    MlsysError,
    NoChampionError,
    ValidationError,
    VersionNotFoundError,
)
from mlsys.settings import KNOWN_VARIABLES, Settings, load_settings


class Subcommand(Protocol):
    EXAMPLES: str
    """The help page's epilog: a few example command lines."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...


# Each subcommand's module is imported only when it is the one chosen (imports inside
# functions, which the codebase's import-graph test sees): `mlsys serve` never loads
# scikit-learn, `mlsys train` never the server.
def _train() -> Subcommand:
    from mlsys.cli import train  # noqa: PLC0415

    return train


def _models() -> Subcommand:
    from mlsys.cli import models  # noqa: PLC0415

    return models


def _serve() -> Subcommand:
    from mlsys.cli import serve  # noqa: PLC0415

    return serve


def _predict() -> Subcommand:
    from mlsys.cli import predict  # noqa: PLC0415

    return predict


def _monitor() -> Subcommand:
    from mlsys.cli import monitor  # noqa: PLC0415

    return monitor


SUBCOMMANDS: dict[str, tuple[Callable[[], Subcommand], str]] = {
    "train": (_train, "train a challenger and promote it if it beats the champion"),
    "models": (_models, "list, show, promote and roll back model versions"),
    "serve": (_serve, "serve the prediction API locally"),
    "predict": (_predict, "score a CSV or Parquet file (local or s3://) with the champion"),
    "monitor": (_monitor, "feature and prediction drift and live quality per version"),
}
"""name -> (the module implementing :class:`Subcommand`, imported on demand; help)."""


DESCRIPTION = "mlsys: train a model, promote it only when it is better, serve it, watch it."
EPILOG = """examples:
  mlsys train                          train on the bundled data set, promote if better
  mlsys train --data sales.csv --target revenue --drop order_id
  mlsys serve --port 8080              serve the champion on http://127.0.0.1:8080
  mlsys models list                    every version and what it is now
  mlsys monitor --since 24h            drift and live quality of the last day

Run 'mlsys COMMAND --help' for a command's options and examples."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse prints usage on error; a one-line message is the contract.
        self.exit(BAD_INPUT_EXIT, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, Subcommand | None]:
    parser = _Parser(prog="mlsys", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"mlsys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen: Subcommand | None = None
    for name, (load, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:
            module = load()
            sub_parser.epilog = module.EXAMPLES
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_handler=module)
            chosen = module
    return parser, chosen


def warn_unknown_variables(settings: Settings) -> None:
    """One stderr line per unrecognised ``MLSYS_*`` variable: a typo silently ignored
    (``MLSYS_TAKS=classification``) would otherwise train the wrong thing."""
    prefix = names.ENV_PREFIX
    # Compared without the shared prefix, which would make every name look close.
    known = sorted(name.removeprefix(prefix) for name in KNOWN_VARIABLES)
    for name in sorted(settings.extra):
        close = difflib.get_close_matches(name.removeprefix(prefix), known, n=1)
        hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
        print(f"mlsys: warning: unknown environment variable {name}{hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Subcommand | None = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return BAD_INPUT_EXIT
    try:
        settings = load_settings()
        warn_unknown_variables(settings)
        return handler.run(args, settings)
    except NoChampionError as exc:
        # Exit 1, not 2: "no champion yet" is a state, not bad input (`make run` relies on
        # `mlsys models show champion` failing to decide whether to train).
        print(f"mlsys {args.command}: error: {exc.message}", file=sys.stderr)
        return FAILURE_EXIT
    except (ConfigError, DataError, ValidationError, VersionNotFoundError) as exc:
        print(f"mlsys {args.command}: error: {exc.message}", file=sys.stderr)
        return BAD_INPUT_EXIT
    except MlsysError as exc:
        print(f"mlsys {args.command}: error: {exc.message}", file=sys.stderr)
        return FAILURE_EXIT
    except KeyboardInterrupt:
        print(f"mlsys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
