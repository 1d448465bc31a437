"""Every figure of a run, gathered one finished request at a time in bounded memory.

:func:`trtclient.loadtest.metrics.compute_metrics` needs every record of a run, each with its per-token
arrival times: about 50 bytes a token, gigabytes for an hour of heavy load. A :class:`RunAccumulator`
is handed each record as the request ends (:meth:`RunAccumulator.add`), after which the record can go
(to ``--records`` on disk, or nowhere), and gives the same :class:`~trtclient.loadtest.metrics.RunMetrics`
at the end (:meth:`RunAccumulator.metrics`).

What is exact and what is not: counts, outcomes, failures, token sources and disagreements, length
checks, goodput, the window, throughput and the token-count distributions are exact. Latency
distributions come from :class:`~trtclient.loadtest.histogram.Histogram`: count, mean, std, min and
max exact; percentiles the nearest-rank bucket, exact to the microsecond below 1 ms and within
:data:`~trtclient.loadtest.histogram.RELATIVE_ERROR` above (the exact path interpolates between ranks
instead). Memory grows with the number of distinct values, not of requests or tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping

from trtclient.loadtest import metrics as m
from trtclient.loadtest.histogram import RELATIVE_ERROR, Histogram
from trtclient.loadtest.records import RequestRecord

__all__ = ["LATENCY_SOURCE", "RunAccumulator", "counter_summary"]

#: How the latency summaries of an accumulated run are computed, for reports.
LATENCY_SOURCE = (
    f"histogram: count, mean, std, min, max exact; percentiles nearest-rank, exact to 1 us below 1 ms, "
    f"within {RELATIVE_ERROR:.1%} above"
)

_OK_METRICS: dict[str, Callable[[RequestRecord], float | None]] = {
    "ttft": m.ttft_ns,
    "ttft_sched": m.ttft_sched_ns,
    "tth": m.tth_ns,
    "tpot": m.tpot_ns,
    "e2e": m.e2e_ns,
    "e2e_sched": m.e2e_sched_ns,
    "first_token_lag": m.engine_first_token_lag_ns,
}
_PAIRS = (
    ("server_output", "events_output"),
    ("server_output", "tokenizer_output"),
    ("server_input", "tokenizer_input"),
)


def counter_summary(counts: Mapping[int, int]) -> m.Summary | None:
    """The exact :class:`~trtclient.loadtest.metrics.Summary` of values given as value -> occurrences."""
    n = sum(counts.values())
    if not n:
        return None
    items = sorted(counts.items())
    mean = math.fsum(v * c for v, c in items) / n
    std = math.sqrt(math.fsum(c * (v - mean) ** 2 for v, c in items) / n)

    def at(index: int) -> float:
        seen = 0
        for value, count in items:
            seen += count
            if index < seen:
                return float(value)
        return float(items[-1][0])

    def percentile(q: float) -> float:  # the same interpolation as metrics.percentile
        h = (n - 1) * q / 100
        lo = math.floor(h)
        low, high = at(lo), at(min(lo + 1, n - 1))
        return low + (h - lo) * (high - low)

    p50, p90, p95, p99 = (percentile(q) for q in m.PERCENTILES)
    return m.Summary(n, mean, std, float(items[0][0]), p50, p90, p95, p99, float(items[-1][0]))


class RunAccumulator:
    """The figures of :func:`~trtclient.loadtest.metrics.compute_metrics`, fed one record at a time."""

    def __init__(self, slos_ns: Mapping[str, float] | None = None) -> None:
        self.slos = dict(slos_ns or {})
        unknown = set(self.slos) - set(m.SLO_METRICS)
        if unknown:
            raise ValueError(
                f"no SLO metric named {', '.join(sorted(unknown))}; known: {', '.join(m.SLO_METRICS)}"
            )
        self.latencies = {name: Histogram() for name in (*_OK_METRICS, "itl", "schedule_lag")}
        self.status: Counter[str] = Counter()
        self.warmup = 0
        self.first_intended_ns: int | None = None
        self.last_end_ns: int | None = None
        self.output_tokens = 0
        self.input_counts: Counter[int] = Counter()
        self.output_counts: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.output_sources: Counter[str] = Counter()
        self.input_sources: Counter[str] = Counter()
        self.pairs = {f"{a} vs {b}": [0, 0] for a, b in _PAIRS}
        self.length_checked = 0
        self.length_examples: list[tuple[int, int, int]] = []
        self.length_mismatched = 0
        self.good = 0
        self.clocks: Counter[str] = Counter()

    def add(self, r: RequestRecord) -> None:
        """Count one finished request (its per-token lists are read here and not kept)."""
        if r.arrival_clock is not None:
            self.clocks[r.arrival_clock] += 1
        if r.warmup:
            self.warmup += 1
            return
        self.status[r.status] += 1
        if self.first_intended_ns is None or r.intended_ns < self.first_intended_ns:
            self.first_intended_ns = r.intended_ns
        if r.end_ns is not None and (self.last_end_ns is None or r.end_ns > self.last_end_ns):
            self.last_end_ns = r.end_ns
        lag = m.schedule_lag_ns(r)
        if lag is not None:
            self.latencies["schedule_lag"].add(lag)
        if r.status == "failed":
            self.failures[r.error_kind or "unknown"] += 1
        if r.status != "ok":
            return
        self._add_ok(r)

    def _add_ok(self, r: RequestRecord) -> None:
        latencies = self.latencies
        for name, metric in _OK_METRICS.items():
            value = metric(r)
            if value is not None:
                latencies[name].add(value)
        itl = latencies["itl"]
        for gap in m.itl_ns(r):
            itl.add(gap)
        self.output_tokens += r.output_tokens or 0
        if r.output_tokens is not None:
            self.output_counts[r.output_tokens] += 1
        if r.input_tokens is not None:
            self.input_counts[r.input_tokens] += 1
        self.output_sources[r.output_tokens_source or "none"] += 1
        self.input_sources[r.input_tokens_source or "none"] += 1
        counts = r.token_counts
        for a, b in _PAIRS:
            if a in counts and b in counts:
                pair = self.pairs[f"{a} vs {b}"]
                pair[0] += 1
                pair[1] += counts[a] != counts[b]
        if r.forced_output_tokens and r.requested_output_tokens is not None:
            self.length_checked += 1
            if r.output_tokens != r.requested_output_tokens:
                self.length_mismatched += 1
                if len(self.length_examples) < 5:
                    self.length_examples.append((r.index, r.requested_output_tokens, r.output_tokens or 0))
        if self.slos and m.meets_slos(r, self.slos):
            self.good += 1

    @property
    def arrival_clock(self) -> str | None:
        """``"kernel"``, ``"read"``, ``"mixed"``, or None when no request got an answer."""
        if len(self.clocks) > 1:
            return "mixed"
        return next(iter(self.clocks), None)

    def metrics(self) -> m.RunMetrics:
        """The run's figures so far (see the module docstring for which are exact)."""
        status = self.status
        ok = status["ok"]
        first, last = self.first_intended_ns, self.last_end_ns
        window = max(0, last - first) if first is not None and last is not None else 0
        seconds = window / 1e9
        h = self.latencies
        return m.RunMetrics(
            counts=m.RequestCounts(
                sent=sum(status.values()),
                ok=ok,
                failed=status["failed"],
                cancelled=status["cancelled"],
                warmup=self.warmup,
            ),
            window_ns=window,
            ttft=h["ttft"].summary(),
            ttft_sched=h["ttft_sched"].summary(),
            tth=h["tth"].summary(),
            itl=h["itl"].summary(),
            tpot=h["tpot"].summary(),
            e2e=h["e2e"].summary(),
            e2e_sched=h["e2e_sched"].summary(),
            schedule_lag=h["schedule_lag"].summary(),
            first_token_lag=h["first_token_lag"].summary(),
            input_tokens=counter_summary(self.input_counts),
            output_tokens=counter_summary(self.output_counts),
            requests_per_s=ok / seconds if seconds else 0.0,
            output_tokens_per_s=self.output_tokens / seconds if seconds else 0.0,
            failures=dict(self.failures.most_common()),
            output_token_sources=dict(self.output_sources),
            input_token_sources=dict(self.input_sources),
            token_disagreements={k: (both, differ) for k, (both, differ) in self.pairs.items() if both},
            length_check=m.LengthCheck(
                self.length_checked, self.length_mismatched, list(self.length_examples)
            ),
            slos_ns=dict(self.slos),
            good_requests=self.good if self.slos else None,
            goodput_per_s=(self.good / seconds if seconds else 0.0) if self.slos else None,
            percentiles="histogram",
        )
