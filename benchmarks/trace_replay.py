"""Does a trace replay send each request on time? The distribution of send lag at the trace's rate.

A Mooncake-format trace (Poisson arrivals, ``TRACE_REPLAY_RATE`` req/s, ``TRACE_REPLAY_REQUESTS``
requests of 64 input and ``TRACE_REPLAY_OUTPUT`` output tokens) is replayed through the load engine
against the embedded Triton (``instant`` profile: tokens as fast as it can send them, so streams are
being read while later requests are due) and against the fast loopback source (``benchmarks.sse_source``,
no Triton competing for the cores), ``TRACE_REPLAY_RUNS`` times each. Printed for each: send lag
(``sent_ns`` − intended time, where ``sent_ns`` is when the request's bytes were handed to the socket)
p50 / p90 / p99 / max, the share sent within 1 ms, and where the lag arose: intended → handed to the
client (the pacer's wake-up and the event loop; negative when the request is handed over ahead of its
time, as the send gate does) and handed → written (the client's path to the socket, including any wait
at the gate).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from pathlib import Path

from benchmarks.common import Row
from benchmarks.sse_source import SSESource
from trtclient import AsyncTritonClient
from trtclient.bench.runner import RunConfig, Runner
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Stop
from trtclient.loadtest.trace import TracePrompts
from trtclient.loadtest.workload import TokenCounter
from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir

__all__ = ["replay_rows", "run"]

NAME = "trace_replay"
REQUESTS = int(os.environ.get("TRACE_REPLAY_REQUESTS", "200"))
RATE = float(os.environ.get("TRACE_REPLAY_RATE", "50"))
OUTPUT = int(os.environ.get("TRACE_REPLAY_OUTPUT", "4"))
#: Which targets to replay against: ``triton``, ``source`` (comma-separated).
TARGETS = os.environ.get("TRACE_REPLAY_TARGETS", "triton,source").split(",")
#: Replays per target, one after another against the same server.
RUNS = int(os.environ.get("TRACE_REPLAY_RUNS", "1"))


def _write_trace(path: Path) -> None:
    rng = random.Random(3)
    stamp, lines = 0.0, []
    for _ in range(REQUESTS):
        stamp += rng.expovariate(RATE) * 1000
        lines.append(json.dumps({"timestamp": round(stamp, 3), "input_length": 64, "output_length": OUTPUT}))
    path.write_text("\n".join(lines) + "\n")


async def _replay_source(url: str, trace: TracePrompts) -> list[RequestRecord]:
    async with AsyncTritonClient(url, max_retries=0) as client:
        runner = Runner(client, trace, RunConfig(trace.shape(), Stop(requests=len(trace.entries))))
        return (await runner.run()).records


def _ms(values: list[int]) -> tuple[float, float, float, float]:
    s = m.summarize([v / 1e6 for v in values])
    assert s is not None
    return s.p50, s.p90, s.p99, s.max


def _report(label: str, records: list[RequestRecord]) -> list[Row]:
    lags = [v for v in (m.schedule_lag_ns(r) for r in records) if v is not None]
    wake = [r.dispatched_ns - r.intended_ns for r in records if r.dispatched_ns is not None]
    write = [r.sent_ns - r.dispatched_ns for r in records if r.sent_ns and r.dispatched_ns]
    within = sum(1 for v in lags if v <= 1_000_000) / len(lags) if lags else 0.0
    p50, p90, p99, worst = _ms(lags)
    print(
        f"  {label}: {len(lags)} sends at {RATE:g} req/s, lag p50 {p50:.3f} ms, p90 {p90:.3f} ms, "
        f"p99 {p99:.3f} ms, max {worst:.3f} ms; {within:.1%} within 1 ms",
        flush=True,
    )
    for part, values in (("intended -> handed to the client", wake), ("handed -> written", write)):
        a, b, c, d = _ms(values)
        print(f"    {part:<33} p50 {a:.3f}  p90 {b:.3f}  p99 {c:.3f}  max {d:.3f} ms", flush=True)
    late = sorted((lag, r.index) for r in records if (lag := m.schedule_lag_ns(r)) is not None)[-3:]
    print(
        "    latest sends: " + ", ".join(f"#{i} {lag / 1e6:.3f} ms" for lag, i in reversed(late)), flush=True
    )
    note = f"{len(lags)} requests, {RATE:g} req/s"
    return [
        Row(NAME, f"send lag p50, {label}", p50, "ms", note),
        Row(NAME, f"send lag p99, {label}", p99, "ms"),
        Row(NAME, f"send lag max, {label}", worst, "ms"),
        Row(NAME, f"sent within 1 ms, {label}", within, "ratio"),
    ]


def _label(target: str, run: int) -> str:
    return target if RUNS == 1 else f"{target}, run {run + 1}"


def replay_rows(tokenizer: TokenCounter) -> list[Row]:
    """Replay the trace against each target in ``TARGETS``; print and return the lag figures."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        _write_trace(path)
        trace = TracePrompts(path, tokenizer, source_text=corpus_text())
        if "triton" in TARGETS:
            spec = BenchSpec(
                trace.shape(), Stop(requests=REQUESTS), trace, tokenizer=tokenizer, workload_sets_lengths=True
            )
            with EmbeddedTriton(profile="instant") as server:
                for run in range(RUNS):
                    records = asyncio.run(run_bench(spec, server.url, metrics_url=None)).result.records
                    rows += _report(_label("embedded Triton", run), records)
        if "source" in TARGETS:
            with SSESource() as source:
                for run in range(RUNS):
                    records = asyncio.run(_replay_source(source.url, trace))
                    rows += _report(_label("fast source", run), records)
    return rows


def run() -> list[Row]:
    return replay_rows(TokenCounter.from_dir(default_tokenizer_dir()))
