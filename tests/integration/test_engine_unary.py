"""``tensorrt_llm`` deployed without decoupled mode: unary calls, as ``inflight_batcher_llm_client.py`` makes
them when it does not stream (Triton refuses unary calls to a decoupled model), stop request included.

Uses the embedded server with every model's ``decoupled`` off and the ``orin-int4`` timing profile, so the
request is still running when the stop request comes. Facts and sources: docs/upstream-contract.md.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from grpc_calls import engine_inputs, stop_inputs, tensors
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

from trtclient.prometheus import find_samples, parse_metrics
from trtclient.server.launcher import EmbeddedTriton, ServerHandle
from trtclient.server.tokenizer import default_tokenizer_dir

pytestmark = pytest.mark.integration

PROMPT = "What is machine learning?"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(default_tokenizer_dir() / "tokenizer.json"))


class NonDecoupledTriton(EmbeddedTriton):
    """The embedded server with every model's ``decoupled`` off."""

    def repository_values(self, engine_dir: Path, tokenizer_dir: Path) -> dict[str, str]:
        return {**super().repository_values(engine_dir, tokenizer_dir), "decoupled_mode": "false"}


@pytest.fixture(scope="module")
def unary_server() -> Iterator[ServerHandle]:
    with NonDecoupledTriton(profile="orin-int4") as server:
        yield server.handle


def test_unary_stop_request_ends_the_running_request(
    unary_server: ServerHandle, tokenizer: Tokenizer
) -> None:
    prompt = tokenizer.encode(PROMPT).ids
    client = grpcclient.InferenceServerClient(unary_server.grpc_url)
    answers: queue.Queue[Any] = queue.Queue()
    try:
        client.async_infer(
            "tensorrt_llm",
            tensors(engine_inputs(prompt, 400, streaming=False)),
            callback=lambda result, error: answers.put(error or result),
            request_id="unary-1",
        )
        # running once the engine counts it: the gauges are updated every iteration
        while not _active_requests(unary_server):
            assert answers.empty(), "the request ended before it could be stopped"
        stopped = client.infer("tensorrt_llm", tensors(stop_inputs()), request_id="unary-1")
        assert stopped.get_response().outputs == []
        result = answers.get(timeout=60)
        assert not isinstance(result, Exception), result
        generated = result.as_numpy("output_ids").shape[-1] - len(prompt)
        assert 0 <= generated < 400
    finally:
        client.close()


def test_unary_mode_refuses_what_needs_several_responses(unary_server: ServerHandle) -> None:
    inputs = engine_inputs([57, 74], 4, streaming=False)
    inputs["num_return_sequences"] = np.array([[2]], dtype=np.int32)
    with pytest.raises(InferenceServerException, match="needs decoupled mode"):
        grpcclient.InferenceServerClient(unary_server.grpc_url).infer("tensorrt_llm", tensors(inputs))


def _active_requests(server: ServerHandle) -> float:
    assert server.metrics_url
    samples = parse_metrics(httpx.get(server.metrics_url, timeout=10).text)
    (active,) = find_samples(samples, "nv_trt_llm_request_metrics", {"request_type": "active"})
    return active.value
