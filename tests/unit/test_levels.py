"""Sweep levels: lists, geometric ranges, and one readable message per mistake."""

from __future__ import annotations

import pytest

from trtclient.bench.levels import MAX_LEVELS, LevelError, parse_levels


@pytest.mark.parametrize(
    ("text", "integer", "expected"),
    [
        ("1,2,4,8", True, [1, 2, 4, 8]),
        (" 0.5, 1 ,2.5", False, [0.5, 1, 2.5]),
        ("1:16:2", True, [1, 2, 4, 8, 16]),
        ("1:20:2", True, [1, 2, 4, 8, 16]),  # never past the stop
        ("1:4:1.5", True, [1, 2, 3]),  # 1, 1.5, 2.25, 3.4 rounded, each once
        ("0.5:4:2", False, [0.5, 1, 2, 4]),
        ("3", True, [3]),
    ],
)
def test_lists_and_ranges(text: str, integer: bool, expected: list[float]) -> None:
    assert parse_levels(text, "--x", integer=integer) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "give at least one level"),
        ("4,2", "levels must increase, but 2 follows 4"),
        ("1,1", "levels must increase"),
        ("1,,2", "empty item"),
        ("1,x", "'x' is not a number"),
        ("0,1", "levels must be positive"),
        ("-1", "levels must be positive"),
        ("8:1:2", "decreases"),
        ("1:8:1", "factor must be above 1"),
        ("1:8", "START:STOP:FACTOR"),
        ("1.5,2", "whole numbers"),
        ("1:1e9:1.01", f"more than {MAX_LEVELS} levels"),
    ],
)
def test_bad_levels_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(LevelError, match=message):
        parse_levels(text, "--concurrency", integer=True)
