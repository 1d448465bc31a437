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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trtclient`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return common.run_handler(handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
