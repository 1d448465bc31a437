"""How late does the load engine see the first token? Its stamps against the server's own timestamps.

Two truths, each at 64 concurrent streams and under 1.5k events/s in total:

1. The embedded Triton's CPU engine (profile ``orin-int4``): each response carries ``first_token_time_ns``
   (``return_perf_metrics``), stamped when the engine's step emits the token. The lag to the client's
   arrival stamp covers the rest of Triton's pipeline (the decoupled model's serial sends,
   postprocessing, the ensemble, the HTTP front end) plus the client.
2. The fast loopback source (``benchmarks.sse_source``, 50 ms between tokens): it stamps
   ``first_token_time_ns`` right before writing the event, so the lag is loopback plus the client alone.

Each truth is read, interleaved in the same run, by:

- the load engine (``Runner`` + ``AsyncTritonClient``) as it runs by default: arrivals are the kernel's
  receive times of the bytes (``trtclient.rxstamp``), so its own busy moments do not count;
- the same load engine stamping when it reads (``kernel_stamps = False``): what a client that stamps
  in user space measures, including its own delays;
- a minimal aiohttp reader that stamps each read as it returns: the floor for user-space stamping.

Stamps are ``perf_counter_ns`` readings converted to the epoch with ``trtclient.timing.to_epoch_ns``.
Under each round a second line shows what the reader's event loop went through: stalls (a 1 ms ticker
woken more than 3 ms late), the longest full garbage collection, and the client's CPU per request —
what stamps taken at read time absorb and kernel stamps do not.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.common import Row
from benchmarks.sse_source import SSESource
from trtclient import AsyncTritonClient
from trtclient.bench.runner import RunConfig, Runner
from trtclient.loadtest import metrics as m
from trtclient.loadtest.request_options import RequestOptions
from trtclient.loadtest.schedule import Concurrency, Stop, Warmup
from trtclient.loadtest.workload import FixedPrompt
from trtclient.timing import now_ns, to_epoch_ns

__all__ = ["run"]

NAME = "bench_accuracy"
STREAMS = 64
TOKENS = 16
REQUESTS = int(os.environ.get("BENCH_ACCURACY_REQUESTS", "128"))
ROUNDS = int(os.environ.get("BENCH_ACCURACY_ROUNDS", "2"))
PROMPT = "What is machine learning?"

STALL_MS = 3.0


@dataclass
class Watch:
    """What one reader's event loop went through while it ran."""

    stalls_ms: list[float] = field(default_factory=list)
    full_collections_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    requests: int = 0

    def line(self) -> str:
        longest = max(self.stalls_ms, default=0.0)
        gc_longest = max(self.full_collections_ms, default=0.0)
        cpu_us = self.cpu_s / self.requests * 1e6 if self.requests else float("nan")
        return (
            f"    loop: {len(self.stalls_ms)} stalls > {STALL_MS:g} ms (longest {longest:.1f} ms), "
            f"{len(self.full_collections_ms)} full collections (longest {gc_longest:.1f} ms), "
            f"client CPU {cpu_us:.0f} us per request of {TOKENS} events"
        )


@asynccontextmanager
async def watching(requests: int) -> AsyncIterator[Watch]:
    """Watch the running loop (1 ms ticker) and the collector while the body runs."""
    watch = Watch(requests=requests)
    started: list[int] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter_ns())
        elif started and info.get("generation") == 2:
            watch.full_collections_ms.append((time.perf_counter_ns() - started.pop()) / 1e6)
        elif started:
            started.pop()

    async def tick() -> None:
        while True:
            before = time.perf_counter_ns()
            await asyncio.sleep(0.001)
            late = (time.perf_counter_ns() - before) / 1e6 - 1.0
            if late > STALL_MS:
                watch.stalls_ms.append(late)

    ticker = asyncio.create_task(tick())
    gc.callbacks.append(on_gc)
    cpu0 = time.process_time()
    try:
        yield watch
    finally:
        watch.cpu_s = time.process_time() - cpu0
        gc.callbacks.remove(on_gc)
        ticker.cancel()


Lags = tuple[list[float], float, Watch]
"""First-token lags in ms, content events per second over the run, and what the loop went through."""


async def engine_lags(url: str, kernel_stamps: bool = True) -> Lags:
    """The load engine: ``STREAMS`` workers, ``REQUESTS`` measured after one warm-up wave."""
    client = AsyncTritonClient(url, max_retries=0)
    client.kernel_stamps = kernel_stamps
    async with client, watching(REQUESTS + STREAMS) as watch:
        runner = Runner(
            client,
            FixedPrompt(PROMPT, TOKENS),
            RunConfig(Concurrency(STREAMS), Stop(requests=REQUESTS), Warmup(requests=STREAMS)),
            RequestOptions(perf_metrics=True, server_token_counts=True),
        )
        result = await runner.run()
    measured = [r for r in result.records if not r.warmup and r.status == "ok"]
    expected = "kernel" if kernel_stamps else "read"
    assert all(r.arrival_clock == expected for r in measured), "arrival stamps are not what was asked"
    lags = [lag / 1e6 for lag in map(m.engine_first_token_lag_ns, measured) if lag is not None]
    events = sum(len(r.event_ns) for r in result.records)
    return lags, events / result.client.wall_s, watch


async def engine_read_lags(url: str) -> Lags:
    """The load engine stamping its reads instead of the kernel's arrivals."""
    return await engine_lags(url, kernel_stamps=False)


async def raw_lags(url: str) -> Lags:
    """A minimal aiohttp reader: same streams, first read that holds an event is the arrival."""
    body = json.dumps(
        {"text_input": PROMPT, "max_tokens": TOKENS, "stream": True, "return_perf_metrics": True}
    ).encode()
    target = f"{url}/v2/models/ensemble/generate_stream"
    lags: list[float] = []
    events = 0
    connector = aiohttp.TCPConnector(limit=0)
    per_worker = -(-REQUESTS // STREAMS)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        watching(STREAMS * (per_worker + 1)) as watch,
    ):

        async def one(record: bool) -> None:
            nonlocal events
            first: tuple[int, int] | None = None
            buffer = b""
            async with session.post(target, data=body, headers={"Content-Type": "application/json"}) as resp:
                async for data in resp.content.iter_any():
                    arrival = now_ns()
                    buffer += data
                    while b"\n\n" in buffer:
                        event, buffer = buffer.split(b"\n\n", 1)
                        events += 1
                        fields = json.loads(event.removeprefix(b"data: "))
                        if first is None and "first_token_time_ns" in fields:
                            first = (arrival, int(fields["first_token_time_ns"]))
            if record and first is not None:
                lags.append((to_epoch_ns(first[0]) - first[1]) / 1e6)

        async def worker(count: int, record: bool) -> None:
            for _ in range(count):
                await one(record)

        await asyncio.gather(*(worker(1, False) for _ in range(STREAMS)))  # warm-up wave
        start, events = now_ns(), 0
        await asyncio.gather(*(worker(per_worker, True) for _ in range(STREAMS)))
        seconds = (now_ns() - start) / 1e9
    return lags, events / seconds, watch


def _line(label: str, lags: list[float], rate: float) -> str:
    s = m.summarize(lags)
    if s is None:
        return f"  {label:<32} no data"
    return (
        f"  {label:<32} n {s.count:4d}  min {s.min:6.2f}  p50 {s.p50:6.2f}  p90 {s.p90:6.2f}  "
        f"p99 {s.p99:6.2f}  max {s.max:6.2f} ms   {rate:6.0f} events/s"
    )


def _compare(title: str, url: str) -> dict[str, list[float]]:
    print(title, flush=True)
    readers: dict[str, Callable[[str], Coroutine[Any, Any, Lags]]] = {
        "load engine": engine_lags,
        "engine, read stamps": engine_read_lags,
        "minimal reader": raw_lags,
    }
    pooled: dict[str, list[float]] = {label: [] for label in readers}
    for round_ in range(ROUNDS):
        for label, reader in readers.items():
            lags, rate, watch = asyncio.run(reader(url))
            pooled[label].extend(lags)
            print(_line(f"{label} (round {round_ + 1})", lags, rate), flush=True)
            print(watch.line(), flush=True)
    return pooled


def _rows(truth: str, pooled: dict[str, list[float]]) -> list[Row]:
    rows = []
    for label, key in (
        ("load engine", "engine"),
        ("engine, read stamps", "engine read"),
        ("minimal reader", "raw"),
    ):
        s = m.summarize(pooled[label])
        if s is not None:
            rows.append(Row(NAME, f"first-token lag p50, {truth}, {key}", s.p50, "ms", f"{STREAMS} streams"))
            rows.append(Row(NAME, f"first-token lag p99, {truth}, {key}", s.p99, "ms", f"{STREAMS} streams"))
    return rows


def run() -> list[Row]:
    """Print the lag distributions and return p50/p99 rows for both truths and both readers."""
    from trtclient.server.launcher import EmbeddedTriton

    rows: list[Row] = []
    with EmbeddedTriton(profile="orin-int4") as server:
        pooled = _compare(
            f"first-token lag vs the CPU engine's first_token_time_ns (orin-int4, {STREAMS} streams, "
            f"{TOKENS} tokens each)",
            server.url,
        )
        rows += _rows("CPU engine", pooled)
    with SSESource(delay_s=0.05) as source:
        pooled = _compare(
            f"first-token lag vs the fast source's write time ({STREAMS} streams, 50 ms per token)",
            source.url,
        )
        rows += _rows("fast source", pooled)
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run()))
