"""Shared plumbing of the ``trtclient`` subcommands: one readable line per user mistake."""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from collections.abc import Callable

__all__ = [
    "CommandParser",
    "UsageError",
    "check_positive",
    "did_you_mean",
    "error",
    "parse_length",
    "parse_seconds",
    "run_handler",
    "unrecognized",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_LENGTH = re.compile(r"^\s*(\d+)\s*(?:(?:,|\+-|±|:)\s*(\d+(?:\.\d+)?))?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "h": 3600.0}


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


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean --rate?)`` for the closest of ``choices``, or an empty string."""
    import difflib

    flag = word.split("=", 1)[0]
    close = difflib.get_close_matches(flag, choices, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def unrecognized(extras: list[str], choices: list[str]) -> str:
    """``unrecognized arguments: --rat 5 (did you mean --rate?)``: the hint names the likeliest flag for
    the first unknown one. The same line for ``trtclient`` commands and the Locust scenarios."""
    first = next((e for e in extras if e.startswith("-")), extras[0] if extras else "")
    hint = did_you_mean(first, choices) if first.startswith("-") else ""
    return f"unrecognized arguments: {' '.join(extras)}{hint}"


class CommandParser(argparse.ArgumentParser):
    """An ``argparse`` parser that never takes abbreviations and says "did you mean" for unknown flags.

    Its subcommand parsers are of the same class (argparse makes them so), so every ``trtclient``
    command behaves alike.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def option_strings(self) -> list[str]:
        """Every long and short option this parser knows."""
        return [s for action in self._actions for s in action.option_strings]

    def unknown(self, extras: list[str]) -> None:
        """Exit with this parser's usage and one line naming the first unknown flag (and its likeliest)."""
        self.error(unrecognized(extras, self.option_strings()))


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
