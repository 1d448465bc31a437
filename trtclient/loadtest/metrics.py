"""The load engine's metric definitions: pure functions over a :class:`~.records.RequestRecord`.

Every report, the JSON summary, the CSV and the Locust stats use the names defined here. All durations
are nanoseconds of ``trtclient.timing.now_ns()``; reports show them in milliseconds.

Per request (successful requests only; failures are counted beside, never mixed into latencies):

- ``ttft``: time to first token = arrival of the first content event − send.
- ``ttft_sched``: first content event − *intended* start. Equal to ``ttft`` plus schedule lag; in an open
  loop it is the coordinated-omission-safe view (a late send still counts against the server's latency
  as a user would see it).
- ``tth``: time to response headers − send (separates HTTP front-end queueing from prefill).
- ``itl``: inter-token latency = each gap between consecutive content events of one request. It is
  *per event*: when one event carries several tokens, the gap covers them all (vLLM's ``itl``; AIPerf
  calls it ``inter_chunk_latency``).
- ``tpot``: time per output token = (e2e − ttft) / (output tokens − 1), defined when tokens > 1
  (vLLM's ``tpot``; GenAI-Perf and AIPerf call this ``inter_token_latency``).
- ``e2e``: end-to-end latency = end of the response − send; ``e2e_sched`` = end − intended start.
- ``schedule_lag``: send − intended start (pacer delay + concurrency-ceiling wait + client overhead).
- ``first_token_lag``: client arrival of the first content event − the engine's own
  ``first_token_time_ns`` (TRT-LLM ``return_perf_metrics``), on the epoch scale: the server's pipeline
  after the engine plus the client's delay. Meaningful only when client and server share a clock.
- ``kv_hit_rate``: the engine's ``kv_cache_reused_blocks`` / ``kv_cache_alloc_total_blocks`` (TRT-LLM
  ``return_perf_metrics``): the share of the request's KV-cache blocks found already computed. A request
  is a cache *hit* when it reused at least one block.

Per run (the measured window runs from the earliest intended start to the latest end of the measured,
i.e. non-warm-up, requests):

- ``requests_per_s``: successful requests / window; ``output_tokens_per_s``: their output tokens / window.
- ``goodput``: successful requests meeting every SLO / window (an SLO on ``tpot`` is met by a request
  with one output token, where tpot is undefined).
- Summaries give count, mean, std (population), min, p50, p90, p95, p99 and max; percentiles interpolate
  linearly between the two nearest ranks (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from trtclient.loadtest.failures import FailureReason, failure_reasons
from trtclient.loadtest.records import RequestRecord

__all__ = [
    "DEFINITIONS",
    "PERCENTILES",
    "SLO_METRICS",
    "LengthCheck",
    "RequestCounts",
    "RunMetrics",
    "Summary",
    "compute_metrics",
    "e2e_ns",
    "e2e_sched_ns",
    "engine_first_token_lag_ns",
    "inflight_series",
    "itl_ns",
    "kv_hit_rate",
    "measured",
    "meets_slos",
    "percentile",
    "schedule_lag_ns",
    "summarize",
    "token_rate_series",
    "tpot_ns",
    "tth_ns",
    "ttft_ns",
    "ttft_sched_ns",
    "window_ns",
]

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)

DEFINITIONS: dict[str, str] = {
    "ttft": "time to first token: first content event arrival - send",
    "ttft_sched": "first content event arrival - intended start (coordinated-omission-safe)",
    "tth": "time to response headers - send",
    "itl": "gap between consecutive content events of a request (per event, not per token)",
    "tpot": "(e2e - ttft) / (output tokens - 1), requests with more than one output token",
    "e2e": "end of response - send",
    "e2e_sched": "end of response - intended start",
    "schedule_lag": "send - intended start",
    "first_token_lag": "first content event arrival - engine first_token_time_ns (same-host clocks)",
    "requests_per_s": "successful requests / measured window",
    "output_tokens_per_s": "output tokens of successful requests / measured window",
    "goodput": "successful requests meeting every SLO / measured window",
    "kv_hit_rate": "engine kv_cache_reused_blocks / kv_cache_alloc_total_blocks; hit: reused any block",
}


# ---------------------------------------------------------------- per request


def ttft_ns(r: RequestRecord) -> int | None:
    """Time to first token from the send: first content event − ``sent_ns``."""
    if r.sent_ns is None or not r.event_ns:
        return None
    return r.event_ns[0] - r.sent_ns


def ttft_sched_ns(r: RequestRecord) -> int | None:
    """Time to first token from the intended start: first content event − ``intended_ns``."""
    if not r.event_ns:
        return None
    return r.event_ns[0] - r.intended_ns


def tth_ns(r: RequestRecord) -> int | None:
    """Time to response headers: ``headers_ns`` − ``sent_ns``."""
    if r.sent_ns is None or r.headers_ns is None:
        return None
    return r.headers_ns - r.sent_ns


def e2e_ns(r: RequestRecord) -> int | None:
    """End-to-end latency from the send: ``end_ns`` − ``sent_ns``."""
    if r.sent_ns is None or r.end_ns is None:
        return None
    return r.end_ns - r.sent_ns


def e2e_sched_ns(r: RequestRecord) -> int | None:
    """End-to-end latency from the intended start: ``end_ns`` − ``intended_ns``."""
    if r.end_ns is None:
        return None
    return r.end_ns - r.intended_ns


def itl_ns(r: RequestRecord) -> list[int]:
    """Gaps between consecutive content events (one fewer than the events)."""
    ev = r.event_ns
    return [b - a for a, b in zip(ev, ev[1:], strict=False)]


def tpot_ns(r: RequestRecord) -> float | None:
    """Time per output token after the first: (e2e − ttft) / (output tokens − 1)."""
    first, total, tokens = ttft_ns(r), e2e_ns(r), r.output_tokens
    if first is None or total is None or tokens is None or tokens < 2:
        return None
    return (total - first) / (tokens - 1)


def schedule_lag_ns(r: RequestRecord) -> int | None:
    """How late the request was sent: ``sent_ns`` − ``intended_ns``."""
    if r.sent_ns is None:
        return None
    return r.sent_ns - r.intended_ns


def engine_first_token_lag_ns(r: RequestRecord) -> int | None:
    """First content event's arrival (epoch scale) − the engine's ``first_token_time_ns``."""
    engine = r.engine_ns.get("first_token_time_ns")
    if not engine or not r.event_ns:
        return None
    return r.event_ns[0] + r.epoch_offset_ns - engine


SLO_METRICS: dict[str, Callable[[RequestRecord], float | None]] = {
    "ttft": ttft_ns,
    "ttft_sched": ttft_sched_ns,
    "tpot": tpot_ns,
    "e2e": e2e_ns,
    "e2e_sched": e2e_sched_ns,
}
"""Metrics an SLO can be set on (thresholds in nanoseconds)."""


# ---------------------------------------------------------------- summaries


def kv_hit_rate(r: RequestRecord) -> float | None:
    """Share of the request's KV-cache blocks the engine reused (None: the engine did not say)."""
    return r.kv_hit_rate


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ascending values, interpolating linearly between ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    h = (len(sorted_values) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


@dataclass(frozen=True)
class Summary:
    """Distribution of one metric: count, mean, population std, min, p50, p90, p95, p99, max."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value (not the count) multiplied by ``factor``."""
        values = {k: v * factor for k, v in asdict(self).items() if k != "count"}
        return Summary(count=self.count, **values)

    def as_dict(self) -> dict[str, float]:
        """The fields as a dict (count included)."""
        return asdict(self)


def summarize(values: Iterable[float]) -> Summary | None:
    """Summary of the values, or ``None`` when there are none."""
    data = sorted(values)
    if not data:
        return None
    n = len(data)
    mean = math.fsum(data) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / n)
    p50, p90, p95, p99 = (percentile(data, q) for q in PERCENTILES)
    return Summary(n, mean, std, data[0], p50, p90, p95, p99, data[-1])


def _summary_of(
    records: Iterable[RequestRecord], metric: Callable[[RequestRecord], float | None]
) -> Summary | None:
    return summarize(v for v in map(metric, records) if v is not None)


# ---------------------------------------------------------------- per run


def measured(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """The records that count: everything but warm-up."""
    return [r for r in records if not r.warmup]


def window_ns(records: Sequence[RequestRecord]) -> int:
    """Measured window: earliest intended start to latest end (0 when nothing ended)."""
    ends = [r.end_ns for r in records if r.end_ns is not None]
    if not records or not ends:
        return 0
    return max(0, max(ends) - min(r.intended_ns for r in records))


@dataclass(frozen=True)
class RequestCounts:
    """How the measured requests ended; ``sent`` = ``ok`` + ``failed`` + ``cancelled``."""

    sent: int
    ok: int
    failed: int
    cancelled: int
    warmup: int


@dataclass(frozen=True)
class LengthCheck:
    """Requests that asked for an exact output length, and how many got it."""

    checked: int
    mismatched: int
    examples: list[tuple[int, int, int]] = field(default_factory=list)
    """Up to five ``(index, requested, received)`` of mismatched requests."""


@dataclass(frozen=True)
class RunMetrics:
    """Every figure of one run, computed by :func:`compute_metrics`. Durations in nanoseconds."""

    counts: RequestCounts
    window_ns: int
    ttft: Summary | None
    ttft_sched: Summary | None
    tth: Summary | None
    itl: Summary | None
    tpot: Summary | None
    e2e: Summary | None
    e2e_sched: Summary | None
    schedule_lag: Summary | None
    first_token_lag: Summary | None
    input_tokens: Summary | None
    output_tokens: Summary | None
    requests_per_s: float
    output_tokens_per_s: float
    failures: dict[str, int]
    output_token_sources: dict[str, int]
    input_token_sources: dict[str, int]
    token_disagreements: dict[str, tuple[int, int]]
    """``"a vs b"`` -> (requests with both counts, requests where they differ)."""
    length_check: LengthCheck
    slos_ns: dict[str, float]
    good_requests: int | None
    goodput_per_s: float | None
    percentiles: Literal["exact", "histogram"] = "exact"
    """How latency percentiles were computed: from every value (interpolating between ranks), or from
    streaming histograms (:mod:`trtclient.loadtest.accumulator`, which states the bound)."""
    failure_reasons: list[FailureReason] = field(default_factory=list)
    """Per failure kind: the count and the server's most common messages."""


def _length_check(ok: Sequence[RequestRecord]) -> LengthCheck:
    forced = [r for r in ok if r.forced_output_tokens and r.requested_output_tokens is not None]
    bad = [r for r in forced if r.output_tokens != r.requested_output_tokens]
    examples = [(r.index, r.requested_output_tokens or 0, r.output_tokens or 0) for r in bad[:5]]
    return LengthCheck(checked=len(forced), mismatched=len(bad), examples=examples)


def _disagreements(ok: Sequence[RequestRecord]) -> dict[str, tuple[int, int]]:
    pairs = (
        ("server_output", "events_output"),
        ("server_output", "tokenizer_output"),
        ("server_input", "tokenizer_input"),
    )
    out: dict[str, tuple[int, int]] = {}
    for a, b in pairs:
        both = [r for r in ok if a in r.token_counts and b in r.token_counts]
        if both:
            differ = sum(1 for r in both if r.token_counts[a] != r.token_counts[b])
            out[f"{a} vs {b}"] = (len(both), differ)
    return out


def meets_slos(r: RequestRecord, slos_ns: Mapping[str, float]) -> bool:
    """True when every SLO metric of the request is at or under its threshold (undefined counts as met)."""
    for name, limit in slos_ns.items():
        value = SLO_METRICS[name](r)
        if value is not None and value > limit:
            return False
    return True


def compute_metrics(
    records: Iterable[RequestRecord], slos_ns: Mapping[str, float] | None = None
) -> RunMetrics:
    """All metrics of a run from its records (warm-up records are skipped)."""
    slos = dict(slos_ns or {})
    unknown = set(slos) - set(SLO_METRICS)
    if unknown:
        raise ValueError(f"no SLO metric named {', '.join(sorted(unknown))}; known: {', '.join(SLO_METRICS)}")
    every = list(records)
    recs = measured(every)
    ok = [r for r in recs if r.status == "ok"]
    failed = [r for r in recs if r.status == "failed"]
    window = window_ns(recs)
    seconds = window / 1e9
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    good = sum(1 for r in ok if meets_slos(r, slos)) if slos else None
    return RunMetrics(
        counts=RequestCounts(
            sent=len(recs),
            ok=len(ok),
            failed=len(failed),
            cancelled=sum(1 for r in recs if r.status == "cancelled"),
            warmup=len(every) - len(recs),
        ),
        window_ns=window,
        ttft=_summary_of(ok, ttft_ns),
        ttft_sched=_summary_of(ok, ttft_sched_ns),
        tth=_summary_of(ok, tth_ns),
        itl=summarize(g for r in ok for g in itl_ns(r)),
        tpot=_summary_of(ok, tpot_ns),
        e2e=_summary_of(ok, e2e_ns),
        e2e_sched=_summary_of(ok, e2e_sched_ns),
        schedule_lag=_summary_of(recs, schedule_lag_ns),
        first_token_lag=_summary_of(ok, engine_first_token_lag_ns),
        input_tokens=summarize(r.input_tokens for r in ok if r.input_tokens is not None),
        output_tokens=summarize(r.output_tokens for r in ok if r.output_tokens is not None),
        requests_per_s=len(ok) / seconds if seconds else 0.0,
        output_tokens_per_s=out_tokens / seconds if seconds else 0.0,
        failures=dict(Counter(r.error_kind or "unknown" for r in failed).most_common()),
        output_token_sources=dict(Counter(r.output_tokens_source or "none" for r in ok)),
        input_token_sources=dict(Counter(r.input_tokens_source or "none" for r in ok)),
        token_disagreements=_disagreements(ok),
        length_check=_length_check(ok),
        slos_ns=slos,
        good_requests=good,
        goodput_per_s=(good / seconds if seconds else 0.0) if good is not None else None,
        failure_reasons=failure_reasons(failed),
    )


# ---------------------------------------------------------------- over time


def _bins(start_ns: int, end_ns: int, step_ns: int) -> int:
    if step_ns <= 0:
        raise ValueError("step must be positive")
    return max(1, math.ceil((end_ns - start_ns) / step_ns))


def token_rate_series(
    records: Iterable[RequestRecord], start_ns: int, end_ns: int, step_ns: int
) -> list[float]:
    """Output tokens per second in each step of ``[start_ns, end_ns)``, successful requests only.

    Tokens are placed at the arrival of the event that carried them (server per-event counts when
    known, else the request's tokens spread evenly over its content events).
    """
    bins = [0.0] * _bins(start_ns, end_ns, step_ns)
    for r in records:
        if r.status != "ok" or not r.event_ns:
            continue
        if len(r.event_tokens) == len(r.event_ns):
            weights: Sequence[float] = r.event_tokens
        else:
            each = (r.output_tokens if r.output_tokens is not None else len(r.event_ns)) / len(r.event_ns)
            weights = [each] * len(r.event_ns)
        for t, w in zip(r.event_ns, weights, strict=True):
            if start_ns <= t < end_ns:
                bins[(t - start_ns) // step_ns] += w
    return [b / (step_ns / 1e9) for b in bins]


def inflight_series(
    records: Iterable[RequestRecord], start_ns: int, end_ns: int, step_ns: int
) -> list[float]:
    """Mean number of requests in flight (sent, not yet ended) in each step of ``[start_ns, end_ns)``."""
    n = _bins(start_ns, end_ns, step_ns)
    busy = [0] * n  # nanoseconds of request time inside each step
    for r in records:
        if r.sent_ns is None:
            continue
        lo = max(r.sent_ns, start_ns)
        hi = min(r.end_ns if r.end_ns is not None else end_ns, start_ns + n * step_ns)
        while lo < hi:
            b = (lo - start_ns) // step_ns
            edge = min(hi, start_ns + (b + 1) * step_ns)
            busy[b] += edge - lo
            lo = edge
    return [t / step_ns for t in busy]
