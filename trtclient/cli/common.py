"""Shared plumbing of the ``trtclient`` subcommands: one readable line per user mistake."""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from collections.abc import Callable

__all__ = ["UsageError", "check_positive", "error", "parse_length", "parse_seconds", "run_handler"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_LENGTH = re.compile(r"^\s*(\d+)\s*(?:(?:,|\+-|±|:)\s*(\d+(?:\.\d+)?))?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "h": 3600.0}


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def error(message: str) -> None:
    """Print one error line on stderr, prefixed with the program name."""
    print(f"trtclient: error: {message}", file=sys.stderr)


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand handler, turning expected failures into one line and an exit code."""
    from trtclient.errors import TritonError

    debug = bool(getattr(args, "debug", False))
    try:
        return handler(args)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        error(str(exc))
        return 2
    except (TritonError, OSError) as exc:
        if debug:
            traceback.print_exc()
        error(str(exc))
        return 1


def parse_seconds(text: str, flag: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{flag} expects a duration such as 30, 30s, 500ms or 2m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_length(text: str, flag: str) -> tuple[int, float]:
    """``128`` or ``128,16`` (also ``128+-16``, ``128±16``) → (mean, stddev)."""
    match = _LENGTH.match(text)
    if not match:
        raise UsageError(f"{flag} expects MEAN or MEAN,STDDEV in tokens (e.g. 128 or 128,16), got {text!r}")
    return int(match.group(1)), float(match.group(2) or 0.0)


def check_positive(value: float | int | None, flag: str) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")
