"""Shared plumbing of the ``trtclient`` subcommands: one readable line per user mistake."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

__all__ = ["UsageError", "error", "run_handler"]


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit code ``exit_codes.USAGE`` (2)."""


def error(message: str) -> None:
    """Print one error line on stderr, prefixed with the program name."""
    print(f"trtclient: error: {message}", file=sys.stderr)


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand handler, turning expected failures into one line and an exit code."""
    from trtclient import exit_codes
    from trtclient.errors import TritonError

    debug = bool(getattr(args, "debug", False))
    try:
        return handler(args)
    except KeyboardInterrupt:
        error("interrupted")
        return exit_codes.INTERRUPTED
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        error(str(exc))
        return exit_codes.USAGE
    except (TritonError, OSError) as exc:
        if debug:
            traceback.print_exc()
        error(str(exc))
        return exit_codes.ERROR
