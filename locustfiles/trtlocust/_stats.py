"""Token-level statistics of a Locust run, kept per process and added up on the master.

Locust records one response time per request, in milliseconds bucketed to two significant digits
(whole milliseconds below 100 ms, so a 9.6 ms gap between tokens becomes 10 ms), and nothing per
token. This module keeps the metrics of :mod:`trtclient.loadtest.metrics` — TTFT, ITL, TPOT, E2E, TTFT from
the intended start, schedule lag and the first token's lag behind the engine — as histograms of
microseconds rounded to three significant digits (exact below 1 ms, at most 0.5 % off above), next
to request counts, output tokens and the run's time window.

Every Locust process fills a :class:`RunStats` from the requests it sends; a worker hands what it
gathered since its last report to the master (:meth:`RunStats.take`), which adds it to its own
(:meth:`RunStats.merge`). The wire form is plain dicts, lists and numbers (Locust sends it with
msgpack). Histograms add bucket by bucket, so the master's counts are exactly the workers' sums.
The tables at the end (CSV, console, HTML: :mod:`trtlocust._tables`) are built from a
:class:`RunStats`.

This module imports neither locust nor gevent, so it can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trtclient.loadtest import metrics as m
from trtclient.loadtest.histogram import Histogram, bucket_us
from trtclient.loadtest.records import RequestRecord
from trtlocust._groups import WorkloadGroups

__all__ = [
    "HISTOGRAMS",
    "LATENCY_COLUMNS",
    "LOCUST_ROWS",
    "Histogram",
    "LatencyRow",
    "RunStats",
    "bucket_us",
    "merged",
]

#: The distributions kept, in report order, with what each one is (names from trtclient.loadtest.metrics).
HISTOGRAMS: dict[str, str] = {
    "ttft": m.DEFINITIONS["ttft"],
    "itl": m.DEFINITIONS["itl"],
    "tpot": m.DEFINITIONS["tpot"],
    "e2e": m.DEFINITIONS["e2e"],
    "ttft_sched": m.DEFINITIONS["ttft_sched"],
    "schedule_lag": m.DEFINITIONS["schedule_lag"],
    "first_token_lag": "first content event arrival - the engine's first_token_time_ns (return_perf_metrics)",
    "ttft_kv_hit": "ttft of requests whose KV-cache blocks the engine partly reused (kv_hit_rate > 0)",
    "ttft_kv_miss": "ttft of requests the engine reported no reused KV-cache block for",
}

#: Metrics that also get a row of their own in Locust's statistics (request type = the upper-case name).
LOCUST_ROWS: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")

#: Columns of the latency table (CSV, HTML report, web UI), milliseconds.
LATENCY_COLUMNS: tuple[str, ...] = ("count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max")

_SECONDS_FOR_CURRENT_RATE = 10


@dataclass(frozen=True)
class LatencyRow:
    """One line of the latency table: a metric's summary in milliseconds."""

    metric: str
    summary: m.Summary

    def cells(self) -> dict[str, float]:
        """The columns of :data:`LATENCY_COLUMNS` (count as is, durations in ms)."""
        ms = self.summary.scaled(1e-6)
        return {name: float(getattr(ms, name)) for name in LATENCY_COLUMNS}


class RunStats:
    """What one process (or, on the master, all of them) measured; see the module docstring."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.histograms: dict[str, Histogram] = {name: Histogram() for name in HISTOGRAMS}
        self.ok = 0
        self.failed = 0
        self.cancelled = 0
        self.failures: dict[str, int] = {}
        self.output_tokens = 0
        self.output_token_sources: dict[str, int] = {}
        self.scheduled = 0
        """Arrivals handed to this process (open loop and bursts); closed loops leave it at 0."""
        self.unsent = 0
        """Arrivals still waiting for a free user when the test stopped."""
        self.first_start_ns: int | None = None
        """Earliest intended start, nanoseconds since the epoch."""
        self.last_end_ns: int | None = None
        """Latest end of a request, nanoseconds since the epoch."""
        self.tokens_by_second: dict[int, float] = {}
        """Output tokens by the epoch second their event arrived in (for the current rate)."""
        self.kv_hit_rate_sum = 0.0
        self.kv_reported = 0
        """Successful requests whose engine reported KV-cache figures, and the sum of their hit rates."""
        self.groups = WorkloadGroups()
        """TTFT and E2E by KV-cache hit or miss, by turn and by LoRA adapter (``trtlocust._groups``)."""

    # ------------------------------------------------------------ filling

    def add_record(self, record: RequestRecord) -> None:
        """Account for one finished request (ok, failed or cancelled)."""
        offset = record.epoch_offset_ns
        start = record.intended_ns + offset
        if self.first_start_ns is None or start < self.first_start_ns:
            self.first_start_ns = start
        if record.end_ns is not None:
            end = record.end_ns + offset
            if self.last_end_ns is None or end > self.last_end_ns:
                self.last_end_ns = end
        lag = m.schedule_lag_ns(record)
        if lag is not None:
            self.histograms["schedule_lag"].add(lag)
        self.groups.add(record)
        if record.status == "cancelled":
            self.cancelled += 1
            return
        if record.status == "failed":
            self.failed += 1
            kind = record.error_kind or "unknown"
            self.failures[kind] = self.failures.get(kind, 0) + 1
            return
        self.ok += 1
        self.output_tokens += record.output_tokens or 0
        source = record.output_tokens_source or "none"
        self.output_token_sources[source] = self.output_token_sources.get(source, 0) + 1
        h = self.histograms
        for name, metric in (
            ("ttft", m.ttft_ns),
            ("tpot", m.tpot_ns),
            ("e2e", m.e2e_ns),
            ("ttft_sched", m.ttft_sched_ns),
            ("first_token_lag", m.engine_first_token_lag_ns),
        ):
            value = metric(record)
            if value is not None:
                h[name].add(value)
        rate = m.kv_hit_rate(record)
        ttft = m.ttft_ns(record)
        if rate is not None:
            self.kv_hit_rate_sum += rate
            self.kv_reported += 1
            if ttft is not None:
                h["ttft_kv_hit" if rate > 0 else "ttft_kv_miss"].add(ttft)
        itl = h["itl"]
        for gap in m.itl_ns(record):
            itl.add(gap)
        self._add_token_seconds(record)

    def _add_token_seconds(self, record: RequestRecord) -> None:
        if not record.event_ns:
            return
        offset = record.epoch_offset_ns
        first_second = (record.event_ns[0] + offset) // 1_000_000_000
        start = first_second * 1_000_000_000 - offset
        end = record.event_ns[-1] + 1
        rates = m.token_rate_series([record], start, end, 1_000_000_000)
        for i, tokens in enumerate(rates):
            if tokens:
                second = first_second + i
                self.tokens_by_second[second] = self.tokens_by_second.get(second, 0.0) + tokens

    # ------------------------------------------------------------ worker -> master

    def to_wire(self) -> dict[str, Any]:
        """Plain data for msgpack."""
        return {
            "histograms": {name: h.to_wire() for name, h in self.histograms.items() if h.count},
            "ok": self.ok,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "failures": dict(self.failures),
            "output_tokens": self.output_tokens,
            "output_token_sources": dict(self.output_token_sources),
            "scheduled": self.scheduled,
            "unsent": self.unsent,
            "first_start_ns": self.first_start_ns,
            "last_end_ns": self.last_end_ns,
            "tokens_by_second": dict(self.tokens_by_second),
            "kv_hit_rate_sum": self.kv_hit_rate_sum,
            "kv_reported": self.kv_reported,
            "groups": self.groups.to_wire(),
        }

    def take(self) -> dict[str, Any]:
        """Everything gathered since the last call, as wire data; starts over empty."""
        data = self.to_wire()
        self._clear()
        return data

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add another process's :meth:`take` (or :meth:`to_wire`) data."""
        for name, wire in data.get("histograms", {}).items():
            if name in self.histograms:
                self.histograms[name].merge(Histogram.from_wire(wire))
        self.ok += int(data.get("ok", 0))
        self.failed += int(data.get("failed", 0))
        self.cancelled += int(data.get("cancelled", 0))
        self.output_tokens += int(data.get("output_tokens", 0))
        self.scheduled += int(data.get("scheduled", 0))
        self.unsent += int(data.get("unsent", 0))
        self.kv_hit_rate_sum += float(data.get("kv_hit_rate_sum", 0.0))
        self.kv_reported += int(data.get("kv_reported", 0))
        self.groups.merge(data.get("groups", {}))
        _add_counts(self.failures, data.get("failures", {}))
        _add_counts(self.output_token_sources, data.get("output_token_sources", {}))
        first, last = data.get("first_start_ns"), data.get("last_end_ns")
        if first is not None and (self.first_start_ns is None or first < self.first_start_ns):
            self.first_start_ns = int(first)
        if last is not None and (self.last_end_ns is None or last > self.last_end_ns):
            self.last_end_ns = int(last)
        for second, tokens in data.get("tokens_by_second", {}).items():
            key = int(second)
            self.tokens_by_second[key] = self.tokens_by_second.get(key, 0.0) + float(tokens)

    # ------------------------------------------------------------ figures

    @property
    def sent(self) -> int:
        """Requests that ended one way or another."""
        return self.ok + self.failed + self.cancelled

    @property
    def window_s(self) -> float:
        """Earliest intended start to latest end, in seconds (0 before anything ended)."""
        if self.first_start_ns is None or self.last_end_ns is None:
            return 0.0
        return max(0, self.last_end_ns - self.first_start_ns) / 1e9

    def requests_per_s(self) -> float:
        """Successful requests per second of the window (``loadtest.metrics.requests_per_s``)."""
        window = self.window_s
        return self.ok / window if window else 0.0

    def output_tokens_per_s(self) -> float:
        """Output tokens of successful requests per second of the window (``output_tokens_per_s``)."""
        window = self.window_s
        return self.output_tokens / window if window else 0.0

    def tokens_per_s_per_user(self, q: float = 50) -> float | None:
        """Output tokens per second one user receives after the first token, 1 / TPOT, at the
        ``q``-th percentile of users (``q=10``: the slowest tenth get at most this)."""
        tpot = self.histograms["tpot"]
        if not tpot.count:
            return None
        value = tpot.percentile(100 - q)
        return 1e9 / value if value > 0 else None

    def current_tokens_per_s(self, now_s: float) -> float:
        """Output tokens per second over the last complete seconds before ``now_s`` (epoch seconds)."""
        if not self.tokens_by_second:
            return 0.0
        last = int(now_s) - 1
        first = max(last - _SECONDS_FOR_CURRENT_RATE + 1, min(self.tokens_by_second))
        if first > last:
            return 0.0
        seconds = range(first, last + 1)
        return sum(self.tokens_by_second.get(s, 0.0) for s in seconds) / len(seconds)

    def latency_rows(self) -> list[LatencyRow]:
        """One row per non-empty histogram, in :data:`HISTOGRAMS` order."""
        rows = []
        for name, h in self.histograms.items():
            summary = h.summary()
            if summary is not None:
                rows.append(LatencyRow(name, summary))
        return rows

    def throughput(self, now_s: float | None = None) -> list[tuple[str, float, str]]:
        """``(name, value, unit)`` figures of the whole run; with ``now_s`` (epoch seconds) also the
        output tokens per second of the last ten seconds."""
        rows: list[tuple[str, float, str]] = []
        if now_s is not None:
            rows.append(("output_tokens_per_s_current", self.current_tokens_per_s(now_s), "tokens/s"))
        rows += [
            ("requests_ok", self.ok, "requests"),
            ("requests_failed", self.failed, "requests"),
            ("requests_cancelled", self.cancelled, "requests"),
            ("arrivals_scheduled", self.scheduled, "requests"),
            ("arrivals_unsent", self.unsent, "requests"),
            ("output_tokens", self.output_tokens, "tokens"),
            ("window", self.window_s, "s"),
            ("requests_per_s", self.requests_per_s(), "requests/s"),
            ("output_tokens_per_s", self.output_tokens_per_s(), "tokens/s"),
        ]
        for q in (50, 10):
            value = self.tokens_per_s_per_user(q)
            if value is not None:
                rows.append((f"output_tokens_per_s_per_user_p{q}", value, "tokens/s"))
        if self.kv_reported:
            rows.append(("kv_hit_rate_mean", self.kv_hit_rate_sum / self.kv_reported, "ratio"))
        for kind, n in sorted(self.failures.items()):
            rows.append((f"failed_{kind}", n, "requests"))
        for source, n in sorted(self.output_token_sources.items()):
            rows.append((f"token_count_source_{source}", n, "requests"))
        return rows


def _add_counts(into: dict[str, int], more: Mapping[str, Any]) -> None:
    for key, n in more.items():
        into[str(key)] = into.get(str(key), 0) + int(n)


def merged(parts: Iterable[Mapping[str, Any]]) -> RunStats:
    """A :class:`RunStats` holding the sum of several wire dicts."""
    total = RunStats()
    for part in parts:
        total.merge(part)
    return total
