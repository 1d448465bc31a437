"""Does the open loop deliver the rate it was asked for? Pacer precision and the highest rate sustained.

1. Pacer precision, no network: wake-up lateness of 2,000 absolute deadlines 1 ms apart, with the load
   engine's timer thread (``trtclient.bench.pacer.Pacer``) and with plain ``asyncio.sleep`` to the same
   deadlines, side by side.
2. Open loop against the fast loopback source (``benchmarks.sse_source``; Triton on two cores is slower
   than the client): constant arrivals at rising rates, 4 tokens per stream, about 4 s each, until a
   rate is missed. Achieved rate = (requests − 1) / (last send − first send); schedule lag = send −
   intended start. The highest rate whose achieved rate is within 2 % of the target is reported, with
   its lag p99 and the client's CPU use (the source runs in its own process on the same cores).
"""

from __future__ import annotations

import asyncio
import os

from benchmarks.common import Row
from benchmarks.sse_source import SSESource
from trtclient import AsyncTritonClient
from trtclient.bench.pacer import Pacer
from trtclient.bench.runner import RunConfig, Runner
from trtclient.loadtest import metrics as m
from trtclient.loadtest.schedule import Rate, Stop, Warmup
from trtclient.loadtest.workload import FixedPrompt
from trtclient.timing import now_ns

__all__ = ["run"]

NAME = "bench_open_loop"
RATES = tuple(
    int(r) for r in os.environ.get("BENCH_OPEN_LOOP_RATES", "250,500,1000,1500,2000,2500,3000").split(",")
)
SECONDS = float(os.environ.get("BENCH_OPEN_LOOP_SECONDS", "4"))
TOLERANCE = 0.02


async def _wake_lateness(use_pacer: bool, count: int = 2000, gap_ns: int = 1_000_000) -> list[float]:
    late: list[float] = []
    start = now_ns() + 20_000_000
    with Pacer() as pacer:
        for i in range(count):
            deadline = start + i * gap_ns
            if use_pacer:
                await pacer.sleep_until(deadline)
            else:
                await asyncio.sleep(max(0, deadline - now_ns()) / 1e9)
            late.append((now_ns() - deadline) / 1e6)
    return late


def pacer_precision() -> list[Row]:
    """Part 1: the timer thread against asyncio's timers."""
    print("pacer precision: lateness of 2000 wake-ups, 1 ms apart", flush=True)
    rows = []
    for label, use_pacer in (("timer thread (Pacer)", True), ("asyncio.sleep", False)):
        s = m.summarize(asyncio.run(_wake_lateness(use_pacer)))
        assert s is not None
        print(f"  {label:<22} p50 {s.p50:.3f}  p99 {s.p99:.3f}  max {s.max:.3f} ms", flush=True)
        rows.append(Row(NAME, f"wake lateness p99, {label}", s.p99, "ms"))
    return rows


async def _open_loop(url: str, rate: int) -> tuple[float, m.RunMetrics, float]:
    requests = max(50, int(rate * SECONDS))
    async with AsyncTritonClient(url, max_retries=0) as client:
        runner = Runner(
            client,
            FixedPrompt("What is machine learning?", 4),
            RunConfig(
                Rate(float(rate), "constant"), Stop(requests=requests), Warmup(requests=min(rate, 200))
            ),
        )
        result = await runner.run()
    measured = [r for r in result.records if not r.warmup and r.sent_ns is not None]
    sends = sorted(r.sent_ns for r in measured if r.sent_ns is not None)
    achieved = (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9) if len(sends) > 1 else 0.0
    return achieved, m.compute_metrics(result.records), result.client.cores


def open_loop() -> list[Row]:
    """Part 2: rising rates against the fast source."""
    print(f"open loop against the fast source, constant arrivals, ~{SECONDS:g} s per rate", flush=True)
    best: tuple[int, float, float, float] | None = None
    with SSESource() as source:
        for rate in RATES:
            achieved, mt, cores = asyncio.run(_open_loop(source.url, rate))
            lag = mt.schedule_lag
            lag_p50, lag_p99 = (lag.p50 / 1e6, lag.p99 / 1e6) if lag else (float("nan"), float("nan"))
            ok = abs(achieved - rate) <= TOLERANCE * rate and mt.counts.failed == 0
            print(
                f"  target {rate:5d}/s  achieved {achieved:8.1f}/s ({achieved / rate:6.1%})  "
                f"lag p50 {lag_p50:6.2f}  p99 {lag_p99:7.2f} ms  client {cores:.2f} cores  "
                f"failed {mt.counts.failed}  {'ok' if ok else 'MISSED'}",
                flush=True,
            )
            if not ok:
                break  # past the highest sustainable rate; higher ones only take longer to miss
            best = (rate, achieved, lag_p99, cores)
    if best is None:
        return [Row(NAME, "highest rate within 2%", 0, "req/s", "none of the rates held")]
    rate, achieved, lag_p99, cores = best
    return [
        Row(NAME, "highest rate within 2%", rate, "req/s", f"achieved {achieved:.1f}/s"),
        Row(NAME, "schedule lag p99 at that rate", lag_p99, "ms"),
        Row(NAME, "client CPU at that rate", cores, "cores"),
    ]


def run() -> list[Row]:
    """Both parts; rows for the summary table."""
    return pacer_precision() + open_loop()


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run()))
