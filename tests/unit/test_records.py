"""Request records and the JSONL sink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtclient.loadtest.records import JsonlSink, RequestRecord, read_records
from trtclient.timing import EPOCH_OFFSET_NS


def sample(index: int) -> RequestRecord:
    return RequestRecord(
        index=index,
        intended_ns=1_000 + index,
        sent_ns=1_100 + index,
        headers_ns=1_200,
        event_ns=[1_300, 1_400],
        event_tokens=[1, 1],
        end_ns=1_500,
        status="ok",
        http_status=200,
        output_tokens=2,
        output_tokens_source="server",
        token_counts={"server_output": 2, "events_output": 2},
        engine_ns={"first_token_time_ns": 1_700_000_000_000_000_000},
    )


def test_round_trip_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with JsonlSink(path, run_id="run-a") as sink:
        for i in range(3):
            sink.write(sample(i))
    expected = [sample(i) for i in range(3)]
    for record in expected:
        record.run_id = "run-a"
    assert list(read_records(path)) == expected


def test_each_record_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path)
    sink.write(sample(0))
    # read through a second handle while the sink is still open
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0]
    sink.write(sample(1))
    assert len(path.read_text().splitlines()) == 2 and sink.written == 2
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(sample(2))


def test_sink_replaces_a_file_unless_told_to_append_and_ids_each_run(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for i in range(2):
        with JsonlSink(path) as sink:
            sink.write(sample(i))
    assert [r.index for r in read_records(path)] == [1]  # a new run starts the file afresh
    with JsonlSink(path, append=True) as sink:
        sink.write(sample(2))
    records = list(read_records(path))
    assert [r.index for r in records] == [1, 2]
    assert records[0].run_id and records[1].run_id and records[0].run_id != records[1].run_id


def test_defaults_describe_a_request_that_never_finished() -> None:
    r = RequestRecord(index=0, intended_ns=5)
    assert r.status == "cancelled" and r.sent_ns is None and r.event_ns == []
    assert r.epoch_offset_ns == EPOCH_OFFSET_NS


def test_from_dict_ignores_unknown_keys_and_rejects_unknown_status() -> None:
    data = sample(0).to_dict() | {"added_later": 1}
    assert RequestRecord.from_dict(data) == sample(0)
    with pytest.raises(ValueError, match="unknown status"):
        RequestRecord.from_dict(sample(0).to_dict() | {"status": "maybe"})


def test_read_records_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(sample(0).to_dict()) + "\n\n{not json}\n")
    with pytest.raises(ValueError, match=r"r.jsonl:3: not a request record"):
        list(read_records(path))


def test_to_dict_equals_asdict_and_does_not_share_containers() -> None:
    import dataclasses

    record = RequestRecord(index=3, intended_ns=7, event_ns=[1, 2], engine_ns={"first_token_time_ns": 5})
    data = record.to_dict()
    assert data == dataclasses.asdict(record) | {"kv_hit_rate": None}
    data["event_ns"].append(99)
    data["engine_ns"]["x"] = 1
    assert record.event_ns == [1, 2] and record.engine_ns == {"first_token_time_ns": 5}


def test_a_record_carries_the_kv_figures_with_their_hit_rate_and_its_conversation(tmp_path: Path) -> None:
    kv = {"kv_cache_reused_blocks": 3, "kv_cache_alloc_new_blocks": 1, "kv_cache_alloc_total_blocks": 4}
    record = RequestRecord(index=0, intended_ns=1, kv_cache=kv, turn=2, session="session7", adapter="chat")
    path = tmp_path / "r.jsonl"
    with JsonlSink(path, run_id="run") as sink:
        sink.write(record)
        sink.write(RequestRecord(index=1, intended_ns=2, kv_cache={"kv_cache_reused_blocks": 0}))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["kv_cache"] == kv and lines[0]["kv_hit_rate"] == 0.75
    assert (lines[0]["turn"], lines[0]["session"], lines[0]["adapter"]) == (2, "session7", "chat")
    assert lines[1]["kv_hit_rate"] is None and lines[1]["session"] is None  # no total: no rate
    assert next(read_records(path)) == record
