"""Trace replay against the real embedded Triton (instant profile: the engine adds no delay, so the
schedule is what is measured), through the ``trtclient bench`` command line and the library."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from trtclient.bench.session import BenchSpec, run_bench
from trtclient.cli import main
from trtclient.loadtest import metrics as m
from trtclient.loadtest.schedule import Stop
from trtclient.loadtest.trace import TracePrompts
from trtclient.loadtest.workload import TokenCounter
from trtclient.server.launcher import ServerHandle
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir

pytestmark = pytest.mark.integration


def _trace(path: Path, n: int = 30, rate: float = 20.0) -> list[dict[str, object]]:
    rng = random.Random(7)
    stamp = 1000.0
    rows: list[dict[str, object]] = []
    for i in range(n):
        stamp += rng.expovariate(rate) * 1000
        shared = i % 3 != 0  # two of three requests share the first 512-token block
        rows.append(
            {
                "timestamp": round(stamp, 3),
                "input_length": 600 if shared else 90,
                "output_length": 3,
                "hash_ids": [11, 12 + i] if shared else [100 + i],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


async def test_replay_sends_each_request_at_its_trace_time(
    triton_server: ServerHandle, tmp_path: Path
) -> None:
    rows = _trace(tmp_path / "trace.jsonl")
    tokenizer = TokenCounter.from_dir(default_tokenizer_dir())
    trace = TracePrompts(tmp_path / "trace.jsonl", tokenizer, source_text=corpus_text())
    spec = BenchSpec(
        trace.shape(), Stop(requests=len(rows)), trace, tokenizer=tokenizer, workload_sets_lengths=True
    )
    outcome = await run_bench(spec, triton_server.url, metrics_url=None)
    records = sorted(outcome.result.records, key=lambda r: r.index)
    assert [r.status for r in records] == ["ok"] * len(rows)
    assert [r.input_tokens for r in records] == [row["input_length"] for row in rows]
    first = float(rows[0]["timestamp"])  # type: ignore[arg-type]
    t0 = records[0].intended_ns
    for row, r in zip(rows, records, strict=True):
        assert r.intended_ns - t0 == round((float(row["timestamp"]) - first) * 1e6)  # type: ignore[arg-type]
    lags = m.summarize(v for v in (m.schedule_lag_ns(r) for r in records) if v is not None)
    # never early; how late (the pacer's precision) is a figure of benchmarks/trace_replay.py, as the
    # lag depends on what else the host runs
    assert lags is not None and lags.min >= 0 and lags.p50 < 20_000_000
    # requests sharing hash block 11 share its text, so the engine reuses its KV blocks (all but those
    # admitted in the same iteration as the first one to compute them: on a busy host arrivals bunch up)
    sharing = [r for i, r in enumerate(records) if i % 3 != 0]
    hits = [r for r in sharing if (m.kv_hit_rate(r) or 0) > 0]
    assert len(hits) >= len(sharing) // 2
    assert all(r.kv_cache["kv_cache_reused_blocks"] == 512 // 64 for r in hits)
    assert all(m.kv_hit_rate(r) == 0 for i, r in enumerate(records) if i % 3 == 0)


def test_bench_replays_a_trace_twice_as_fast(
    triton_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _trace(tmp_path / "trace.jsonl", n=10)
    out = tmp_path / "run.json"
    code = main(
        [
            "bench",
            "--url",
            triton_server.url,
            "--trace",
            str(tmp_path / "trace.jsonl"),
            "--trace-speed",
            "2",
            "--tokenizer",
            str(default_tokenizer_dir()),
            "--no-progress",
            "--no-server-metrics",
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(out.read_text())
    assert summary["requests"]["ok"] == len(rows)
    assert summary["config"]["load"] == {"kind": "replay", "arrivals": len(rows), "speed": 2.0}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"timestamp": 5, "input_length": 10, "output_length": 2}\n'
            '{"timestamp": 4, "input_length": 10, "output_length": 2}',
            "trace.jsonl:2: timestamp 4 is earlier than line 1",
        ),
        (
            '{"timestamp": -1, "input_length": 10, "output_length": 2}',
            "trace.jsonl:1: timestamp -1 is negative",
        ),
        ('{"timestamp": 1, "output_length": 2}', "trace.jsonl:1: 'input_length' must be an integer"),
    ],
)
def test_a_bad_trace_is_one_line_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    (tmp_path / "trace.jsonl").write_text(line + "\n")
    code = main(
        [
            "bench",
            "--url",
            "http://127.0.0.1:9",
            "--trace",
            str(tmp_path / "trace.jsonl"),
            "--tokenizer",
            str(default_tokenizer_dir()),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err
