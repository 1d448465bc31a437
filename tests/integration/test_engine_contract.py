"""The embedded server's models against TensorRT-LLM's contract, over gRPC as NVIDIA's example clients call.

Each call carries the tensors, dtypes and shapes that ``end_to_end_grpc_client.py`` (ensemble, BLS) or
``inflight_batcher_llm_client.py`` (``tensorrt_llm``) send; the facts asserted are listed with their
sources in docs/upstream-contract.md. The stop and metrics tests use a server with the ``orin-int4``
timing profile, so that a request is still running when the test acts on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from grpc_calls import Answer, Stream, call, end_to_end_inputs, engine_inputs, stop_inputs
from tokenizers import Tokenizer

from trtclient import AsyncTritonClient
from trtclient.prometheus import find_samples, parse_metrics
from trtclient.server.launcher import EmbeddedTriton, ServerHandle
from trtclient.server.tokenizer import default_tokenizer_dir

pytestmark = pytest.mark.integration

PROMPT = "What is machine learning?"
TEXT_MODELS = ["ensemble", "tensorrt_llm_bls"]
PERF_OUTPUTS = (
    "kv_cache_alloc_new_blocks",
    "kv_cache_reused_blocks",
    "kv_cache_alloc_total_blocks",
    "arrival_time_ns",
    "first_scheduled_time_ns",
    "first_token_time_ns",
    "last_token_time_ns",
    "acceptance_rate",
    "total_accepted_draft_tokens",
    "total_draft_tokens",
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(default_tokenizer_dir() / "tokenizer.json"))


@pytest.fixture(scope="module")
def paced_server() -> Iterator[ServerHandle]:
    with EmbeddedTriton(profile="orin-int4") as server:
        yield server.handle


def texts(answer: Answer) -> list[str]:
    out = []
    for array in answer.arrays("text_output"):
        assert array.shape == (1,), f"text_output should be one string per sequence, got {array.shape}"
        out.append(array[0].decode("utf-8"))
    return out


def whole_text(server: ServerHandle, model: str, max_tokens: int = 24, **extra: object) -> str:
    answer = call(server.grpc_url, model, end_to_end_inputs(PROMPT, max_tokens, stream=False, **extra))
    (text,) = texts(answer)
    return text


def sequence_texts(answer: Answer) -> dict[int, str]:
    """Joined text per sequence_index (0 when the tensor is absent, as the example client reads it)."""
    joined: dict[int, str] = {}
    for result in answer.results:
        index = result.as_numpy("sequence_index")
        key = 0 if index is None else int(index[0][0])
        joined[key] = joined.get(key, "") + result.as_numpy("text_output")[0].decode("utf-8")
    return joined


# -- the seed request through ensemble and BLS, streamed and not -------------------------------------------
@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_text_output_is_one_string_per_sequence(
    triton_server: ServerHandle, model: str, stream: bool
) -> None:
    answer = call(triton_server.grpc_url, model, end_to_end_inputs(PROMPT, 12, stream=stream))
    got = "".join(texts(answer))
    if stream:
        assert len(answer.results) == 12
        assert got == whole_text(triton_server, model, 12, exclude_input_in_output=True)
    else:
        assert len(answer.results) == 1
        assert got.startswith(PROMPT) and len(got) > len(PROMPT) + 12


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_stop_words_end_the_text(triton_server: ServerHandle, model: str, stream: bool) -> None:
    free = whole_text(triton_server, model, 40, exclude_input_in_output=True)
    stop = " " + next(w for w in free.split()[3:] if w.isalpha() and len(w) > 3)
    inputs = end_to_end_inputs(PROMPT, 40, stream=stream, exclude_input_in_output=True, stop_words=[stop])
    text = "".join(texts(call(triton_server.grpc_url, model, inputs)))
    assert text.endswith(stop)
    assert free.startswith(text) and len(text) < len(free)


def test_bls_also_finds_stop_words_in_the_text(triton_server: ServerHandle) -> None:
    """A word spelled as no token of the text still stops the BLS's whole answer, not the ensemble's."""
    free = whole_text(triton_server, "ensemble", 40, exclude_input_in_output=True)
    word = next(w for w in free.split()[3:] if w.isalpha() and len(w) > 3)
    inputs = end_to_end_inputs(PROMPT, 40, stream=False, exclude_input_in_output=True, stop_words=[word])
    assert texts(call(triton_server.grpc_url, "ensemble", inputs)) == [free]
    (cut,) = texts(call(triton_server.grpc_url, "tensorrt_llm_bls", inputs))
    assert cut == free[: free.find(word) + len(word)]


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_bad_words_never_appear(triton_server: ServerHandle, model: str, stream: bool) -> None:
    free = whole_text(triton_server, model, 40, exclude_input_in_output=True)
    banned = [w for w in free.split() if w.isalpha() and len(w) > 3][:2]
    assert banned
    inputs = end_to_end_inputs(
        PROMPT, 40, stream=stream, exclude_input_in_output=True, bad_words=[" " + w for w in banned]
    )
    text = "".join(texts(call(triton_server.grpc_url, model, inputs)))
    assert not set(banned) & set(text.split())
    assert len(text.split()) > 5


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_exclude_input_in_output(triton_server: ServerHandle, model: str) -> None:
    with_prompt = whole_text(triton_server, model, 16)
    without = whole_text(triton_server, model, 16, exclude_input_in_output=True)
    assert with_prompt == PROMPT + without


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_perf_metrics_come_as_one_by_one_tensors(
    triton_server: ServerHandle, model: str, stream: bool
) -> None:
    inputs = end_to_end_inputs(PROMPT, 6, stream=stream, return_perf_metrics=True)
    answer = call(triton_server.grpc_url, model, inputs)
    last = answer.results[-1]
    for name in PERF_OUTPUTS:
        value = last.as_numpy(name)
        assert value is not None and value.shape == (1, 1), name
    stamps = [int(last.as_numpy(n)[0][0]) for n in PERF_OUTPUTS[3:7]]
    assert 0 < stamps[0] <= stamps[1] <= stamps[2] <= stamps[3]
    assert int(last.as_numpy("kv_cache_alloc_total_blocks")[0][0]) >= 1


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_num_return_sequences(triton_server: ServerHandle, model: str, stream: bool) -> None:
    inputs = end_to_end_inputs(PROMPT, 8, stream=stream, num_return_sequences=2, exclude_input_in_output=True)
    answer = call(triton_server.grpc_url, model, inputs)
    by_sequence = sequence_texts(answer)
    assert sorted(by_sequence) == [0, 1]
    assert by_sequence[0] != by_sequence[1]
    assert len(answer.results) == (16 if stream else 2)


def test_engine_takes_the_older_names_of_seed_and_min_tokens(
    triton_server: ServerHandle, tokenizer: Tokenizer
) -> None:
    """What the ensembles and BLS of TRT-LLM 0.12 to 0.19 send: ``random_seed`` and ``min_length``."""
    prompt = tokenizer.encode(PROMPT).ids

    def ids(**values: int) -> list[int]:
        inputs = engine_inputs(prompt, 12, streaming=False, exclude_input_in_output=True)
        inputs["runtime_top_k"] = np.array([[0]], dtype=np.int32)  # sample, so the seed matters
        for name, value in values.items():
            dtype = np.uint64 if "seed" in name else np.int32
            inputs[name] = np.array([[value]], dtype=dtype)
        (result,) = call(triton_server.grpc_url, "tensorrt_llm", inputs).results
        return [int(t) for t in result.as_numpy("output_ids").reshape(-1)]

    assert ids(random_seed=7) == ids(seed=7)
    assert ids(random_seed=7) != ids(random_seed=8)
    free = ids(seed=3)
    ended = {"seed": 3, "end_id": free[2]}  # ends after two tokens...
    assert len(ids(**ended)) == 2
    assert len(ids(**ended, min_length=8)) >= 8  # ...unless min_length holds the end off
    assert ids(**ended, min_length=8) == ids(**ended, min_tokens=8)


def test_batched_text_request_answers_every_row(triton_server: ServerHandle) -> None:
    prompts = [PROMPT, "Tell me a story"]
    rows = [end_to_end_inputs(p, 8, stream=False) for p in prompts]
    batched = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    answer = call(triton_server.grpc_url, "ensemble", batched)
    by_row = {
        int(r.as_numpy("batch_index")[0][0]): r.as_numpy("text_output")[0].decode() for r in answer.results
    }
    assert sorted(by_row) == [0, 1]
    for index, prompt in enumerate(prompts):
        alone = call(triton_server.grpc_url, "ensemble", end_to_end_inputs(prompt, 8, stream=False))
        assert by_row[index] == texts(alone)[0]
        assert by_row[index].startswith(prompt)


# -- tensorrt_llm straight, as inflight_batcher_llm_client.py calls it ------------------------------------
def test_batched_engine_request_answers_every_row(triton_server: ServerHandle, tokenizer: Tokenizer) -> None:
    prompts = [tokenizer.encode(PROMPT).ids, tokenizer.encode("Tell me a story about rivers").ids]
    width = max(len(p) for p in prompts)
    inputs = engine_inputs(prompts[0], 5, streaming=False)
    inputs["input_ids"] = np.array([p + [2] * (width - len(p)) for p in prompts], dtype=np.int32)
    inputs["input_lengths"] = np.array([[len(p)] for p in prompts], dtype=np.int32)
    inputs["request_output_len"] = np.array([[5], [7]], dtype=np.int32)
    for name in (
        "beam_width",
        "temperature",
        "streaming",
        "end_id",
        "pad_id",
        "runtime_top_k",
        "runtime_top_p",
    ):
        inputs[name] = np.concatenate([inputs[name], inputs[name]])
    answer = call(triton_server.grpc_url, "tensorrt_llm", inputs)
    rows = {int(r.as_numpy("batch_index")[0][0]): r.as_numpy("output_ids") for r in answer.results}
    assert sorted(rows) == [0, 1]
    for index, (prompt, new) in enumerate(zip(prompts, (5, 7), strict=True)):
        ids = rows[index][0][0].tolist()
        assert ids[: len(prompt)] == prompt
        assert len(ids) == len(prompt) + new
    alone = call(triton_server.grpc_url, "tensorrt_llm", engine_inputs(prompts[1], 7, streaming=False))
    assert alone.results[0].as_numpy("batch_index") is None  # only a batch of more than one row has it
    assert alone.results[0].as_numpy("output_ids")[0][0].tolist() == rows[1][0][0].tolist()


def test_output_shapes_follow_upstream(triton_server: ServerHandle, tokenizer: Tokenizer) -> None:
    prompt = tokenizer.encode(PROMPT).ids
    vocab = tokenizer.get_vocab_size()
    flags = {"return_log_probs": True, "return_context_logits": True, "return_generation_logits": True}
    (whole,) = call(
        triton_server.grpc_url, "tensorrt_llm", engine_inputs(prompt, 6, streaming=False, **flags)
    ).results
    assert whole.as_numpy("output_ids").shape == (1, 1, len(prompt) + 6)
    log_probs = whole.as_numpy("output_log_probs")
    assert log_probs.shape == (1, 1, 6)  # generated tokens only
    assert np.all(log_probs <= 0) and np.any(log_probs < 0)
    assert whole.as_numpy("cum_log_probs").shape == (1, 1)
    assert whole.as_numpy("cum_log_probs")[0][0] == pytest.approx(float(log_probs.sum()), rel=1e-5)
    assert whole.as_numpy("context_logits").shape == (1, len(prompt), vocab)
    assert whole.as_numpy("generation_logits").shape == (1, 1, 6, vocab)
    streamed = call(triton_server.grpc_url, "tensorrt_llm", engine_inputs(prompt, 6, streaming=True, **flags))
    assert len(streamed.results) == 6
    for result in streamed.results:
        assert result.as_numpy("output_log_probs").shape == (1, 1, 1)
        assert result.as_numpy("generation_logits").shape == (1, 1, 1, vocab)
    streamed_log_probs = [float(r.as_numpy("output_log_probs")[0][0][0]) for r in streamed.results]
    assert streamed_log_probs == pytest.approx(log_probs.reshape(-1).tolist(), rel=1e-5)


def test_num_output_tokens_counts_what_output_ids_carry(
    triton_server: ServerHandle, tokenizer: Tokenizer
) -> None:
    prompt = tokenizer.encode(PROMPT).ids
    counts = {"return_num_output_tokens": True, "return_num_input_tokens": True}

    def counted(streaming: bool, exclude: bool) -> list[int]:
        inputs = engine_inputs(prompt, 5, streaming=streaming, exclude_input_in_output=exclude, **counts)
        answer = call(triton_server.grpc_url, "tensorrt_llm", inputs)
        assert all(int(r.as_numpy("num_input_tokens")[0][0]) == len(prompt) for r in answer.results)
        return [int(r.as_numpy("num_output_tokens")[0][0]) for r in answer.results]

    assert counted(streaming=False, exclude=False) == [len(prompt) + 5]
    assert counted(streaming=False, exclude=True) == [5]
    assert counted(streaming=True, exclude=False) == [1] * 5


def test_stop_request_ends_the_running_request(paced_server: ServerHandle, tokenizer: Tokenizer) -> None:
    prompt = tokenizer.encode(PROMPT).ids
    stream = Stream(paced_server.grpc_url)
    try:
        stream.send("tensorrt_llm", engine_inputs(prompt, 400, streaming=True), request_id="run-1")
        first, final = stream.next()
        assert not final and first.as_numpy("output_ids") is not None
        stream.send("tensorrt_llm", stop_inputs(), request_id="run-1")
        answer = stream.collect(finals=2)
    finally:
        stream.close()
    assert answer.empty >= 1  # the stop request's own answer carries no tensors
    generated = 1 + sum(r.as_numpy("output_ids").shape[-1] for r in answer.results)
    assert generated < 400


def test_stop_request_without_an_id_is_refused(paced_server: ServerHandle) -> None:
    with pytest.raises(Exception, match="request ID is not provided"):
        call(paced_server.grpc_url, "tensorrt_llm", stop_inputs())


def test_metrics_carry_the_trt_llm_families(paced_server: ServerHandle, tokenizer: Tokenizer) -> None:
    assert paced_server.metrics_url

    def scrape() -> dict[str, float]:
        samples = parse_metrics(httpx.get(paced_server.metrics_url, timeout=10).text)
        values = {}
        for family, label, value in (
            ("nv_trt_llm_request_metrics", "request_type", "active"),
            ("nv_trt_llm_request_metrics", "request_type", "scheduled"),
            ("nv_trt_llm_request_metrics", "request_type", "max"),
            ("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "used"),
            ("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "tokens_per"),
            (
                "nv_trt_llm_inflight_batcher_metrics",
                "inflight_batcher_specific_metric",
                "generation_requests",
            ),
            ("nv_trt_llm_general_metrics", "general_type", "iteration_counter"),
        ):
            (sample,) = find_samples(samples, family, {label: value, "model": "tensorrt_llm", "version": "1"})
            values[f"{family}:{value}"] = sample.value
        return values

    before = scrape()
    prompt = tokenizer.encode(PROMPT).ids
    stream = Stream(paced_server.grpc_url)
    try:
        stream.send("tensorrt_llm", engine_inputs(prompt, 60, streaming=True), request_id="metered")
        stream.next()
        stream.next()  # two tokens out: the request is in its generation phase
        during = scrape()
        stream.send("tensorrt_llm", stop_inputs(), request_id="metered")
        stream.collect(finals=2)
    finally:
        stream.close()
    after = scrape()
    assert during["nv_trt_llm_request_metrics:active"] == 1
    assert during["nv_trt_llm_request_metrics:scheduled"] == 1
    assert during["nv_trt_llm_kv_cache_block_metrics:used"] >= 1
    assert during["nv_trt_llm_inflight_batcher_metrics:generation_requests"] == 1
    assert during["nv_trt_llm_request_metrics:max"] == 64
    assert during["nv_trt_llm_kv_cache_block_metrics:tokens_per"] == 64
    assert (
        before["nv_trt_llm_general_metrics:iteration_counter"]
        < during["nv_trt_llm_general_metrics:iteration_counter"]
        < after["nv_trt_llm_general_metrics:iteration_counter"]
    )
    assert after["nv_trt_llm_request_metrics:active"] == 0
    assert after["nv_trt_llm_kv_cache_block_metrics:used"] == 0


# -- the BLS over HTTP, and trtclient bench against it ------------------------------------------------------
def test_bls_forwards_optional_outputs_over_http(triton_server: ServerHandle) -> None:
    body = {
        "text_input": PROMPT,
        "max_tokens": 6,
        "return_log_probs": True,
        "return_perf_metrics": True,
        "return_num_input_tokens": True,
        "return_num_output_tokens": True,
        "exclude_input_in_output": True,
    }
    response = httpx.post(f"{triton_server.url}/v2/models/tensorrt_llm_bls/generate", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["num_output_tokens"] == 6 and answer["num_input_tokens"] > 0
    assert len(answer["output_log_probs"]) == 6
    assert answer["first_token_time_ns"] <= answer["last_token_time_ns"]
    events = httpx.post(
        f"{triton_server.url}/v2/models/tensorrt_llm_bls/generate_stream",
        json={**body, "stream": True, "num_return_sequences": 2},
        timeout=30,
    )
    assert events.status_code == 200, events.text
    chunks = [json.loads(c[len("data: ") :]) for c in events.text.split("\n\n") if c]
    assert {c["sequence_index"] for c in chunks} == {0, 1}
    assert all("error" not in c for c in chunks)


def test_bench_on_the_bls_passes_and_reports_the_gauges(paced_server: ServerHandle, tmp_path: Path) -> None:
    """The BLS serves one request at a time: the paced burst takes seconds, scraped meanwhile."""
    report = tmp_path / "run.json"
    args = ["--url", paced_server.url, "--model", "tensorrt_llm_bls", "--burst", "20", "--max-tokens", "8"]
    args += ["--no-progress", "--json", str(report)]
    if paced_server.metrics_url:
        args += ["--metrics-url", paced_server.metrics_url]
    done = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(report.read_text())
    assert (run["requests"]["ok"], run["requests"]["failed"]) == (20, 0)
    # the counts came from the server (return_num_output_tokens through the BLS)
    assert run["tokens"]["output_source"] == {"server": 20}
    gauges = run["server_metrics"]["trt_llm"]
    assert gauges["tensorrt_llm:nv_trt_llm_request_metrics{request_type=max}"]["max"] == 64
    assert gauges["tensorrt_llm:nv_trt_llm_request_metrics{request_type=active}"]["max"] >= 1


async def test_readme_metrics_example_returns_the_engine_values(paced_server: ServerHandle) -> None:
    """The README's ``client.metrics()`` example, on the embedded server."""
    async with AsyncTritonClient(paced_server.url, metrics_url=paced_server.metrics_url) as client:
        samples = await client.metrics()
    (active,) = find_samples(samples, "nv_trt_llm_request_metrics", {"request_type": "active"})
    (used,) = find_samples(samples, "nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "used"})
    (most,) = find_samples(samples, "nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "max"})
    assert (active.value, used.value) == (0, 0)  # idle: other tests on this server have finished
    assert most.value > 0 and active.labels["model"] == "tensorrt_llm"
