"""The project's one clock.

Every timestamp the client and the load engine take is ``now_ns()``: ``time.perf_counter_ns()``, a
monotonic clock that is cheap to read and never jumps. Durations are differences of such values.

Triton's engines report their own times as nanoseconds since the Unix epoch (``first_token_time_ns``
and friends). ``to_epoch_ns()`` converts a ``now_ns()`` reading to that scale with one offset taken
when this module is imported, so client-side arrival times can be compared with the engine's truth
without reading the wall clock on the hot path.
"""

from __future__ import annotations

import time

__all__ = ["EPOCH_OFFSET_NS", "from_epoch_ns", "now_ns", "to_epoch_ns"]

now_ns = time.perf_counter_ns


def _measure_offset() -> int:
    """Offset between the epoch clock and ``now_ns()``, read as tightly as the two clocks allow."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        before = now_ns()
        wall = time.time_ns()
        after = now_ns()
        width = after - before
        if best is None or width < best[0]:
            best = (width, wall - (before + after) // 2)
    assert best is not None
    return best[1]


EPOCH_OFFSET_NS: int = _measure_offset()


def to_epoch_ns(perf_ns: int) -> int:
    """Convert a ``now_ns()`` reading to nanoseconds since the Unix epoch."""
    return perf_ns + EPOCH_OFFSET_NS


def from_epoch_ns(epoch_ns: int) -> int:
    """Convert nanoseconds since the Unix epoch to the ``now_ns()`` scale."""
    return epoch_ns - EPOCH_OFFSET_NS
