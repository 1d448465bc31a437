"""What a Locust process sends for each workload option (``locustfiles/trtlocust/_workloads.py``, no
locust import) and the one-line checks the master makes before any load."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trtlocust._workloads import ProcessWorkload, workload_problem

from trtclient.loadtest.lora import parse_lora
from trtclient.loadtest.shared_prefix import parse_shared_prefix


def options(**given: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {
        "prompt": "What is machine learning?",
        "max_tokens": 4,
        "input_tokens": 16,
        "tokenizer": "",
        "seed": 0,
        "shared_prefix": None,
        "turns": None,
        "think_time": None,
        "lora": None,
        "trace": "",
        "trace_speed": 1.0,
    }
    return argparse.Namespace(**(defaults | given))


def write_trace(path: Path, lengths: list[int]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"timestamp": 10 * i, "input_length": n, "output_length": 2}) + "\n"
            for i, n in enumerate(lengths)
        )
    )
    return path


def test_the_checks_name_what_does_not_fit(tmp_path: Path) -> None:
    def problem(open_loop: bool = False, max_input_len: int | None = None, **given: Any) -> str | None:
        return workload_problem(options(**given), open_loop=open_loop, max_input_len=max_input_len)

    assert problem() is None
    assert problem(turns=3, think_time=0.5) is None
    assert problem(think_time=0.5) == "--think-time applies to conversations: add --turns T"
    assert "run it with concurrency.py" in (problem(open_loop=True, turns=2) or "")
    assert "drop --shared-prefix" in (problem(turns=2, shared_prefix=parse_shared_prefix("2:64")) or "")
    assert "not to --turns conversations" in (problem(turns=2, lora=parse_lora("7:1")) or "")
    trace = write_trace(tmp_path / "t.jsonl", [10, 2000, 10])
    assert "drop --shared-prefix / --lora" in (problem(trace=str(trace), lora=parse_lora("7:1")) or "")
    assert problem(trace=str(trace)) is None  # the server's limit is not known
    assert problem(trace=str(trace), max_input_len=1024) == (
        f"{trace}:2: input_length 2000 exceeds the model's max_input_len 1024"
    )
    too_long = problem(shared_prefix=parse_shared_prefix("2:1000"), input_tokens=32, max_input_len=1024)
    assert too_long == (
        "--shared-prefix 2:1000 with --input-tokens 32 makes prompts of 1032 tokens, over the server's "
        "max_input_len 1024"
    )
    assert problem(shared_prefix=parse_shared_prefix("2:992"), input_tokens=32, max_input_len=1024) is None


def test_a_trace_prompt_is_taken_by_its_arrival_number(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", [12, 30, 7])
    work = ProcessWorkload(options(trace=str(trace)))
    picked = [work.next_prompt(n) for n in (2, 0, 1)]
    assert [p.id for p in picked] == ["trace-3", "trace-1", "trace-2"]
    assert [p.input_tokens for p in picked] == [7, 12, 30]
    assert [p.max_tokens for p in picked] == [2, 2, 2]
    # every worker builds the same prompt for a line
    assert ProcessWorkload(options(trace=str(trace)), stream=2).next_prompt(1).text == picked[2].text


def test_a_lora_mix_tags_each_prompt_with_its_adapter() -> None:
    work = ProcessWorkload(options(lora=parse_lora("7:3,9:1")))
    prompts = [work.next_prompt() for _ in range(40)]
    assert {p.adapter for p in prompts} == {"7", "9"}
    for p in prompts:
        assert dict(p.fields)["lora_task_id"] == int(p.adapter or 0)
        assert "lora_weights" not in dict(p.fields)  # ids alone: adapters the server holds
        assert p.text == "What is machine learning?"
    other = ProcessWorkload(options(lora=parse_lora("7:3,9:1")), stream=1)
    assert [p.adapter for p in prompts] != [other.next_prompt().adapter for _ in range(40)]


def test_conversations_grow_turn_by_turn_and_differ_between_workers() -> None:
    work = ProcessWorkload(options(turns=2, think_time=0.25, input_tokens=8))
    assert work.conversational and work.think_time_s == 0.25
    chat = work.next_conversation()
    first = chat.next_prompt()
    assert first is not None and first.turn == 1 and first.input_tokens == 8
    chat.answered(" an answer")
    second = chat.next_prompt()
    assert second is not None and second.turn == 2 and second.text.startswith(first.text + " an answer\n")
    assert chat.next_prompt() is None
    other = ProcessWorkload(options(turns=2, input_tokens=8), stream=1).next_conversation().next_prompt()
    assert other is not None and other.text != first.text
    assert not ProcessWorkload(options()).conversational
