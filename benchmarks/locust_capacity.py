"""How much streaming load one Locust worker process carries before its first-token timing degrades,
next to ``trtclient bench`` on the same load.

Both tools read the same streams from the fast loopback source (``benchmarks.sse_source``, its own
process): 64 tokens per stream, one every 20 ms (50 events/s per stream), with the source's stamp
``first_token_time_ns`` taken right before it writes the first token. At each level N, N users (or
``--concurrency N``) stream back to back for ``WINDOW_S`` seconds, their first requests spread over
one stream's length (so that, as in real traffic, streams do not start in lockstep):

* Locust: ``locust -f locustfiles/concurrency.py --headless -u N`` — one standalone process, which is
  what one worker is in a distributed run;
* trtclient bench: :func:`trtclient.bench.session.run_bench` with ``Concurrency(N)``, in this process.

Each tool runs twice per level. First stamping event arrivals when it reads them (Locust's
``--read-stamps``, the bench's ``kernel_stamps=False``): the lag then includes the client's own
delays, which shows how much load one process reads in time. Then with the default, the kernel's
receive times, which a busy client does not delay: the lag then shows the TTFT error users get, which
stays small until the client can no longer keep up at all (the socket buffers fill and the source's
writes wait).

Per level and tool: content events per second delivered, the first token's lag behind the source's
stamp (p50, p99) — the TTFT error — and client CPU (cores, and microseconds per event). The first
wave (``WARMUP_S``) is left out. A level is *sustained* while the lag p99 stays within 5 ms, the bound
``trtclient bench`` is tested to (``tests/integration/test_bench.py``). Both tools share the machine
with the source, so absolute figures depend on it; the ratio between the tools, measured side by side,
is the portable part.

Run: ``python -m benchmarks locust_capacity``. Knobs: ``LOCUST_CAPACITY_LEVELS`` (streams per level,
``16,64,128,256,512,768,1024``), ``LOCUST_CAPACITY_WINDOW_S`` (seconds per run, 8).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common import Row, format_table
from benchmarks.sse_source import SSESource
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.loadtest.schedule import Concurrency, Stop
from trtclient.loadtest.workload import FixedPrompt

__all__ = ["Level", "run"]

NAME = "locust_capacity"
ROOT = Path(__file__).resolve().parents[1]
TOKENS = 64
DELAY_S = 0.020
DEFAULT_LEVELS = "16,64,128,256,512,768,1024"
LEVELS = tuple(int(n) for n in os.environ.get("LOCUST_CAPACITY_LEVELS", DEFAULT_LEVELS).split(","))
WINDOW_S = float(os.environ.get("LOCUST_CAPACITY_WINDOW_S", "8"))
#: One stream's length: streams start spread over it, so first tokens do not all arrive at once.
STREAM_S = TOKENS * DELAY_S
#: Left out of the figures: the ramp over which streams start, and one more stream's length.
WARMUP_S = 2 * STREAM_S
#: Seconds from starting ``locust`` to its first request (imports, spawning), roughly.
STARTUP_S = 1.5
LAG_BOUND_MS = 5.0
PROMPT = "What is machine learning?"
OVER = "  <- lag above the bound"
READ_LOCUST = "locust, read stamps"
READ_BENCH = "bench, read stamps"
KERNEL_LOCUST = "locust, kernel stamps"
KERNEL_BENCH = "bench, kernel stamps"
TOOLS = (READ_LOCUST, READ_BENCH, KERNEL_LOCUST, KERNEL_BENCH)


@dataclass(frozen=True)
class Level:
    """One tool at one concurrency."""

    tool: str
    streams: int
    events_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    cpu_cores: float

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_cores * 1e6 / self.events_per_s if self.events_per_s else float("nan")

    @property
    def sustained(self) -> bool:
        return self.lag_p99_ms <= LAG_BOUND_MS


def _epoch(ns: int, r: RequestRecord) -> int:
    return ns + r.epoch_offset_ns


def measure(tool: str, streams: int, records: list[RequestRecord], cores: float) -> Level:
    """Figures of one run from its records, the first wave left out."""
    ok = [r for r in records if r.status == "ok" and r.sent_ns is not None]
    sent = [_epoch(r.sent_ns, r) for r in ok]  # type: ignore[arg-type]
    # Full load runs from the end of the first wave to the last send (then streams only finish).
    start, end = min(sent) + int(WARMUP_S * 1e9), max(sent)
    window_s = (end - start) / 1e9
    events = sum(1 for r in ok for t in r.event_ns if start <= _epoch(t, r) < end)
    lags = [
        lag / 1e6
        for r, at in zip(ok, sent, strict=True)
        if start <= at < end and (lag := m.engine_first_token_lag_ns(r)) is not None
    ]
    s = m.summarize(lags)
    if s is None:
        raise RuntimeError(f"{tool} at {streams} streams: no request started after the warm-up")
    return Level(tool, streams, events / window_s, s.p50, s.p99, cores)


class CpuSampler:
    """CPU cores one process uses between two moments (seconds after ``start()``), read by a thread."""

    def __init__(self, pid: int, start_s: float, end_s: float) -> None:
        self.process = psutil.Process(pid)
        self.start_s, self.end_s = start_s, end_s
        self.cores: float | None = None
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> CpuSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _sample(self) -> None:
        try:
            time.sleep(max(0.0, self._t0 + self.start_s - time.monotonic()))
            c1, w1 = sum(self.process.cpu_times()[:2]), time.monotonic()
            time.sleep(max(0.0, self._t0 + self.end_s - time.monotonic()))
            c2, w2 = sum(self.process.cpu_times()[:2]), time.monotonic()
        except psutil.Error:
            return
        self.cores = (c2 - c1) / (w2 - w1)

    def result(self) -> float:
        self._thread.join()
        if self.cores is None:
            raise RuntimeError("the process ended before its CPU could be sampled")
        return self.cores


def run_locust(url: str, streams: int, workdir: Path, *, kernel_stamps: bool) -> Level:
    """One standalone Locust process; its CPU sampled in the steady part of the run."""
    tool = KERNEL_LOCUST if kernel_stamps else READ_LOCUST
    stem = f"locust-{streams}-{'kernel' if kernel_stamps else 'read'}"
    records = workdir / f"{stem}.jsonl"
    with (workdir / f"{stem}.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "concurrency.py"),
                "--headless", "--host", url, "-u", str(streams), "-r", f"{streams / STREAM_S:g}",
                "-t", f"{WINDOW_S:g}s",
                "--max-tokens", str(TOKENS), "--records", str(records), "--only-summary",
                "--stop-timeout", "5", *([] if kernel_stamps else ["--read-stamps"]),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    # Locust needs about a second to start; sample after its first wave, before its -t ends.
    sampler = CpuSampler(process.pid, STARTUP_S + WARMUP_S, STARTUP_S + WINDOW_S - 0.5).start()
    try:
        code = process.wait(WINDOW_S + 120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise RuntimeError(f"locust at {streams} streams exited {code}; see {workdir}")
    return measure(tool, streams, list(read_records(records)), sampler.result())


def run_trtclient_bench(url: str, streams: int, *, kernel_stamps: bool) -> Level:
    """The same load through the bench's engine (AsyncTritonClient), in this process."""
    spec = BenchSpec(
        Concurrency(streams),
        Stop(seconds=WINDOW_S),
        FixedPrompt(PROMPT, TOKENS),
        ramp_up_s=STREAM_S,
        perf_metrics=True,
        scrape_metrics=False,
        kernel_stamps=kernel_stamps,
    )
    sampler = CpuSampler(os.getpid(), WARMUP_S, WINDOW_S - 0.5).start()
    outcome = asyncio.run(run_bench(spec, url))
    tool = KERNEL_BENCH if kernel_stamps else READ_BENCH
    return measure(tool, streams, outcome.result.records, sampler.result())


def run() -> list[Row]:
    """Measure every level with both tools, each stamping reads and then kernel arrivals; print the
    table; return the summary rows."""
    levels: list[Level] = []
    with SSESource(delay_s=DELAY_S, tokens=TOKENS) as source, tempfile.TemporaryDirectory() as tmp:
        for streams in LEVELS:
            for level in (
                run_locust(source.url, streams, Path(tmp), kernel_stamps=False),
                run_trtclient_bench(source.url, streams, kernel_stamps=False),
                run_locust(source.url, streams, Path(tmp), kernel_stamps=True),
                run_trtclient_bench(source.url, streams, kernel_stamps=True),
            ):
                levels.append(level)
                print(
                    f"{level.tool:>22} {level.streams:>4} streams: {level.events_per_s:8.0f} events/s "
                    f"(ideal {level.streams / DELAY_S:6.0f}), first-token lag p50 {level.lag_p50_ms:6.2f} ms "
                    f"p99 {level.lag_p99_ms:7.2f} ms, client {level.cpu_cores:4.2f} cores "
                    f"({level.cpu_us_per_event:5.0f} us/event){'' if level.sustained else OVER}",
                    flush=True,
                )
    rows: list[Row] = []
    for tool in TOOLS:
        mine = [lv for lv in levels if lv.tool == tool]
        kept = [lv for lv in mine if lv.sustained]
        best = max(kept, key=lambda lv: lv.events_per_s) if kept else None
        note = (
            f"first-token lag p99 <= {LAG_BOUND_MS:g} ms, {TOKENS} tokens/stream every {DELAY_S * 1e3:g} ms"
        )
        rows.append(Row(NAME, f"{tool}: streams sustained", best.streams if best else 0, "streams", note))
        rows.append(
            Row(NAME, f"{tool}: events/s sustained", best.events_per_s if best else 0, "events/s", note)
        )
        low = min(mine, key=lambda lv: lv.streams)
        rows.append(
            Row(NAME, f"{tool}: CPU per event", low.cpu_us_per_event, "us", f"at {low.streams} streams")
        )
    return rows


if __name__ == "__main__":
    print(format_table(run()))
