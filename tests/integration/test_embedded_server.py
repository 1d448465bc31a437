"""The embedded Triton server, spoken to in raw HTTP (independent of trtclient's own client)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from tokenizers import Tokenizer

from trtclient.server.launcher import ServerHandle
from trtclient.server.tokenizer import default_tokenizer_dir

pytestmark = pytest.mark.integration

TUTORIAL = {
    "text_input": "What is machine learning?",
    "max_tokens": 20,
    "bad_words": "",
    "stop_words": "",
    "pad_id": 2,
    "end_id": 2,
}


def generate(server: ServerHandle, body: dict[str, Any], model: str = "ensemble") -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/generate", json=body, timeout=30)


def stream(server: ServerHandle, body: dict[str, Any], model: str = "ensemble") -> list[dict[str, Any]]:
    """POST generate_stream and return the decoded events (asserting the SSE framing)."""
    response = httpx.post(
        f"{server.url}/v2/models/{model}/generate_stream", json={**body, "stream": True}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = [c for c in response.text.split("\n\n") if c]
    assert all(c.startswith("data: ") for c in chunks)
    return [json.loads(c[len("data: ") :]) for c in chunks]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(default_tokenizer_dir() / "tokenizer.json"))


def test_tutorial_request_returns_text(triton_server: ServerHandle) -> None:
    response = generate(triton_server, TUTORIAL)
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "ensemble"
    assert body["text_output"].startswith("What is machine learning?")
    assert len(body["text_output"]) > len("What is machine learning?") + 20


def test_stream_sends_one_event_per_token(triton_server: ServerHandle, tokenizer: Tokenizer) -> None:
    events = stream(triton_server, {**TUTORIAL, "return_num_output_tokens": True})
    assert len(events) == TUTORIAL["max_tokens"]
    assert all(e["num_output_tokens"] == 1 for e in events)
    # The streamed deltas are the non-streamed answer without the echoed prompt.
    whole = generate(triton_server, {**TUTORIAL, "exclude_input_in_output": True}).json()["text_output"]
    assert "".join(e["text_output"] for e in events) == whole


def test_text_is_deterministic_per_seed(triton_server: ServerHandle) -> None:
    outputs = {
        seed: generate(triton_server, {**TUTORIAL, "seed": seed, "exclude_input_in_output": True}).json()[
            "text_output"
        ]
        for seed in (1, 2)
    }
    again = generate(triton_server, {**TUTORIAL, "seed": 1, "exclude_input_in_output": True}).json()
    assert again["text_output"] == outputs[1]
    assert outputs[1] != outputs[2]


async def test_tutorial_burst_of_twenty_all_succeed(triton_server: ServerHandle) -> None:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> list[str]:
            async with client.stream(
                "POST",
                f"{triton_server.url}/v2/models/ensemble/generate_stream",
                json={**TUTORIAL, "stream": True},
            ) as response:
                assert response.status_code == 200
                return [line async for line in response.aiter_lines() if line.startswith("data: ")]

        results = await asyncio.gather(*(one() for _ in range(20)))
    assert [len(r) for r in results] == [20] * 20
    assert not any('"error"' in line for r in results for line in r)


def test_stop_words_end_the_answer(triton_server: ServerHandle) -> None:
    free = generate(triton_server, {**TUTORIAL, "max_tokens": 40, "exclude_input_in_output": True}).json()
    words = free["text_output"].split()
    stop = next(w for w in words[3:] if w.isalpha() and len(w) > 3)
    # As upstream's preprocessing, a stop word is tokenised as given: inside the text a word follows a
    # space, and a byte-level BPE spells " word" differently from "word".
    stopped = generate(
        triton_server,
        {**TUTORIAL, "max_tokens": 40, "exclude_input_in_output": True, "stop_words": [" " + stop]},
    ).json()["text_output"]
    assert stopped.endswith(" " + stop)
    assert len(stopped) < len(free["text_output"])
    bare = generate(
        triton_server, {**TUTORIAL, "max_tokens": 40, "exclude_input_in_output": True, "stop_words": [stop]}
    ).json()["text_output"]
    assert bare == free["text_output"]


def test_bad_words_never_appear(triton_server: ServerHandle) -> None:
    free = generate(triton_server, {**TUTORIAL, "max_tokens": 40, "exclude_input_in_output": True}).json()
    banned = [w for w in free["text_output"].split() if w.isalpha() and len(w) > 3][:2]
    assert banned
    text = generate(
        triton_server,
        {
            **TUTORIAL,
            "max_tokens": 40,
            "exclude_input_in_output": True,
            "bad_words": [" " + w for w in banned],
        },
    ).json()["text_output"]
    assert not set(banned) & set(text.split())
    assert len(text.split()) > 5


def test_exclude_input_in_output(triton_server: ServerHandle) -> None:
    with_input = generate(triton_server, TUTORIAL).json()["text_output"]
    without = generate(triton_server, {**TUTORIAL, "exclude_input_in_output": True}).json()["text_output"]
    assert with_input == TUTORIAL["text_input"] + without


def test_min_tokens_holds_off_the_end_token(triton_server: ServerHandle, tokenizer: Tokenizer) -> None:
    free = generate(triton_server, {**TUTORIAL, "exclude_input_in_output": True}).json()["text_output"]
    third = tokenizer.encode(free).ids[2]
    ended = {"exclude_input_in_output": True, "end_id": third, "return_num_output_tokens": True}
    early = generate(triton_server, {**TUTORIAL, **ended}).json()
    assert early["num_output_tokens"] == 2
    held = generate(triton_server, {**TUTORIAL, **ended, "min_tokens": 10}).json()
    assert held["num_output_tokens"] >= 10


def test_num_return_sequences_stream(triton_server: ServerHandle) -> None:
    events = stream(triton_server, {**TUTORIAL, "max_tokens": 6, "num_return_sequences": 2})
    by_sequence: dict[int, str] = {}
    for event in events:
        by_sequence[event["sequence_index"]] = (
            by_sequence.get(event["sequence_index"], "") + event["text_output"]
        )
    assert sorted(by_sequence) == [0, 1]
    assert len(events) == 12
    assert by_sequence[0] != by_sequence[1]


def test_multiple_sequences_on_generate_is_trions_one_response_error(triton_server: ServerHandle) -> None:
    response = generate(triton_server, {**TUTORIAL, "num_return_sequences": 2})
    assert "exactly 1 response" in response.json()["error"]


def test_bls_matches_the_ensemble(triton_server: ServerHandle) -> None:
    body = {**TUTORIAL, "max_tokens": 8}
    ensemble = stream(triton_server, body)
    bls = stream(triton_server, body, model="tensorrt_llm_bls")
    assert [e["text_output"] for e in bls] == [e["text_output"] for e in ensemble]
    assert all(e["model_name"] == "tensorrt_llm_bls" for e in bls)


def test_perf_metrics_are_ordered_and_match_the_client(triton_server: ServerHandle) -> None:
    sent = time.time_ns()
    events = stream(triton_server, {**TUTORIAL, "max_tokens": 5, "return_perf_metrics": True})
    received = time.time_ns()
    first, last = events[0], events[-1]
    assert sent <= first["arrival_time_ns"] <= first["first_scheduled_time_ns"]
    assert first["first_scheduled_time_ns"] <= first["first_token_time_ns"] <= last["last_token_time_ns"]
    assert last["last_token_time_ns"] <= received
    assert [e["first_token_time_ns"] for e in events] == [first["first_token_time_ns"]] * 5
    stamps = [e["last_token_time_ns"] for e in events]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({**TUTORIAL, "max_tokens": 0}, 400, "max_tokens must be at least 1"),
        ({**TUTORIAL, "max_tokens": -3}, 400, "max_tokens must be at least 1"),
        ({**TUTORIAL, "max_tokens": "abc"}, 500, "Unable to parse"),
        ({**TUTORIAL, "max_tokens": 2047}, 400, "max_seq_len"),
        ({**TUTORIAL, "text_input": "word " * 1100}, 400, "max_input_len"),
        ({**TUTORIAL, "beam_width": 2}, 400, "beam_width 2 is not supported"),
        ({"text_input": "hi"}, 400, "missing required input"),
    ],
    ids=[
        "max_tokens-0",
        "max_tokens-negative",
        "wrong-type",
        "beyond-max_seq_len",
        "prompt-too-long",
        "beam",
        "missing",
    ],
)
def test_bad_input_gets_a_clear_error(
    triton_server: ServerHandle, body: dict[str, Any], status: int, fragment: str
) -> None:
    response = generate(triton_server, body)
    assert response.status_code == status
    assert fragment in response.json()["error"]
