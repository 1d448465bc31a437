"""Bounded memory: ``trtclient bench --bounded-memory`` streaming for minutes at >= 20k events/s.

Two parts, both against the fast loopback source (``benchmarks.sse_source``, its own process; 64
tokens per stream, one every 20 ms, ``STREAMS`` concurrent streams, 460 by default: 400 would make
20k events/s if each stream's next request followed at once, but the turnaround between requests
takes about a tenth of each stream's time: on the 2-core development machine 400 delivered 17,800
events/s):

1. **Agreement** (``MEMORY_CHECK_S`` seconds, 20 by default): a run that keeps every record; its
   latency summaries computed exactly (:func:`trtclient.loadtest.metrics.compute_metrics`, what bench
   prints without ``--bounded-memory``) and from histograms
   (:class:`trtclient.loadtest.accumulator.RunAccumulator`, what it prints with it) over the same
   records. Each histogram percentile must lie within the stated bound (half a microsecond below 1 ms,
   :data:`~trtclient.loadtest.histogram.RELATIVE_ERROR` above) of the values at the ranks next to the
   exact, interpolated percentile.
2. **Memory** (``MEMORY_RUN_S`` seconds, 600 by default): the bench engine with ``bounded_memory`` and
   every record going to a JSONL file on disk (``--records``), as a long run would. The resident memory
   (RSS) of this process is sampled every ``MEMORY_SAMPLE_S`` seconds; the start figure is taken once
   the first streams have ended (``WARMUP_S``), the end figure at the last sample under load. The run
   passes when growth stays under ``GROWTH_BOUND_MB`` (64 MB) and nothing failed.

Run: ``python -m benchmarks memory`` (not part of ``make test``); ``MEMORY_RUN_S=60`` for a quick check.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.common import Row
from benchmarks.sse_source import SSESource
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.accumulator import RunAccumulator
from trtclient.loadtest.histogram import RELATIVE_ERROR
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Concurrency, Stop
from trtclient.loadtest.workload import FixedPrompt

__all__ = ["run"]

NAME = "memory"
TOKENS = 64
DELAY_S = 0.020
STREAMS = int(os.environ.get("MEMORY_STREAMS", "460"))
CHECK_S = float(os.environ.get("MEMORY_CHECK_S", "20"))
RUN_S = float(os.environ.get("MEMORY_RUN_S", "600"))
SAMPLE_S = float(os.environ.get("MEMORY_SAMPLE_S", "30"))
WARMUP_S = 10.0
GROWTH_BOUND_MB = 64.0
PROMPT = "What is machine learning?"
MB = 1024 * 1024
#: The latency metrics compared, with how to take their values from one record.
COMPARED = ("ttft", "itl", "tpot", "e2e", "first_token_lag")


def _spec(seconds: float, *, bounded: bool, records: Path | None = None) -> BenchSpec:
    return BenchSpec(
        Concurrency(STREAMS),
        Stop(seconds=seconds),
        FixedPrompt(PROMPT, TOKENS),
        ramp_up_s=TOKENS * DELAY_S,
        perf_metrics=True,
        scrape_metrics=False,
        records_path=records,
        bounded_memory=bounded,
    )


def _values(name: str, ok: list[RequestRecord]) -> list[float]:
    if name == "itl":
        return sorted(float(g) for r in ok for g in m.itl_ns(r))
    metric = {
        "ttft": m.ttft_ns,
        "tpot": m.tpot_ns,
        "e2e": m.e2e_ns,
        "first_token_lag": m.engine_first_token_lag_ns,
    }[name]
    return sorted(float(v) for r in ok if (v := metric(r)) is not None)


def _within_bound(approx: float, values: list[float], q: float) -> bool:
    h = (len(values) - 1) * q / 100
    low, high = values[math.floor(h)], values[math.ceil(h)]
    slack = 500 + RELATIVE_ERROR * max(abs(low), abs(high))
    return low - slack <= approx <= high + slack


def agreement(url: str) -> tuple[int, int]:
    """Run part 1 and print it; return (percentiles compared, percentiles within the bound)."""
    outcome = asyncio.run(run_bench(_spec(CHECK_S, bounded=False), url))
    records = outcome.result.records
    exact = m.compute_metrics(records)
    accumulator = RunAccumulator()
    for record in records:
        accumulator.add(record)
    approx = accumulator.metrics()
    ok = [r for r in m.measured(records) if r.status == "ok"]
    print(f"agreement over {len(ok)} requests, {sum(len(r.event_ns) for r in ok)} events ({CHECK_S:g} s):")
    print(f"  {'metric':<16} {'pct':>4} {'exact ms':>12} {'histogram ms':>13} {'diff':>9}  within bound")
    compared = within = 0
    for name in COMPARED:
        e, a = getattr(exact, name), getattr(approx, name)
        if e is None or a is None:
            continue
        values = _values(name, ok)
        for field, q in zip(("p50", "p90", "p95", "p99"), m.PERCENTILES, strict=True):
            ev, av = getattr(e, field), getattr(a, field)
            good = _within_bound(av, values, q)
            compared += 1
            within += good
            diff = f"{(av - ev) / ev:+.2%}" if ev else "n/a"
            shown = "yes" if good else "NO"
            print(f"  {name:<16} {field:>4} {ev / 1e6:12.4f} {av / 1e6:13.4f} {diff:>9}  {shown}")
        same = (e.count, e.min, e.max) == (a.count, a.min, a.max) and math.isclose(
            e.mean, a.mean, rel_tol=1e-9
        )
        compared += 1
        within += same
        print(f"  {name:<16} count, min, max, mean exact: {'yes' if same else 'NO'}")
    return compared, within


class RssSampler:
    """This process's resident memory every ``interval`` seconds, from a thread."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        next_at = WARMUP_S
        while not self._stop.wait(max(0.0, self._t0 + next_at - time.monotonic())):
            at = time.monotonic() - self._t0
            rss = self._process.memory_info().rss / MB
            self.samples.append((at, rss))
            print(f"  {at:6.0f} s  RSS {rss:7.1f} MB", flush=True)
            next_at += self.interval


def long_run(url: str, records: Path) -> tuple[float, float, float, float, int]:
    """Run part 2 and print it; return (RSS start MB, RSS end MB, events/s, CPU us/event, failed)."""
    print(f"bounded-memory run: {STREAMS} streams for {RUN_S:g} s, records to {records}", flush=True)
    cpu0 = time.process_time()
    with RssSampler(SAMPLE_S) as sampler:
        outcome = asyncio.run(run_bench(_spec(RUN_S, bounded=True, records=records), url))
    cpu = time.process_time() - cpu0
    metrics = outcome.report.metrics
    under_load = [s for s in sampler.samples if s[0] <= RUN_S]
    if len(under_load) < 2:
        raise RuntimeError(
            f"the run was too short to sample memory twice (MEMORY_RUN_S > {WARMUP_S + SAMPLE_S})"
        )
    events = metrics.output_tokens_per_s * metrics.window_ns / 1e9
    per_event = cpu * 1e6 / events if events else float("nan")
    print(
        f"  {metrics.counts.ok} requests ok, {metrics.counts.failed} failed; "
        f"{metrics.output_tokens_per_s:.0f} events/s; client CPU {per_event:.1f} us/event; "
        f"records on disk {records.stat().st_size / MB:.0f} MB; latency percentiles: {metrics.percentiles}"
    )
    return under_load[0][1], under_load[-1][1], metrics.output_tokens_per_s, per_event, metrics.counts.failed


def run() -> list[Row]:
    """Both parts; print them; return the summary rows."""
    with SSESource(delay_s=DELAY_S, tokens=TOKENS) as source, tempfile.TemporaryDirectory() as tmp:
        compared, within = agreement(source.url)
        start, end, rate, per_event, failed = long_run(source.url, Path(tmp) / "records.jsonl")
    growth = end - start
    verdict = "PASS" if growth < GROWTH_BOUND_MB and not failed and within == compared else "FAIL"
    print(
        f"RSS start {start:.1f} MB, end {end:.1f} MB, growth {growth:+.1f} MB "
        f"(bound {GROWTH_BOUND_MB:g} MB); {within}/{compared} summary figures within the histogram's "
        f"bound: {verdict}"
    )
    note = f"{STREAMS} streams, {RUN_S:g} s, bound {GROWTH_BOUND_MB:g} MB"
    return [
        Row(NAME, "RSS at start", start, "MB", note),
        Row(NAME, "RSS at end", end, "MB", note),
        Row(NAME, "RSS growth", growth, "MB", note),
        Row(NAME, "events/s", rate, "events/s", note),
        Row(NAME, "client CPU per event", per_event, "us", note),
        Row(
            NAME,
            "figures within the histogram bound",
            within,
            "of",
            f"{compared} compared, {CHECK_S:g} s run",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run()))
