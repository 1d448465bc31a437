"""Streaming, mergeable histograms of durations: bounded memory for any number of samples.

A :class:`Histogram` counts durations per key of :func:`bucket_us` — microseconds rounded to three
significant digits — and keeps the exact count, sum, sum of squares, min and max. So the count, mean,
standard deviation, min and max it reports are exact, and a percentile is the key of the bucket that
holds the nearest rank: exact below 1 ms (to the microsecond), and within :data:`RELATIVE_ERROR` of the
exact value above (half a unit of the third significant digit). Memory grows with the number of
distinct keys (at most 900 per decade of durations), not with the number of samples.

Histograms add bucket by bucket (:meth:`Histogram.merge`), so the sum of several processes' histograms
equals the histogram of all their samples; :meth:`Histogram.to_wire` and :meth:`Histogram.from_wire`
carry one between processes as plain data. ``trtclient bench`` (with bounded memory) and the Locust
kit build their summaries from these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trtclient.loadtest import metrics as m

__all__ = ["RELATIVE_ERROR", "Histogram", "bucket_us"]

#: Largest relative error of a percentile above 1 ms: half a unit of the third significant digit.
RELATIVE_ERROR = 0.005


def bucket_us(value_ns: float) -> int:
    """The histogram key of a duration: microseconds, rounded to three significant digits."""
    us = value_ns / 1000.0
    if us < 0:
        return -bucket_us(-value_ns)
    if us < 999.5:
        return round(us)
    if us < 9995:  # the common decades by comparison: log10 costs more than the rest of add()
        return round(us / 10) * 10
    if us < 99950:
        return round(us / 100) * 100
    if us < 999500:
        return round(us / 1000) * 1000
    digits = math.floor(math.log10(us)) - 2
    return int(round(us, -digits))


class Histogram:
    """Counts of durations per :func:`bucket_us` key, plus the exact count, sum, sum of squares, min
    and max (so the mean and standard deviation are exact; percentiles carry the bucket's error)."""

    __slots__ = ("buckets", "count", "max_ns", "min_ns", "sum_ns", "sum_sq")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum_ns = 0.0
        self.sum_sq = 0.0
        self.min_ns = math.inf
        self.max_ns = -math.inf

    def add(self, value_ns: float) -> None:
        """Record one duration (nanoseconds)."""
        key = bucket_us(value_ns)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        self.count += 1
        self.sum_ns += value_ns
        self.sum_sq += value_ns * value_ns
        if value_ns < self.min_ns:
            self.min_ns = value_ns
        if value_ns > self.max_ns:
            self.max_ns = value_ns

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts to this one."""
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.count += other.count
        self.sum_ns += other.sum_ns
        self.sum_sq += other.sum_sq
        self.min_ns = min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in nanoseconds: the bucket holding the nearest rank,
        clamped to the exact min and max (which ``q`` 0 and 100 return)."""
        if not self.count:
            raise ValueError("percentile of an empty histogram")
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        if q == 0:
            return self.min_ns
        rank = math.ceil(q / 100 * self.count)
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return min(max(key * 1000.0, self.min_ns), self.max_ns)
        return self.max_ns

    def summary(self) -> m.Summary | None:
        """The distribution as a :class:`trtclient.loadtest.metrics.Summary` (None when empty)."""
        if not self.count:
            return None
        mean = self.sum_ns / self.count
        variance = max(0.0, self.sum_sq / self.count - mean * mean)
        p50, p90, p95, p99 = (self.percentile(q) for q in m.PERCENTILES)
        return m.Summary(self.count, mean, math.sqrt(variance), self.min_ns, p50, p90, p95, p99, self.max_ns)

    def to_wire(self) -> dict[str, Any]:
        """Plain data for msgpack."""
        return {
            "buckets": dict(self.buckets),
            "count": self.count,
            "sum": self.sum_ns,
            "sum_sq": self.sum_sq,
            "min": self.min_ns if self.count else None,
            "max": self.max_ns if self.count else None,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Histogram:
        """Rebuild from :meth:`to_wire` output."""
        h = cls()
        h.buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        h.count = int(data["count"])
        h.sum_ns = float(data["sum"])
        h.sum_sq = float(data["sum_sq"])
        if h.count:
            h.min_ns = float(data["min"])
            h.max_ns = float(data["max"])
        return h
