"""Shared prefixes, conversations, trace reading, LoRA mixes and the per-group breakdown, offline."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from trtclient.loadtest.breakdown import breakdown, format_breakdown
from trtclient.loadtest.lora import LoraMix, parse_lora
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.sessions import Conversation, ShareGptSessions, SyntheticSessions
from trtclient.loadtest.shared_prefix import SharedPrefixPrompts, parse_shared_prefix
from trtclient.loadtest.trace import TracePrompts, read_trace
from trtclient.loadtest.workload import FixedPrompt, Length, TokenCounter, WorkloadError
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir


@pytest.fixture(scope="module")
def tokenizer() -> TokenCounter:
    return TokenCounter.from_dir(default_tokenizer_dir())


def test_shared_prefix_prompts_start_with_their_prefix_tokens_and_keep_exact_lengths(
    tokenizer: TokenCounter,
) -> None:
    workload = SharedPrefixPrompts(
        tokenizer, parse_shared_prefix("3:100"), Length(20, 5), Length(4), source_text=corpus_text()
    )
    prefixes = [tokenizer.encode(p) for p in workload.prefixes]
    assert all(len(p) == 100 for p in prefixes)
    for prompt in itertools.islice(workload.prompts(), 30):
        ids = tokenizer.encode(prompt.text)
        group = int(prompt.id.split("-")[0].removeprefix("prefix"))
        assert ids[:100] == prefixes[group]
        assert len(ids) == prompt.input_tokens


@pytest.mark.parametrize("text", ["3", "0:10", "3:x", "a:b:c", "2:-1"])
def test_a_bad_shared_prefix_names_the_flag(text: str) -> None:
    with pytest.raises(WorkloadError, match="--shared-prefix takes N:P"):
        parse_shared_prefix(text)


def test_a_conversation_grows_by_each_answer_and_message(tokenizer: TokenCounter) -> None:
    chat = Conversation("c", [("Hello there.", 5), ("And then?", 7)], tokenizer)
    first = chat.next_prompt()
    assert first is not None and (first.text, first.turn, first.max_tokens) == ("Hello there.", 1, 5)
    chat.answered(" Hi, how can I help?")
    second = chat.next_prompt()
    assert second is not None and second.turn == 2
    assert second.text == "Hello there. Hi, how can I help?\nAnd then?"
    assert second.input_tokens == tokenizer.count(second.text)
    assert chat.next_prompt() is None
    assert first.session == second.session == "c"


def test_a_dataset_held_again_gives_its_conversations_new_session_ids(
    tmp_path: Path, tokenizer: TokenCounter
) -> None:
    data = [{"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}]
    (tmp_path / "s.json").write_text(json.dumps(data))
    chats = itertools.islice(ShareGptSessions(tmp_path / "s.json", tokenizer).conversations(), 3)
    firsts = [chat.next_prompt() for chat in chats]
    assert [p.session for p in firsts if p is not None] == ["a", "a#2", "a#3"]


def test_synthetic_sessions_open_long_and_follow_up_short(tokenizer: TokenCounter) -> None:
    sessions = SyntheticSessions(
        tokenizer, 3, Length(50), Length(4), followup=Length(10), source_text=corpus_text()
    )
    chat = next(sessions.conversations())
    assert [tokenizer.count(text) for text, _ in chat.messages] == [50, 10, 10]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_mooncake_trace_becomes_prompts_of_its_lengths_at_its_times(
    tmp_path: Path, tokenizer: TokenCounter
) -> None:
    rows: list[dict[str, object]] = [
        {"timestamp": 100, "input_length": 700, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 100.5, "input_length": 600, "output_length": 6, "hash_ids": [1, 3]},
        {"timestamp": 350, "input_length": 40, "output_length": 7},
    ]
    trace = TracePrompts(_write(tmp_path / "t.jsonl", rows), tokenizer, speed=2, source_text=corpus_text())
    assert trace.shape().offsets_ns == (0, 250_000, 125_000_000)
    prompts = list(itertools.islice(trace.prompts(), 3))
    assert [tokenizer.count(p.text) for p in prompts] == [700, 600, 40]
    assert [p.max_tokens for p in prompts] == [5, 6, 7]
    first, second = (tokenizer.encode(p.text) for p in prompts[:2])
    assert first[:512] == second[:512]  # hash block 1 is the same text in both


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"timestamp": 1, "input_length": 0, "output_length": 1}],
            "t.jsonl:1: input_length and output_length",
        ),
        (
            [{"timestamp": "x", "input_length": 3, "output_length": 1}],
            "t.jsonl:1: 'timestamp' must be a number",
        ),
        ([{"timestamp": 1, "input_length": 3, "output_length": 1, "hash_ids": "ab"}], "t.jsonl:1: hash_ids"),
        ([], "holds no requests"),
    ],
)
def test_a_bad_trace_names_its_line(tmp_path: Path, rows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        read_trace(_write(tmp_path / "t.jsonl", rows))


def test_a_trace_longer_than_max_input_len_names_the_line(tmp_path: Path, tokenizer: TokenCounter) -> None:
    path = _write(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 2000, "output_length": 1}])
    with pytest.raises(
        WorkloadError, match=r"t.jsonl:1: input_length 2000 exceeds the model's max_input_len"
    ):
        TracePrompts(path, tokenizer, max_input_len=1024)


def test_a_lora_mix_follows_its_weights_and_sends_weights_once_per_named_adapter() -> None:
    adapters = parse_lora("chat:3, 17:1")
    assert [(a.label, a.sends_weights) for a in adapters] == [("chat", True), ("17", False)]
    mix = LoraMix(FixedPrompt("hi", 2), adapters, seed=1)
    prompts = list(itertools.islice(mix.prompts(), 400))
    chat = [p for p in prompts if p.adapter == "chat"]
    assert 0.68 < len(chat) / len(prompts) < 0.82
    with_weights = [p for p in prompts if any(k == "lora_weights" for k, _ in p.fields)]
    assert with_weights == [chat[0]]
    assert all(dict(p.fields)["lora_task_id"] == 17 for p in prompts if p.adapter == "17")


@pytest.mark.parametrize("text", ["chat:x", "chat:0", ":2", "a:1,a:2"])
def test_a_bad_lora_mix_names_the_flag(text: str) -> None:
    with pytest.raises(WorkloadError, match="--lora"):
        parse_lora(text)


def _record(index: int, ttft_ms: float, *, reused: int, turn: int | None = None) -> RequestRecord:
    r = RequestRecord(index=index, intended_ns=0, sent_ns=0, status="ok", turn=turn)
    r.event_ns = [int(ttft_ms * 1e6)]
    r.end_ns = r.event_ns[0] + 1
    r.kv_cache = {"kv_cache_reused_blocks": reused, "kv_cache_alloc_total_blocks": 10}
    return r


def test_the_breakdown_splits_ttft_by_cache_hit_and_by_turn() -> None:
    records = [
        _record(0, 300, reused=0, turn=1),
        _record(1, 50, reused=8, turn=2),
        _record(2, 70, reused=6, turn=2),
    ]
    split = breakdown(records)
    cache = {g.label: g for g in split.kv_cache}
    assert cache["hit"].ok == 2 and cache["hit"].kv_hit_rate == pytest.approx(0.7)
    assert cache["miss"].ttft is not None and cache["miss"].ttft.p50 == 300e6
    assert [g.label for g in split.turns] == ["turn 1", "turn 2"] and not split.adapters
    lines = format_breakdown(split)
    hit_line = next(line for line in lines if line.strip().startswith("hit"))
    assert hit_line.split() == ["hit", "2", "0", "70%", "60.0", "69.8", "60.0"]


def test_jsonl_lines_may_share_a_prefix(tmp_path: Path, tokenizer: TokenCounter) -> None:
    from trtclient.loadtest.workload import JsonlPrompts

    rows: list[dict[str, object]] = [
        {"prefix": "You answer briefly.", "text_input": "What is a GPU?"},
        {"prefix": "You answer briefly.", "text_input": "What is a CPU?", "max_tokens": 9},
    ]
    prompts = list(itertools.islice(JsonlPrompts(_write(tmp_path / "d.jsonl", rows), 5).prompts(), 2))
    assert [p.text for p in prompts] == [
        "You answer briefly.\nWhat is a GPU?",
        "You answer briefly.\nWhat is a CPU?",
    ]
    assert [p.max_tokens for p in prompts] == [5, 9]
    with pytest.raises(WorkloadError, match=r"d.jsonl:1: prefix must be a non-empty string"):
        JsonlPrompts(_write(tmp_path / "d.jsonl", [{"prefix": 3, "text_input": "x"}]), 5)
