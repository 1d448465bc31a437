"""The Locust scenarios' workloads as real Locust processes against the real embedded Triton (instant
profile): conversations (``--turns``) with their TTFT by turn and the KV-cache reuse from the second turn
on, a LoRA mix (``--lora``) with a row per adapter and the engine's refusal of an unknown one, a trace
replayed across two worker processes (``replay.py``), and one-line messages for bad workload input.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import psutil
import pytest

from trtclient import exit_codes
from trtclient.cli import main
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.server.launcher import ServerHandle

pytestmark = [pytest.mark.integration, pytest.mark.locust]

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = ROOT / "locustfiles"
REQUEST = "/v2/models/ensemble/generate_stream"
UNKNOWN_ADAPTER = "LoRA task 4242 not found in cache. Please send LoRA weights with request"


def run_locust(log: Path, scenario: str, *args: str, timeout: float = 90.0) -> tuple[int, str]:
    """One ``locust`` command to its end, in its own process group; whatever is left is killed."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / scenario), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = process.wait(timeout)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    return code, log.read_text(errors="replace")


def workload_rows(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with Path(f"{prefix}_workload.csv").open(newline="") as file:
        return {(row["Split"], row["Group"]): row for row in csv.DictReader(file)}


def test_conversations_show_ttft_by_turn_and_reuse_the_history(
    tmp_path: Path, triton_server: ServerHandle
) -> None:
    """``--turns 3 --think-time 100ms``: each user's turn k+1 is its turn k's prompt, answer and a new
    100-token message, sent after the answer plus the think time; from the second turn on the engine
    reuses the history's KV blocks, and the tables show TTFT by turn and by cache hit."""
    records, prefix = tmp_path / "records.jsonl", tmp_path / "run"
    code, output = run_locust(
        tmp_path / "turns.log",
        "concurrency.py",
        "--headless",
        "--host",
        triton_server.url,
        "-u",
        "2",
        "--turns",
        "3",
        "--think-time",
        "100ms",
        "--input-tokens",
        "100",
        "--max-tokens",
        "4",
        "--force-output-length",
        "-t",
        "3s",
        "--records",
        str(records),
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert code == 0, output[-3000:]
    assert "by turn" in output and "  turn 2" in output and "by KV cache" in output
    rows = workload_rows(prefix)
    for turn in (1, 2, 3):
        assert int(rows["turns", f"turn {turn}"]["OK"]) > 0
    assert float(rows["turns", "turn 3"]["KV hit rate"]) > float(rows["turns", "turn 1"]["KV hit rate"])
    assert int(rows["kv_cache", "hit"]["OK"]) > 0
    done = [r for r in read_records(records) if r.status == "ok"]
    chats: dict[str, dict[int, RequestRecord]] = {}
    for r in done:
        assert r.prompt_id is not None and r.turn is not None
        chats.setdefault(r.prompt_id.rsplit("-", 1)[0], {})[r.turn] = r
        if r.turn >= 2:
            rate = m.kv_hit_rate(r)
            assert rate is not None and rate > 0, r.prompt_id  # the history's blocks were reused
    follow_ups = 0
    for turns in chats.values():
        for k in sorted(turns):
            if k - 1 in turns:
                before, after = turns[k - 1], turns[k]
                assert after.input_tokens is not None and before.input_tokens is not None
                assert after.input_tokens > before.input_tokens + 100  # history + answer + message
                assert before.end_ns is not None
                assert after.intended_ns >= before.end_ns + 100_000_000  # after the answer + think time
                follow_ups += 1
    assert follow_ups >= 2


def test_a_lora_mix_has_a_row_per_adapter_and_the_unknown_one_fails_with_the_engines_message(
    tmp_path: Path, triton_server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """An adapter introduced once over gRPC (``trtclient bench --lora NAME``) is then used by its
    ``lora_task_id`` over Locust's HTTP; 4242 was never given weights, so the engine refuses it."""
    introduce = ["bench", "--url", triton_server.grpc_url, "--transport", "grpc", "--lora", "locust-known:1"]
    quick = ["--prompt", "hello", "--max-tokens", "2", "--concurrency", "1", "--requests", "1"]
    assert main([*introduce, *quick, "--no-progress", "--no-server-metrics"]) == exit_codes.OK
    capsys.readouterr()
    known = str(zlib.crc32(b"locust-known"))  # lora.py's task id of a name
    records, prefix = tmp_path / "records.jsonl", tmp_path / "run"
    code, output = run_locust(
        tmp_path / "lora.log",
        "concurrency.py",
        "--headless",
        "--host",
        triton_server.url,
        "-u",
        "2",
        "--lora",
        f"{known}:2,4242:1",
        "--max-tokens",
        "3",
        "-t",
        "2s",
        "--max-failures",
        "100%",
        "--records",
        str(records),
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert code == 0, output[-3000:]
    assert "by adapter" in output and UNKNOWN_ADAPTER in output
    rows = workload_rows(prefix)
    assert {g for split, g in rows if split == "adapters"} == {known, "4242"}
    assert int(rows["adapters", known]["OK"]) > 0 and rows["adapters", known]["Failed"] == "0"
    assert rows["adapters", "4242"]["OK"] == "0" and int(rows["adapters", "4242"]["Failed"]) > 0
    assert UNKNOWN_ADAPTER in rows["adapters", "4242"]["First error"]
    with Path(f"{prefix}_stats.csv").open(newline="") as file:
        locust_rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    ok_row, bad_row = (
        locust_rows["POST", f"{REQUEST} [lora {known}]"],
        locust_rows["POST", f"{REQUEST} [lora 4242]"],
    )
    assert int(ok_row["Request Count"]) > 0 and ok_row["Failure Count"] == "0"
    assert int(bad_row["Failure Count"]) == int(bad_row["Request Count"]) > 0
    # Locust's failures table: the kind and the start of the engine's message
    assert "LoRA task 4242 not found in cache" in Path(f"{prefix}_failures.csv").read_text()
    got = [r for r in read_records(records) if r.status != "cancelled"]
    assert {r.adapter for r in got} == {known, "4242"}
    assert all((r.status == "ok") == (r.adapter == known) for r in got)


def write_trace(path: Path, n: int = 20) -> list[float]:
    """``n`` requests 40-70 ms apart (about a second in all); their timestamps in milliseconds."""
    stamps = [1000.0 + sum(40 + (i * 7) % 31 for i in range(k)) + 0.25 for k in range(n)]
    lines = [
        {"timestamp": t, "input_length": 40 + k, "output_length": 3, "hash_ids": [k]}
        for k, t in enumerate(stamps)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return stamps


def test_replay_sends_every_trace_line_once_near_its_time_across_two_workers(
    tmp_path: Path, triton_server: ServerHandle
) -> None:
    """The master deals the trace's arrivals with their lines to two worker processes: every line is
    sent once, by one worker, with its recorded length, and its record's intended start is the line's
    time; the send follows it closely (a generous bound here: the figure belongs in a benchmark)."""
    trace, records = tmp_path / "trace.jsonl", tmp_path / "records.jsonl"
    stamps = write_trace(trace)
    code, output = run_locust(
        tmp_path / "replay.log",
        "replay.py",
        "--headless",
        "--host",
        triton_server.url,
        "--processes",
        "2",
        "--trace",
        str(trace),
        "--records",
        str(records),
        "--only-summary",
    )
    assert code == 0, output[-3000:]
    parts = [list(read_records(Path(f"{records}.worker{i}"))) for i in (0, 1)]
    assert all(parts), "each worker sent part of the trace"
    got = {r.prompt_id: r for part in parts for r in part}
    assert sum(len(part) for part in parts) == len(got) == len(stamps)
    assert set(got) == {f"trace-{line}" for line in range(1, len(stamps) + 1)}
    first = got["trace-1"]
    t0 = first.intended_ns + first.epoch_offset_ns
    for line, stamp in enumerate(stamps, start=1):
        r = got[f"trace-{line}"]
        assert r.status == "ok" and r.input_tokens == 40 + line - 1
        planned_ms = (r.intended_ns + r.epoch_offset_ns - t0) / 1e6
        assert planned_ms == pytest.approx(stamp - stamps[0], abs=1.0)  # the epoch clocks of two processes
        lag = m.schedule_lag_ns(r)
        assert lag is not None and 0 <= lag < 500_000_000


BAD_TRACE = (
    '{"timestamp": 5, "input_length": 8, "output_length": 2}\n'
    '{"timestamp": 4, "input_length": 8, "output_length": 2}\n'
)
NO_LENGTH = '{"timestamp": 5, "output_length": 2}\n'


@pytest.mark.parametrize(
    ("scenario", "args", "message"),
    [
        (
            "replay.py",
            ["--trace", "{unsorted}"],
            "unsorted.jsonl:2: timestamp 4 is earlier than line 1's 5; sort",
        ),
        (
            "replay.py",
            ["--trace", "{no_length}"],
            "no_length.jsonl:1: 'input_length' must be an integer, got None",
        ),
        ("concurrency.py", ["--lora", "7:x"], "argument --lora: '7:x' is not NAME_OR_ID:WEIGHT"),
        ("concurrency.py", ["--lora", "support:1"], "argument --lora: 'support' is a name"),
        ("concurrency.py", ["--shared-prefix", "2:1020"], "over the server's max_input_len 1024"),
        ("rate.py", ["--turns", "2"], "--turns holds one conversation per user, a closed loop"),
        ("replay.py", [], "replay.py needs --trace FILE (a JSONL trace)"),
    ],
)
def test_bad_workload_input_is_one_line(tmp_path: Path, scenario: str, args: list[str], message: str) -> None:
    (tmp_path / "unsorted.jsonl").write_text(BAD_TRACE)
    (tmp_path / "no_length.jsonl").write_text(NO_LENGTH)
    paths = {"unsorted": str(tmp_path / "unsorted.jsonl"), "no_length": str(tmp_path / "no_length.jsonl")}
    code, output = run_locust(
        tmp_path / "bad.log",
        scenario,
        "--headless",
        *(a.format(**paths) for a in args),
        "-t",
        "1s",
        timeout=60,
    )
    assert code == exit_codes.USAGE, output[-2000:]
    assert message in output
    assert "Traceback" not in output
    assert "starting the embedded Triton" not in output  # refused before any server or load
