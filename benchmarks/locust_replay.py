"""How close to their scheduled times the Locust open-loop scenarios send their requests.

Two runs of one standalone Locust process against the embedded Triton with the ``instant`` profile
(the engine adds no delay, so the figures are the client's send path plus what the server's own work on
the same cores costs it):

* ``replay.py`` replaying a generated trace of ``LOCUST_REPLAY_LINES`` requests (200) with Poisson gaps
  at ``LOCUST_REPLAY_RATE`` requests per second (50), prompts of ``LOCUST_REPLAY_INPUT`` tokens (90),
  answers of 3 tokens;
* ``rate.py --rate LOCUST_REPLAY_RATE`` (Poisson arrivals, the tutorial prompt) for as long as the trace.

For each: the schedule lag (``sent_ns - intended_ns``, ``sent_ns`` when the request's bytes start going
out) p50, p99 and max in milliseconds, and the share of requests sent within 1 ms of their time. The bar
is a trace replay sending each request within a millisecond of its time. Next to them, what explains a
tail the client cannot help: the Locust process's CPU time per request, and how long its main thread
waited for a core (the kernel's run-queue wait, ``/proc/PID/schedstat``) per second of the run, which
on a shared machine is the usual cause of a late send.

Run: ``python -m benchmarks locust_replay`` (under ``flock /tmp/bench.lock`` on a shared machine). Knobs:
``LOCUST_REPLAY_LINES``, ``LOCUST_REPLAY_RATE``, ``LOCUST_REPLAY_INPUT``, and ``LOCUST_REPLAY_PROCESSES``
(default 0: one standalone process; N: a master dealing the arrivals to N worker processes, whose CPU
and run-queue wait are added up).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common import Row, format_table
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records

__all__ = ["run"]

NAME = "locust_replay"
ROOT = Path(__file__).resolve().parents[1]
LINES = int(os.environ.get("LOCUST_REPLAY_LINES", "200"))
RATE = float(os.environ.get("LOCUST_REPLAY_RATE", "50"))
INPUT_TOKENS = int(os.environ.get("LOCUST_REPLAY_INPUT", "90"))
PROCESSES = int(os.environ.get("LOCUST_REPLAY_PROCESSES", "0"))
WITHIN_MS = 1.0
#: Seconds a run may take beyond the trace's length (startup of the embedded server, shutdown).
SLACK_S = 120.0


def write_trace(path: Path, lines: int, rate: float) -> float:
    """A Mooncake-format trace of ``lines`` requests with Poisson gaps at ``rate``; its length in s."""
    rng = random.Random(11)
    stamp = 0.0
    rows = []
    for i in range(lines):
        stamp += rng.expovariate(rate) * 1000.0
        rows.append(
            {"timestamp": round(stamp, 3), "input_length": INPUT_TOKENS, "output_length": 3, "hash_ids": [i]}
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return stamp / 1000.0


def sent(records: Path) -> list[RequestRecord]:
    """The requests in ``records`` (and in its workers' files) that were sent."""
    files = [f for f in (records, *sorted(records.parent.glob(records.name + ".worker*"))) if f.exists()]
    return [r for f in files for r in read_records(f) if r.sent_ns is not None]


Sample = tuple[int, float, float]
"""A reading of the Locust process: when (``time.monotonic_ns()``, the clock of the records' stamps on
Linux), its CPU seconds so far, its main thread's run-queue wait so far (s)."""


@dataclass(frozen=True)
class Usage:
    """The Locust process's CPU time and run-queue wait over the stretch in which it sent."""

    cpu_s: float
    run_queue_s: float
    wall_s: float


def usage_between(samples: list[Sample], start_ns: int, end_ns: int) -> Usage:
    """CPU and run-queue wait from the last reading before ``start_ns`` to the first after ``end_ns``."""
    before = [s for s in samples if s[0] <= start_ns] or samples[:1]
    after = [s for s in samples if s[0] >= end_ns] or samples[-1:]
    first, last = before[-1], after[0]
    return Usage(last[1] - first[1], last[2] - first[2], max((last[0] - first[0]) / 1e9, 1e-9))


def locust(scenario: str, records: Path, *args: str, timeout: float) -> list[Sample]:
    """One standalone ``locust`` run against the embedded Triton (instant profile), to its end; its
    process's readings, every 0.1 s."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "locustfiles" / scenario),
        "--headless",
        "--only-summary",
        "--server-profile",
        "instant",
        "--records",
        str(records),
        *(["--processes", str(PROCESSES)] if PROCESSES else []),
        *args,
    ]
    samples: list[Sample] = []
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        try:
            while process.poll() is None:
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"{scenario} still running after {timeout:.0f} s")
                with contextlib.suppress(OSError, psutil.Error, ValueError):
                    samples.append(_reading(process.pid))
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{scenario} exited {process.returncode}:\n{log.read()[-3000:]}")
    return samples


def _reading(pid: int) -> Sample:
    """CPU and run-queue wait of the Locust process and its worker processes (not the server's)."""
    main = psutil.Process(pid)
    command = main.cmdline()
    processes = [main, *(c for c in main.children() if c.cmdline() == command)]  # forked workers
    cpu, run_queue_ns = 0.0, 0
    for p in processes:
        times = p.cpu_times()
        cpu += times.user + times.system
        run_queue_ns += int(Path(f"/proc/{p.pid}/schedstat").read_text().split()[1])
    return (time.monotonic_ns(), cpu, run_queue_ns / 1e9)


def figures(label: str, records: list[RequestRecord], samples: list[Sample]) -> list[Row]:
    """p50 / p99 / max lag, the share within 1 ms, CPU per request and run-queue wait while sending,
    printed and as rows."""
    lags = [(r.sent_ns or 0) / 1e6 - r.intended_ns / 1e6 for r in records]
    usage = usage_between(samples, min(r.intended_ns for r in records), max(r.sent_ns or 0 for r in records))
    summary = m.summarize(lags)
    assert summary is not None
    within = sum(1 for lag in lags if lag <= WITHIN_MS) / len(lags)
    note = f"{len(lags)} requests at {RATE:g}/s"
    rows = [
        Row(NAME, f"{label} lag p50", summary.p50, "ms", note),
        Row(NAME, f"{label} lag p99", summary.p99, "ms", note),
        Row(NAME, f"{label} lag max", summary.max, "ms", note),
        Row(NAME, f"{label} within {WITHIN_MS:g} ms", 100.0 * within, "%", note),
        Row(
            NAME,
            f"{label} CPU per request",
            1e3 * usage.cpu_s / len(lags),
            "ms",
            "Locust process, while sending",
        ),
        Row(
            NAME,
            f"{label} run-queue wait",
            1e3 * usage.run_queue_s / usage.wall_s,
            "ms/s",
            "waiting for a core",
        ),
    ]
    print(
        f"{label:<8} n={len(lags)}  p50 {summary.p50:.3f} ms  p99 {summary.p99:.3f} ms  "
        f"max {summary.max:.3f} ms  min {summary.min:.3f} ms  within {WITHIN_MS:g} ms {100 * within:.1f} %  "
        f"CPU {1e3 * usage.cpu_s / len(lags):.2f} ms/request  "
        f"run-queue wait {1e3 * usage.run_queue_s / usage.wall_s:.0f} ms/s",
        flush=True,
    )
    return rows


def run() -> list[Row]:
    """Replay a trace, then hold the same rate, and report both runs' schedule lag."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="locust-replay-") as tmp:
        folder = Path(tmp)
        trace = folder / "trace.jsonl"
        length_s = write_trace(trace, LINES, RATE)
        replay_records = folder / "replay.jsonl"
        samples = locust("replay.py", replay_records, "--trace", str(trace), timeout=length_s + SLACK_S)
        rows += figures("replay", sent(replay_records), samples)
        rate_records = folder / "rate.jsonl"
        seconds = max(2, round(length_s))
        samples = locust(
            "rate.py", rate_records, "--rate", f"{RATE:g}", "-t", f"{seconds}s", timeout=seconds + SLACK_S
        )
        rows += figures("rate", sent(rate_records), samples)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    run()
