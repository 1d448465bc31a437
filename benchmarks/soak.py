"""Soak: steady load on the embedded Triton for minutes, watching both sides for leaks.

An open loop of Poisson arrivals (``RATE`` requests/s, ``MAX_TOKENS`` tokens each) runs through
``trtclient``'s load engine against the embedded server with the ``orin-int4`` profile (Jetson Orin,
Llama-3-8B INT4 timing), far below the server's capacity on two cores, so any failure is a fault, not
overload. Every ``SAMPLE_S`` seconds it samples the resident memory (RSS) and open file descriptors of the
client (this process) and of the server (``tritonserver`` and its python-backend stubs, summed).

Start figures are taken once the warm-up is over (connection pool filled, batches formed, allocators
settled), end figures at the last sample under load, and a last column once the client has closed its
connections. The run passes when no request failed and the growth from start
to end stays within the bounds below. The client keeps one record per request in memory by design (the
report is computed from them), a few kilobytes each, which the client memory bound includes.

Run: ``python -m benchmarks.soak --minutes 10`` (or ``python -m benchmarks soak``, with
``SOAK_MINUTES`` in the environment to change the default of 10).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass

import psutil

from benchmarks.common import Row
from trtclient.bench.progress import Counters
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest.schedule import Rate, Stop
from trtclient.loadtest.workload import FixedPrompt
from trtclient.server.launcher import EmbeddedTriton

DEFAULT_MINUTES = 10.0
RATE = 4.0
MAX_TOKENS = 32
PROMPT = "What is machine learning?"
PROFILE = "orin-int4"
SAMPLE_S = 5.0
MIB = 1 << 20

#: Largest growth from the start sample to the end sample that still passes.
CLIENT_RSS_BOUND_MIB = 64.0
SERVER_RSS_BOUND_MIB = 128.0
FDS_BOUND = 16


@dataclass(frozen=True)
class Sample:
    """Resident memory (bytes) and open file descriptors of the client and of the server, at one time."""

    at_s: float
    client_rss: int
    client_fds: int
    server_rss: int
    server_fds: int
    server_processes: int


def take_sample(started: float, client: psutil.Process, server_pid: int) -> Sample:
    """Measure both sides now; server processes that vanish while being read are skipped."""
    rss = fds = count = 0
    leader = psutil.Process(server_pid)
    for process in [leader, *leader.children(recursive=True)]:
        try:
            rss += process.memory_info().rss
            fds += process.num_fds()
            count += 1
        except psutil.NoSuchProcess:
            continue
    return Sample(
        at_s=time.monotonic() - started,
        client_rss=client.memory_info().rss,
        client_fds=client.num_fds(),
        server_rss=rss,
        server_fds=fds,
        server_processes=count,
    )


async def soak(server: EmbeddedTriton, minutes: float) -> tuple[Counters, list[Sample], Sample, float]:
    """Run the load for ``minutes`` while sampling; return the final counters, the samples taken under
    load, one taken after the client closed its connections, and the warm-up in seconds."""
    duration = minutes * 60.0
    warmup = min(30.0, duration / 5)
    spec = BenchSpec(
        shape=Rate(RATE, "poisson"),
        stop=Stop(seconds=duration),
        workload=FixedPrompt(PROMPT, MAX_TOKENS),
        read_timeout_s=60.0,
        scrape_metrics=False,
        seed=1,
    )
    client = psutil.Process()
    samples: list[Sample] = []
    last = Counters()
    started = time.monotonic()
    next_print = started + 60.0

    def on_progress(counters: Counters) -> None:
        nonlocal last, next_print
        last = counters
        if time.monotonic() >= next_print:
            next_print += 60.0
            print(
                f"  {time.monotonic() - started:5.0f} s: {counters.ok} ok, {counters.failed} failed, "
                f"{counters.in_flight} in flight",
                flush=True,
            )

    async def sampler() -> None:
        while True:
            samples.append(take_sample(started, client, server.handle.pid))
            await asyncio.sleep(SAMPLE_S)

    task = asyncio.create_task(sampler())
    try:
        outcome = await run_bench(spec, server.url, on_progress=on_progress)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    after = take_sample(started, client, server.handle.pid)
    counts = outcome.report.metrics.counts
    final = Counters(sent=counts.sent, ok=counts.ok, failed=counts.failed, cancelled=counts.cancelled)
    if outcome.report.metrics.failures:
        print(f"  failures by kind: {outcome.report.metrics.failures}")
    return final, samples, after, warmup


def _verdict(ok: bool) -> str:
    return "within bound" if ok else "OVER BOUND"


def run(minutes: float | None = None) -> list[Row]:
    """Soak the embedded server for ``minutes`` (default: ``$SOAK_MINUTES`` or 10) and print the findings."""
    if minutes is None:
        minutes = float(os.environ.get("SOAK_MINUTES", DEFAULT_MINUTES))
    print(
        f"soak: {minutes:g} min of Poisson arrivals at {RATE:g} req/s, max_tokens {MAX_TOKENS}, "
        f"embedded Triton profile {PROFILE}",
        flush=True,
    )
    with EmbeddedTriton(profile=PROFILE) as server:
        counters, samples, after, warmup = asyncio.run(soak(server, minutes))
    start = next((s for s in samples if s.at_s >= warmup), samples[0])
    end = samples[-1]
    client_rss = (end.client_rss - start.client_rss) / MIB
    server_rss = (end.server_rss - start.server_rss) / MIB
    client_fds = end.client_fds - start.client_fds
    server_fds = end.server_fds - start.server_fds
    checks = {
        "failed requests": counters.failed == 0 and counters.cancelled == 0,
        "client RSS": client_rss <= CLIENT_RSS_BOUND_MIB,
        "server RSS": server_rss <= SERVER_RSS_BOUND_MIB,
        "client fds": client_fds <= FDS_BOUND,
        "server fds": server_fds <= FDS_BOUND,
    }
    print(
        f"requests: {counters.sent} sent, {counters.ok} ok, {counters.failed} failed, "
        f"{counters.cancelled} cancelled"
    )
    print(
        f"start = sample at {start.at_s:.0f} s (after {warmup:.0f} s warm-up), "
        f"end = sample at {end.at_s:.0f} s"
    )
    print(f"{'':16}{'start':>10}{'end':>10}{'growth':>10}{'closed':>10}  bound on growth")
    lines = (
        ("client RSS MiB", start.client_rss / MIB, end.client_rss / MIB, after.client_rss / MIB),
        ("server RSS MiB", start.server_rss / MIB, end.server_rss / MIB, after.server_rss / MIB),
        ("client fds", start.client_fds, end.client_fds, after.client_fds),
        ("server fds", start.server_fds, end.server_fds, after.server_fds),
    )
    bounds = (CLIENT_RSS_BOUND_MIB, SERVER_RSS_BOUND_MIB, FDS_BOUND, FDS_BOUND)
    for (name, first, last, closed), bound in zip(lines, bounds, strict=True):
        growth = last - first
        verdict = _verdict(growth <= bound)
        print(f"{name:16}{first:>10.1f}{last:>10.1f}{growth:>+10.1f}{closed:>10.1f}  {bound:g} ({verdict})")
    print(
        f"server processes: {start.server_processes} at start, {end.server_processes} at end; "
        "'closed' = after the client closed its connections"
    )
    passed = all(checks.values())
    summary = ", ".join(f"{k} {_verdict(v)}" for k, v in checks.items())
    print(f"soak {'PASSED' if passed else 'FAILED'}: {summary}")
    note = f"{minutes:g} min, {RATE:g} req/s"
    return [
        Row("soak", "requests ok", counters.ok, "requests", note),
        Row("soak", "requests failed", counters.failed + counters.cancelled, "requests", "bound 0"),
        Row("soak", "client RSS growth", client_rss, "MiB", f"bound {CLIENT_RSS_BOUND_MIB:g}"),
        Row("soak", "server RSS growth", server_rss, "MiB", f"bound {SERVER_RSS_BOUND_MIB:g}"),
        Row("soak", "client fds growth", client_fds, "fds", f"bound {FDS_BOUND}"),
        Row("soak", "server fds growth", server_fds, "fds", f"bound {FDS_BOUND}"),
        Row("soak", "verdict", 1.0 if passed else 0.0, "1 = pass", summary if not passed else ""),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--minutes", type=float, default=None, help=f"length of the soak (default: {DEFAULT_MINUTES:g})"
    )
    args = parser.parse_args(argv)
    if args.minutes is not None and not args.minutes > 0:
        parser.error("--minutes must be positive")
    from benchmarks.common import format_table

    rows = run(args.minutes)
    print(format_table(rows))
    return 0 if rows[-1].value == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
