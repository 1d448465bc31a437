"""Locust distributed over worker processes: how the streaming load one master drives grows with workers.

A Locust master and W worker processes (``locust --master --expect-workers W`` and ``locust --worker``,
the same locustfile everywhere, as on real machines) read streams from the fast loopback source
(``benchmarks.sse_source``: 64 tokens per stream, one every 20 ms; ``SOURCES`` processes sharing one
port, so that the source is not what limits), ``STREAMS_PER_WORKER`` users per worker. Per worker count:
content events per second delivered in all, the first token's lag behind the source's stamp (p50, p99,
from every worker's records, the first wave left out as in ``locust_capacity``), and the workers' CPU
(mean cores per worker and microseconds per event). A level is *sustained* while the lag p99 stays
within 5 ms.

On the 2-core development machine this only shows that distribution works and costs nothing per
event; its point is a machine with many cores, where ``SSE_SOURCE_CPUS`` pins the source processes
(e.g. ``0-3``) and ``taskset -c 4-15`` keeps the master and workers on the other cores.

Run: ``python -m benchmarks locust_distributed``. Knobs: ``LOCUST_DISTRIBUTED_WORKERS`` (worker counts,
``1,2``), ``LOCUST_DISTRIBUTED_STREAMS`` (users per worker, 200), ``LOCUST_DISTRIBUTED_SOURCES`` (source
processes, 1), ``LOCUST_DISTRIBUTED_WINDOW_S`` (seconds per run, 10).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Row, format_table
from benchmarks.locust_capacity import DELAY_S, LAG_BOUND_MS, STREAM_S, TOKENS, WARMUP_S, CpuSampler, measure
from benchmarks.sse_source import SSESource
from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.server.process import free_port

__all__ = ["Spread", "run"]

NAME = "locust_distributed"
ROOT = Path(__file__).resolve().parents[1]
WORKERS = tuple(int(n) for n in os.environ.get("LOCUST_DISTRIBUTED_WORKERS", "1,2").split(","))
STREAMS_PER_WORKER = int(os.environ.get("LOCUST_DISTRIBUTED_STREAMS", "200"))
SOURCES = int(os.environ.get("LOCUST_DISTRIBUTED_SOURCES", "1"))
WINDOW_S = float(os.environ.get("LOCUST_DISTRIBUTED_WINDOW_S", "10"))
#: Seconds from starting the master to its first request (imports, workers connecting), roughly.
STARTUP_S = 3.0
LOCUSTFILE = ROOT / "locustfiles" / "concurrency.py"


@dataclass(frozen=True)
class Spread:
    """One worker count's figures."""

    workers: int
    streams: int
    events_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    cores_per_worker: float

    @property
    def cpu_us_per_event(self) -> float:
        cores = self.cores_per_worker * self.workers
        return cores * 1e6 / self.events_per_s if self.events_per_s else float("nan")

    @property
    def sustained(self) -> bool:
        return self.lag_p99_ms <= LAG_BOUND_MS


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def run_spread(url: str, workers: int, workdir: Path) -> Spread:
    """One distributed run: a master expecting ``workers`` workers, each a process of its own."""
    streams = workers * STREAMS_PER_WORKER
    port = free_port()
    records = workdir / f"records-{workers}.jsonl"
    common = ["-f", str(LOCUSTFILE), "--max-tokens", str(TOKENS)]
    master_log = (workdir / f"master-{workers}.log").open("wb")
    master = subprocess.Popen(
        [
            sys.executable, "-m", "locust", *common, "--master", "--headless",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", str(workers), "--host", url, "-u", str(streams),
            "-r", f"{streams / STREAM_S:g}", "-t", f"{WINDOW_S:g}s", "--records", str(records),
            "--only-summary", "--stop-timeout", "5",
        ],
        cwd=ROOT, stdout=master_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(workers):
            with (workdir / f"worker-{workers}-{n}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [
                            sys.executable, "-m", "locust", *common, "--worker",
                            "--master-host", "127.0.0.1", "--master-port", str(port),
                        ],
                        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
        window = (STARTUP_S + WARMUP_S, STARTUP_S + WINDOW_S - 0.5)
        samplers = [CpuSampler(w.pid, *window).start() for w in started]
        code = master.wait(WINDOW_S + 180)
        for worker in started:
            worker.wait(60)
    finally:
        for process in [master, *started]:
            _stop(process)
        master_log.close()
    if code != 0:
        raise RuntimeError(f"locust master with {workers} workers exited {code}; see {workdir}")
    mine: list[RequestRecord] = []
    for n in range(workers):
        path = records.with_name(f"{records.name}.worker{n}")
        if path.exists():
            mine.extend(read_records(path))
    cores = [s.result() for s in samplers]
    level = measure(f"{workers} workers", streams, mine, sum(cores))
    per_worker = sum(cores) / workers
    return Spread(workers, streams, level.events_per_s, level.lag_p50_ms, level.lag_p99_ms, per_worker)


def run() -> list[Row]:
    """Measure each worker count; print a line per count; return the summary rows."""
    spreads: list[Spread] = []
    print(
        f"{STREAMS_PER_WORKER} streams per worker, {TOKENS} tokens every {DELAY_S * 1e3:g} ms, "
        f"{SOURCES} source process(es), {os.cpu_count()} CPUs",
        flush=True,
    )
    with (
        SSESource(delay_s=DELAY_S, tokens=TOKENS, processes=SOURCES) as source,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for workers in WORKERS:
            spread = run_spread(source.url, workers, Path(tmp))
            spreads.append(spread)
            print(
                f"{spread.workers:>3} workers, {spread.streams:>5} streams: "
                f"{spread.events_per_s:9.0f} events/s "
                f"(ideal {spread.streams / DELAY_S:7.0f}), first-token lag p50 {spread.lag_p50_ms:6.2f} ms "
                f"p99 {spread.lag_p99_ms:7.2f} ms, {spread.cores_per_worker:4.2f} cores per worker "
                f"({spread.cpu_us_per_event:5.0f} us/event)"
                f"{'' if spread.sustained else '  <- lag above the bound'}",
                flush=True,
            )
    rows: list[Row] = []
    kept = [s for s in spreads if s.sustained]
    best = max(kept, key=lambda s: s.events_per_s) if kept else None
    note = f"{STREAMS_PER_WORKER} streams/worker, lag p99 <= {LAG_BOUND_MS:g} ms"
    rows.append(Row(NAME, "workers sustained", best.workers if best else 0, "workers", note))
    rows.append(Row(NAME, "events/s sustained", best.events_per_s if best else 0, "events/s", note))
    last = spreads[-1]
    rows.append(Row(NAME, "CPU per event", last.cpu_us_per_event, "us", f"at {last.workers} workers"))
    return rows


if __name__ == "__main__":
    print(format_table(run()))
