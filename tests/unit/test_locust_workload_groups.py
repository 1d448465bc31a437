"""The Locust kit's workload groups (``locustfiles/trtlocust/_groups.py``) and their table: latency by
KV-cache hit or miss, by turn and by LoRA adapter, kept in histograms per process, merged over the wire,
and equal to ``trtclient.loadtest.breakdown`` over the same records."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from trtlocust import _stats as ts
from trtlocust import _tables as tables

from trtclient.loadtest.breakdown import breakdown, format_breakdown
from trtclient.loadtest.records import RequestRecord


def over_the_wire(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = msgpack.loads(msgpack.dumps(data), raw=False, strict_map_key=False)
    return result


def rec(i: int, rng: random.Random) -> RequestRecord:
    """A request of turn 1..3 and adapter a/b; turn 1 misses the KV cache, later turns hit; some fail."""
    turn = 1 + i % 3
    adapter = "4242" if i % 7 == 0 else ("sql" if i % 2 else "support")
    sent = 1_000_000
    first = sent + rng.randrange(1_000_000, 50_000_000)
    end = first + rng.randrange(1_000_000, 9_000_000)
    if adapter == "4242":
        return RequestRecord(
            index=i,
            intended_ns=0,
            sent_ns=sent,
            end_ns=sent + 100,
            status="failed",
            error_kind="http_400",
            error_message="LoRA task 4242 not found in cache. Please send LoRA weights with request",
            turn=turn,
            adapter=adapter,
        )
    reused = 0 if turn == 1 else turn
    return RequestRecord(
        index=i,
        intended_ns=0,
        sent_ns=sent,
        event_ns=[first, end - 1],
        end_ns=end,
        status="ok",
        output_tokens=2,
        kv_cache={"kv_cache_reused_blocks": reused, "kv_cache_alloc_total_blocks": 4},
        turn=turn,
        adapter=adapter,
    )


def test_groups_merged_from_two_workers_match_the_library_breakdown() -> None:
    rng = random.Random(3)
    records = [rec(i, rng) for i in range(60)]
    workers = [ts.RunStats(), ts.RunStats()]
    for r in records:
        workers[r.index % 2].add_record(r)
    master = ts.merged(over_the_wire(w.take()) for w in workers)
    ours, theirs = master.groups.breakdown(), breakdown(records)
    for mine, lib in (
        (ours.kv_cache, theirs.kv_cache),
        (ours.turns, theirs.turns),
        (ours.adapters, theirs.adapters),
    ):
        assert [g.label for g in mine] == [g.label for g in lib]
        for a, b in zip(mine, lib, strict=True):
            assert (a.ok, a.failed, a.first_error) == (b.ok, b.failed, b.first_error)
            assert a.kv_hit_rate == pytest.approx(b.kv_hit_rate)
            if b.ttft is None:
                assert a.ttft is None
            else:
                assert a.ttft is not None and a.ttft.count == b.ttft.count
                assert a.ttft.max == pytest.approx(b.ttft.max, rel=0.005)  # three significant digits
    assert [g.label for g in ours.turns] == ["turn 1", "turn 2", "turn 3"]
    assert [g.label for g in ours.kv_cache] == ["hit", "miss"]
    assert [g.label for g in ours.adapters] == ["4242", "sql", "support"]
    failed = ours.adapters[0]
    assert failed.ok == 0 and failed.failed == sum(r.adapter == "4242" for r in records)
    assert failed.first_error is not None and "LoRA task 4242 not found" in failed.first_error


def test_turns_sort_as_numbers_and_the_console_shows_the_library_tables() -> None:
    stats = ts.RunStats()
    rng = random.Random(5)
    for i, turn in enumerate([10, 2, 1]):
        r = rec(1, rng)
        r.index, r.turn, r.adapter = i, turn, None
        stats.add_record(r)
    assert [g.label for g in stats.groups.breakdown().turns] == ["turn 1", "turn 2", "turn 10"]
    lines = tables.summary_lines(stats, "ensemble")
    assert lines[-len(format_breakdown(stats.groups.breakdown())) :] == format_breakdown(
        stats.groups.breakdown()
    )
    assert any(line.startswith("by turn") for line in lines)
    assert any(line.startswith("by KV cache") for line in lines)


def test_workload_csv_and_html_carry_the_groups(tmp_path: Path) -> None:
    stats = ts.RunStats()
    rng = random.Random(9)
    for i in range(14):
        stats.add_record(rec(i, rng))
    _, _, path = tables.write_csv(stats, str(tmp_path / "run"), "ensemble")
    assert path.name == "run_workload.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert {(row["Split"], row["Group"]) for row in rows} == {
        ("kv_cache", "hit"),
        ("kv_cache", "miss"),
        ("turns", "turn 1"),
        ("turns", "turn 2"),
        ("turns", "turn 3"),
        ("adapters", "4242"),
        ("adapters", "sql"),
        ("adapters", "support"),
    }
    by = {(row["Split"], row["Group"]): row for row in rows}
    assert float(by["kv_cache", "miss"]["KV hit rate"]) == 0.0
    assert float(by["turns", "turn 3"]["KV hit rate"]) == pytest.approx(0.75)
    assert (
        by["adapters", "4242"]["OK"] == "0" and "not found in cache" in by["adapters", "4242"]["First error"]
    )
    assert by["adapters", "4242"]["TTFT 50%"] == ""
    section = tables.report_section(stats, "ensemble")
    assert "By KV cache, turn and LoRA adapter" in section and "turn 3" in section


def test_a_run_without_groups_writes_the_header_alone(tmp_path: Path) -> None:
    stats = ts.RunStats()
    stats.add_record(RequestRecord(index=0, intended_ns=0, sent_ns=1, event_ns=[5], end_ns=6, status="ok"))
    assert not stats.groups
    _, _, path = tables.write_csv(stats, str(tmp_path / "run"), "ensemble")
    assert path.read_text().splitlines() == [",".join(tables.WORKLOAD_HEADERS.values())]
    assert "By KV cache" not in tables.report_section(stats, "ensemble")
