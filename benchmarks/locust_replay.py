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
is a trace replay sending each request within a millisecond of its time.

Run: ``python -m benchmarks locust_replay`` (under ``flock /tmp/bench.lock`` on a shared machine).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Row, format_table
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import read_records

__all__ = ["run"]

NAME = "locust_replay"
ROOT = Path(__file__).resolve().parents[1]
LINES = int(os.environ.get("LOCUST_REPLAY_LINES", "200"))
RATE = float(os.environ.get("LOCUST_REPLAY_RATE", "50"))
INPUT_TOKENS = int(os.environ.get("LOCUST_REPLAY_INPUT", "90"))
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


def lags_ms(records: Path) -> list[float]:
    """Schedule lags (ms) of the sent requests in ``records`` (a worker's files too)."""
    files = [records, *sorted(records.parent.glob(records.name + ".worker*"))]
    lags: list[float] = []
    for file in files:
        if file.exists():
            lags.extend(lag / 1e6 for r in read_records(file) if (lag := m.schedule_lag_ns(r)) is not None)
    return lags


def locust(scenario: str, records: Path, *args: str, timeout: float) -> None:
    """One standalone ``locust`` run against the embedded Triton (instant profile), to its end."""
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
        *args,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} exited {done.returncode}:\n{done.stderr[-3000:]}")


def figures(label: str, lags: list[float]) -> list[Row]:
    """p50 / p99 / max lag and the share within 1 ms, printed and as rows."""
    summary = m.summarize(lags)
    if summary is None:
        raise RuntimeError(f"{label}: no request was sent")
    within = sum(1 for lag in lags if lag <= WITHIN_MS) / len(lags)
    note = f"{len(lags)} requests at {RATE:g}/s"
    rows = [
        Row(NAME, f"{label} lag p50", summary.p50, "ms", note),
        Row(NAME, f"{label} lag p99", summary.p99, "ms", note),
        Row(NAME, f"{label} lag max", summary.max, "ms", note),
        Row(NAME, f"{label} within {WITHIN_MS:g} ms", 100.0 * within, "%", note),
    ]
    print(
        f"{label:<8} n={len(lags)}  p50 {summary.p50:.3f} ms  p99 {summary.p99:.3f} ms  "
        f"max {summary.max:.3f} ms  min {summary.min:.3f} ms  within {WITHIN_MS:g} ms {100 * within:.1f} %",
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
        locust("replay.py", replay_records, "--trace", str(trace), timeout=length_s + SLACK_S)
        rows += figures("replay", lags_ms(replay_records))
        rate_records = folder / "rate.jsonl"
        seconds = max(2, round(length_s))
        locust("rate.py", rate_records, "--rate", f"{RATE:g}", "-t", f"{seconds}s", timeout=seconds + SLACK_S)
        rows += figures("rate", lags_ms(rate_records))
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    run()
