"""The ``trtclient`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds an
``argparse`` parser whose ``handler`` default is a function ``(args) -> int`` (the exit code).
User mistakes raise :class:`trtclient.cli.common.UsageError` (or any ``trtclient`` error) and are
printed as one line; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trtclient._version import __version__
from trtclient.cli import common

__all__ = ["main"]

_SUBCOMMANDS = ("serve", "setup", "bench", "sweep", "capacity", "compare", "generate", "build")


def build_parser() -> common.CommandParser:
    """The top-level parser with every subcommand registered."""
    parser = common.CommandParser(
        prog="trtclient",
        description="Client, load tests and launcher for TensorRT-LLM models behind Triton.",
    )
    parser.add_argument("--version", action="version", version=f"trtclient {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"trtclient.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"trtclient.cli.{name}_cmd":
                raise
            continue
        module.register(subparsers)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, common.CommandParser]:
    """The subcommands' parsers by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trtclient`` console script."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # The subcommand's usage and its closest flag, not the top-level usage argparse would print.
        command: common.CommandParser = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        command.unknown(extras)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return common.run_handler(handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
