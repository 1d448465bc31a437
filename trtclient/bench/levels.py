"""Load levels of a sweep: ``1,2,4,8`` lists or ``start:stop:factor`` geometric ranges.

A list must be strictly increasing; a range ``1:16:2`` means 1, 2, 4, 8, 16 (``stop`` included when
it is reached, never passed). Errors are :class:`LevelError` with one readable line.
"""

from __future__ import annotations

import math

__all__ = ["MAX_LEVELS", "LevelError", "parse_levels"]

#: More levels than this is almost certainly a typo in a range.
MAX_LEVELS = 64


class LevelError(ValueError):
    """A level list or range the user should fix."""


def _number(text: str, flag: str, integer: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LevelError(f"{flag}: {text.strip()!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise LevelError(f"{flag}: levels must be positive, got {text.strip()}")
    if integer and value != int(value):
        raise LevelError(f"{flag}: levels are whole numbers of requests in flight, got {text.strip()}")
    return value


def _range(text: str, flag: str, integer: bool) -> list[float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise LevelError(f"{flag}: a range is START:STOP:FACTOR (e.g. 1:32:2), got {text!r}")
    start, stop, factor = (_number(p, flag, integer and i < 2) for i, p in enumerate(parts))
    if stop < start:
        raise LevelError(f"{flag}: the range {text!r} decreases; write START:STOP:FACTOR with STOP >= START")
    if not factor > 1:
        raise LevelError(f"{flag}: the range factor must be above 1, got {parts[2].strip()}")
    levels: list[float] = []
    value = start
    while value <= stop * (1 + 1e-9):
        rounded = float(round(value)) if integer else round(value, 6)
        if not levels or rounded > levels[-1]:
            levels.append(rounded)
        if len(levels) > MAX_LEVELS:
            raise LevelError(f"{flag}: the range {text!r} gives more than {MAX_LEVELS} levels")
        value *= factor
    return levels


def parse_levels(text: str, flag: str, *, integer: bool = False) -> list[float]:
    """The levels of ``text``, strictly increasing (``integer``: whole numbers, as for concurrency)."""
    text = text.strip()
    if not text:
        raise LevelError(f"{flag}: give at least one level, e.g. 1,2,4,8 or 1:16:2")
    if ":" in text:
        return _range(text, flag, integer)
    items = [item for item in text.split(",")]
    if any(not item.strip() for item in items):
        raise LevelError(f"{flag}: empty item in the list {text!r}")
    levels = [_number(item, flag, integer) for item in items]
    for before, after in zip(levels, levels[1:], strict=False):
        if after <= before:
            raise LevelError(
                f"{flag}: levels must increase, but {after:g} follows {before:g}; "
                "list them from low to high, each once"
            )
    if len(levels) > MAX_LEVELS:
        raise LevelError(f"{flag}: more than {MAX_LEVELS} levels")
    return levels
