"""The live series behind the web UI's token chart: TTFT p50/p95 and output tokens/s, one point every
few seconds, taken from the statistics the master (or the standalone runner) has merged so far.

Each point's TTFT percentiles are those of the requests whose TTFT reached these statistics since the
previous point (a worker's requests reach the master with its next periodic report, every 3 s, so on a
master a point holds what was *reported* in its interval). Output tokens/s is counted by the second the
tokens arrived at the client (:attr:`RunStats.tokens_by_second`) and is recomputed on every read, so
the latest points grow when a late worker report fills them in.

No locust or gevent import: :mod:`trtlocust._outputs` samples it from a greenlet and serves it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from trtlocust._stats import RunStats

__all__ = ["INTERVAL_S", "MAX_POINTS", "Timeline", "bucket_percentile_ms"]

#: Seconds between two points.
INTERVAL_S = 2
#: Points kept (the oldest are dropped): two hours at :data:`INTERVAL_S`.
MAX_POINTS = 3600


def bucket_percentile_ms(buckets: dict[int, int], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of bucketed microsecond counts, in milliseconds."""
    count = sum(buckets.values())
    if not count:
        return None
    rank = max(1, math.ceil(q / 100 * count))
    seen = 0
    for key in sorted(buckets):
        seen += buckets[key]
        if seen >= rank:
            return key / 1000
    return max(buckets) / 1000


@dataclass(frozen=True)
class _Point:
    t: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_count: int


class Timeline:
    """Points sampled from one test's :class:`RunStats`; a new statistics object (a new test, or
    statistics reset) starts a new series."""

    def __init__(self, interval_s: int = INTERVAL_S, max_points: int = MAX_POINTS) -> None:
        if interval_s < 1:
            raise ValueError(f"interval_s must be a whole number of seconds >= 1, got {interval_s}")
        self.interval_s = interval_s
        self._points: deque[_Point] = deque(maxlen=max_points)
        self._stats: RunStats | None = None
        self._seen: dict[int, int] = {}

    def sample(self, stats: RunStats, now_s: float) -> None:
        """Add the point ending at ``now_s`` (epoch seconds)."""
        if stats is not self._stats:
            self._stats = stats
            self._points.clear()
            self._seen = {}
        buckets = stats.histograms["ttft"].buckets
        fresh = {key: n - self._seen.get(key, 0) for key, n in buckets.items() if n > self._seen.get(key, 0)}
        self._seen = dict(buckets)
        self._points.append(
            _Point(
                t=now_s,
                ttft_p50_ms=bucket_percentile_ms(fresh, 50),
                ttft_p95_ms=bucket_percentile_ms(fresh, 95),
                ttft_count=sum(fresh.values()),
            )
        )

    def series(self, stats: RunStats) -> dict[str, Any]:
        """The points as JSON-ready data (``points`` oldest first; empty for other statistics than
        the ones sampled, e.g. right after a reset)."""
        points = list(self._points) if stats is self._stats else []
        by_second = stats.tokens_by_second
        out = []
        for p in points:
            last = math.floor(p.t) - 1  # the last complete second before the point
            tokens = sum(by_second.get(s, 0.0) for s in range(last - self.interval_s + 1, last + 1))
            out.append(
                {
                    "t": round(p.t, 3),
                    "ttft_p50_ms": p.ttft_p50_ms,
                    "ttft_p95_ms": p.ttft_p95_ms,
                    "ttft_count": p.ttft_count,
                    "output_tokens_per_s": round(tokens / self.interval_s, 3),
                }
            )
        return {"interval_s": self.interval_s, "points": out}
