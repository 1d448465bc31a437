"""``serve --template-dir``: a repository in TensorRT-LLM's layout, written here, behaves like our own.

``tests/fakes/user_repository`` is an ensemble, preprocessing, postprocessing and BLS in the upstream layout
(upstream tensor names, our own code). It is served with the CPU engine standing in for its
``tensorrt_llm`` model, and the seed request — streamed and not, through the ensemble and the BLS — must
give what the bundled repository (the session's ``triton_server``) gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trtclient.server.launcher import EmbeddedTriton, ServerHandle

pytestmark = pytest.mark.integration

USER_REPOSITORY = Path(__file__).resolve().parents[1] / "fakes" / "user_repository"
SEED_REQUEST: dict[str, Any] = {"text_input": "What is machine learning?", "max_tokens": 20, "seed": 7}


@pytest.fixture(scope="module")
def user_server() -> Iterator[EmbeddedTriton]:
    with EmbeddedTriton(profile="instant", template_dir=USER_REPOSITORY) as server:
        yield server


def generate(url: str, model: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{url}/v2/models/{model}/generate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    text = response.json()["text_output"]
    return text if isinstance(text, str) else "".join(text)


def generate_stream(url: str, model: str, body: dict[str, Any]) -> list[str]:
    chunks: list[str] = []
    with httpx.stream(
        "POST", f"{url}/v2/models/{model}/generate_stream", json={**body, "stream": True}, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                assert "error" not in event, event
                text = event["text_output"]
                chunks.append(text if isinstance(text, str) else "".join(text))
    return chunks


def test_every_model_of_the_folder_is_served_with_the_cpu_engine_in_the_engine_slot(
    user_server: EmbeddedTriton,
) -> None:
    index = httpx.post(f"{user_server.url}/v2/repository/index", json={}).json()
    states = {model["name"]: model["state"] for model in index}
    assert states == dict.fromkeys(
        ("ensemble", "postprocessing", "preprocessing", "tensorrt_llm", "tensorrt_llm_bls"), "READY"
    )
    engine = httpx.get(f"{user_server.url}/v2/models/tensorrt_llm/config").json()
    assert engine["backend"] == "python"
    # the user's config declares min_length; the engine model keeps it so the ensemble loads
    assert "min_length" in {tensor["name"] for tensor in engine["input"]}


def test_the_users_own_python_models_run_unchanged(user_server: EmbeddedTriton) -> None:
    models = user_server.run_dir
    assert models is not None
    for name in ("preprocessing", "postprocessing", "tensorrt_llm_bls"):
        served = (models / "models" / name / "1" / "model.py").read_text()
        assert served == (USER_REPOSITORY / name / "1" / "model.py").read_text()


def test_seed_request_through_the_ensemble_matches_our_repository(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    theirs = generate(user_server.url, "ensemble", SEED_REQUEST)
    ours = generate(triton_server.url, "ensemble", SEED_REQUEST)
    assert theirs == ours
    assert theirs.startswith(SEED_REQUEST["text_input"])  # the prompt comes back unless excluded


def test_seed_request_streamed_through_the_ensemble_matches_our_repository(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    theirs = generate_stream(user_server.url, "ensemble", SEED_REQUEST)
    ours = generate_stream(triton_server.url, "ensemble", SEED_REQUEST)
    assert theirs == ours
    assert len(theirs) == SEED_REQUEST["max_tokens"]


def test_exclude_input_in_output_behaves_the_same(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    body = {**SEED_REQUEST, "exclude_input_in_output": True}
    theirs = generate(user_server.url, "ensemble", body)
    assert theirs == generate(triton_server.url, "ensemble", body)
    assert not theirs.startswith(SEED_REQUEST["text_input"])


def test_an_input_the_engine_ignores_is_accepted(user_server: EmbeddedTriton) -> None:
    assert generate(user_server.url, "ensemble", {**SEED_REQUEST, "min_length": 4})


def test_seed_request_through_the_bls_matches_the_ensemble_streamed_and_not(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    streamed = generate_stream(user_server.url, "tensorrt_llm_bls", SEED_REQUEST)
    assert streamed == generate_stream(triton_server.url, "ensemble", SEED_REQUEST)
    whole = generate(user_server.url, "tensorrt_llm_bls", SEED_REQUEST)
    assert whole == generate(triton_server.url, "ensemble", SEED_REQUEST)


@pytest.mark.parametrize(
    "extra",
    [{"stop_words": [" the"]}, {"bad_words": [" the"]}],
    ids=["stop-words", "bad-words"],
)
def test_stop_and_bad_words_behave_the_same(
    user_server: EmbeddedTriton, triton_server: ServerHandle, extra: dict[str, Any]
) -> None:
    """A word with its leading space tokenises the same way in both preprocessing models."""
    body = {**SEED_REQUEST, **extra}
    theirs = generate(user_server.url, "ensemble", body)
    assert theirs == generate(triton_server.url, "ensemble", body)
    assert theirs != generate(user_server.url, "ensemble", SEED_REQUEST)  # the words changed the text
    assert generate_stream(user_server.url, "ensemble", body) == generate_stream(
        triton_server.url, "ensemble", body
    )


def events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", f"{url}/v2/models/ensemble/generate_stream", json={**body, "stream": True}, timeout=60
    ) as response:
        assert response.status_code == 200
        return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def test_num_return_sequences_gives_the_same_sequences(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    body = {**SEED_REQUEST, "num_return_sequences": 2}

    def by_sequence(url: str) -> dict[int, str]:
        texts: dict[int, str] = {}
        for event in events(url, body):
            assert "error" not in event, event
            text = event["text_output"]
            texts[event["sequence_index"]] = texts.get(event["sequence_index"], "") + (
                text if isinstance(text, str) else "".join(text)
            )
        return texts

    theirs = by_sequence(user_server.url)
    assert sorted(theirs) == [0, 1]
    assert theirs == by_sequence(triton_server.url)


def test_perf_metrics_come_back_in_order_from_both(
    user_server: EmbeddedTriton, triton_server: ServerHandle
) -> None:
    names = ("arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns")
    for url in (user_server.url, triton_server.url):
        last = events(url, {**SEED_REQUEST, "return_perf_metrics": True})[-1]
        stamps = [int(last[name]) for name in names]
        assert stamps == sorted(stamps) and stamps[0] > 0, (url, stamps)
