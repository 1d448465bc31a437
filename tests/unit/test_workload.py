"""Workloads: exact synthetic lengths, file formats, reproducible order, readable errors."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from trtclient.loadtest.workload import (
    FixedPrompt,
    JsonlPrompts,
    Length,
    Prompt,
    ShareGptPrompts,
    SyntheticPrompts,
    TokenCounter,
    Workload,
    WorkloadError,
)

TEXT = (
    "A load test sends many requests and measures how the server answers. The first token shows how "
    "long the prompt took; the gaps between later tokens show how fast the model decodes. Streams that "
    "arrive together share the engine, so each step grows a little slower as the batch grows. "
) * 4


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    """A small byte-level BPE trained here on TEXT (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT], trainer=trainer)
    directory = tmp_path_factory.mktemp("tok")
    tok.save(str(directory / "tokenizer.json"))
    return TokenCounter.from_dir(directory)


def first(workload: Workload, n: int) -> list[Prompt]:
    return list(itertools.islice(workload.prompts(), n))


@pytest.mark.parametrize("source", [TEXT, None], ids=["source-text", "vocabulary"])
def test_synthetic_prompts_have_exact_input_lengths(tokenizer: TokenCounter, source: str | None) -> None:
    workload = SyntheticPrompts(tokenizer, Length(40, 12), Length(16, 4), seed=5, source_text=source)
    prompts = first(workload, 30)
    assert all(tokenizer.count(p.text) == p.input_tokens for p in prompts)
    assert len({p.input_tokens for p in prompts}) > 5  # the stddev spreads lengths
    assert all(p.max_tokens >= 1 for p in prompts)


def test_synthetic_prompts_are_reproducible_by_seed(tokenizer: TokenCounter) -> None:
    def make(seed: int) -> list[Prompt]:
        return first(
            SyntheticPrompts(tokenizer, Length(20, 5), Length(8, 2), seed=seed, source_text=TEXT), 10
        )

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_length_draws_respect_minimum_and_reject_bad_parameters() -> None:
    rng = random.Random(0)
    draws = [Length(2, 10.0).draw(rng) for _ in range(200)]
    assert min(draws) == 1 and max(draws) > 2
    assert Length(5).draw(rng) == 5
    assert str(Length(5, 1.5)) == "5±1.5"
    with pytest.raises(WorkloadError):
        Length(0)
    with pytest.raises(WorkloadError):
        Length(5, -1)


def test_fixed_prompt_repeats_and_counts_with_a_tokenizer(tokenizer: TokenCounter) -> None:
    prompts = first(FixedPrompt("What is machine learning?", 20, tokenizer), 3)
    assert len(set(prompts)) == 1
    assert prompts[0].max_tokens == 20
    assert prompts[0].input_tokens == tokenizer.count("What is machine learning?")
    assert first(FixedPrompt("hi", 5), 1)[0].input_tokens is None
    with pytest.raises(WorkloadError):
        FixedPrompt("", 5)


def test_jsonl_prompts_accept_the_usual_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        {"text_input": "a", "max_tokens": 3},
        {"prompt": "b"},
        {"text": "c", "output_tokens": 9, "id": "x"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    got = first(JsonlPrompts(path, default_max_tokens=7), 4)
    assert [(p.id, p.text, p.max_tokens) for p in got] == [
        ("1", "a", 3),
        ("2", "b", 7),
        ("x", "c", 9),
        ("1", "a", 3),
    ]


def test_jsonl_shuffle_is_seeded(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"p{i}"}) for i in range(20)))

    def order(seed: int) -> list[str]:
        return [p.text for p in first(JsonlPrompts(path, 5, seed=seed, shuffle=True), 20)]

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert sorted(order(3)) == sorted(f"p{i}" for i in range(20))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a"}\nnot json\n', r"p.jsonl:2: not JSON"),
        ('{"question": "a"}\n', r"p.jsonl:1: needs a non-empty string"),
        ('{"prompt": "a", "max_tokens": 0}\n', r"p.jsonl:1: max_tokens must be a positive integer"),
        ("\n", "holds no prompts"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(WorkloadError, match=message):
        JsonlPrompts(path, 5)


def test_missing_file_is_a_workload_error(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no such file"):
        JsonlPrompts(tmp_path / "nope.jsonl", 5)
    with pytest.raises(WorkloadError, match="no tokenizer.json"):
        TokenCounter.from_dir(tmp_path)


ANSWER = "Because shorter wavelengths scatter more."


def sharegpt(tmp_path: Path) -> Path:
    def turn(who: str, text: str) -> dict[str, str]:
        return {"from": who, "value": text}

    data = [
        {"id": "c1", "conversations": [turn("human", "Why is the sky blue?"), turn("gpt", ANSWER)]},
        {"id": "c2", "conversations": [turn("gpt", "hello")]},  # no human turn: skipped
        {
            "id": "c3",
            "conversations": [turn("system", "be brief"), turn("human", "Name a prime."), turn("gpt", "7")],
        },
        "not a conversation",
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data))
    return path


def test_sharegpt_takes_the_first_exchange_and_the_reply_length(
    tmp_path: Path, tokenizer: TokenCounter
) -> None:
    workload = ShareGptPrompts(sharegpt(tmp_path), 50, tokenizer=tokenizer, seed=0)
    got = {p.id: p for p in first(workload, 2)}
    assert set(got) == {"c1", "c3"}
    assert got["c1"].text == "Why is the sky blue?"
    assert got["c1"].max_tokens == tokenizer.count(ANSWER)
    assert got["c3"].input_tokens == tokenizer.count("Name a prime.")


def test_sharegpt_without_tokenizer_uses_the_default_length(tmp_path: Path) -> None:
    prompts = first(ShareGptPrompts(sharegpt(tmp_path), 50, limit=1), 3)
    assert {p.max_tokens for p in prompts} == {50}
    assert len({p.id for p in prompts}) == 1


def test_sharegpt_rejects_files_without_conversations(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"conversations": []}')
    with pytest.raises(WorkloadError, match="expected a JSON list"):
        ShareGptPrompts(path, 5)
    path.write_text("[]")
    with pytest.raises(WorkloadError, match="no conversation"):
        ShareGptPrompts(path, 5)


def test_sharegpt_notes_say_what_was_skipped_and_why_and_which_lengths(
    tmp_path: Path, tokenizer: TokenCounter
) -> None:
    def turn(who: str, text: str) -> dict[str, str]:
        return {"from": who, "value": text}

    long_question = " ".join(["scatter"] * 40)
    data = [
        {"id": "ok", "conversations": [turn("human", "Why is the sky blue?"), turn("gpt", ANSWER)]},
        {"id": "no-human", "conversations": [turn("gpt", "hello")]},
        {"id": "no-human-2", "conversations": [turn("system", "x"), turn("gpt", "y")]},
        {"id": "empty", "conversations": [turn("human", "  "), turn("gpt", "y")]},
        {"id": "long", "conversations": [turn("human", long_question), turn("gpt", ANSWER)]},
        "not a conversation",
    ]
    path = tmp_path / "share.json"
    path.write_text(json.dumps(data))
    limit = tokenizer.count("Why is the sky blue?")
    assert tokenizer.count(long_question) > limit
    workload = ShareGptPrompts(path, 50, tokenizer=tokenizer, max_input_len=limit, max_output_tokens=3)
    assert {p.id for p in first(workload, 3)} == {"ok"}
    assert workload.notes == [
        "share.json: 1 conversations used, 5 skipped: 2 without a human turn followed by a reply, "
        f"1 not a conversation, 1 prompt longer than the model's max_input_len ({limit} tokens), "
        "1 with an empty prompt or reply",
        "share.json: output lengths are each reply's length by the tokenizer, capped at 3 tokens "
        "(1 replies capped)",
    ]
    bare = ShareGptPrompts(path, 50)  # no tokenizer: nothing is too long, lengths are max_tokens
    assert bare.notes[0].startswith("share.json: 2 conversations used, 4 skipped: 2 without a human turn")
    assert bare.notes[1] == (
        "share.json: output lengths are max_tokens 50 for every request (no tokenizer to count the replies)"
    )


def test_jsonl_notes_say_blank_lines_skipped_and_which_lengths(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a", "max_tokens": 3}\n\n{"prompt": "b"}\n   \n')
    assert JsonlPrompts(path, 7).notes == [
        "p.jsonl: 2 prompts used, 2 blank lines skipped",
        "p.jsonl: output lengths are the line's max_tokens for 1 lines, max_tokens 7 for 1",
    ]
    path.write_text('{"prompt": "a", "max_tokens": 3}\n')
    assert JsonlPrompts(path, 7).notes == ["p.jsonl: output lengths are each line's max_tokens"]
    path.write_text('{"prompt": "a"}\n')
    assert JsonlPrompts(path, 7).notes == [
        "p.jsonl: output lengths are max_tokens 7 for every request (no line sets max_tokens)"
    ]
