"""gRPC calls shaped as NVIDIA's example clients shape them (``inflight_batcher_llm/client``).

The tensors, dtypes and shapes follow what ``end_to_end_grpc_client.py`` and
``inflight_batcher_llm_client.py`` send (docs/upstream-contract.md lists them); the code is our own.
Every call goes over a gRPC stream, as those clients do for decoupled models, and returns the responses
that carry outputs, up to the final one.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


@dataclass
class Answer:
    """What one streamed call got back."""

    results: list[Any] = field(default_factory=list)
    """Responses with output tensors, in arrival order."""
    empty: int = 0
    """Responses without output tensors (a stop request's answer, a flags-only final response)."""

    def arrays(self, name: str) -> list[np.ndarray]:
        return [r.as_numpy(name) for r in self.results if r.as_numpy(name) is not None]


def tensors(inputs: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    out = []
    for name, array in inputs.items():
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        out.append(tensor)
    return out


def end_to_end_inputs(prompt: str, max_tokens: int, *, stream: bool, **extra: Any) -> dict[str, np.ndarray]:
    """The ensemble / BLS inputs of ``end_to_end_grpc_client.prepare_inputs``: every value ``[1, 1]``."""
    inputs = {
        "text_input": np.array([[prompt]], dtype=object),
        "max_tokens": np.array([[max_tokens]], dtype=np.int32),
        "stream": np.array([[stream]], dtype=bool),
        "beam_width": np.array([[1]], dtype=np.int32),
        "temperature": np.array([[1.0]], dtype=np.float32),
        "num_return_sequences": np.array([[1]], dtype=np.int32),
    }
    for name, value in extra.items():
        if name in ("stop_words", "bad_words"):
            inputs[name] = np.array([value], dtype=object)
        elif isinstance(value, bool):
            inputs[name] = np.array([[value]], dtype=bool)
        elif name in ("seed", "random_seed"):
            inputs[name] = np.array([[value]], dtype=np.uint64)
        else:
            inputs[name] = np.array([[value]], dtype=np.int32)
    return inputs


def engine_inputs(
    prompt_ids: list[int], output_len: int, *, streaming: bool, **flags: bool
) -> dict[str, Any]:
    """The ``tensorrt_llm`` inputs of ``inflight_batcher_llm_client.prepare_inputs`` for one prompt."""
    inputs = {
        "input_ids": np.array([prompt_ids], dtype=np.int32),
        "input_lengths": np.array([[len(prompt_ids)]], dtype=np.int32),
        "request_output_len": np.array([[output_len]], dtype=np.int32),
        "beam_width": np.array([[1]], dtype=np.int32),
        "temperature": np.array([[1.0]], dtype=np.float32),
        "streaming": np.array([[streaming]], dtype=bool),
        "end_id": np.array([[2]], dtype=np.int32),
        "pad_id": np.array([[2]], dtype=np.int32),
        "runtime_top_k": np.array([[1]], dtype=np.int32),
        "runtime_top_p": np.array([[0.0]], dtype=np.float32),
    }
    for name, value in flags.items():
        inputs[name] = np.array([[value]], dtype=bool)
    return inputs


def stop_inputs() -> dict[str, np.ndarray]:
    """``prepare_stop_signals``: an empty prompt, no output, ``stop`` set."""
    return {
        "input_ids": np.zeros((1, 1), dtype=np.int32),
        "input_lengths": np.zeros((1, 1), dtype=np.int32),
        "request_output_len": np.zeros((1, 1), dtype=np.int32),
        "stop": np.ones((1, 1), dtype=bool),
    }


class Stream:
    """One gRPC stream: ``send`` issues a request on it, ``collect`` reads to final responses."""

    def __init__(self, url: str) -> None:
        self.client = grpcclient.InferenceServerClient(url)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.queue.put(error or result))

    def send(self, model: str, inputs: dict[str, np.ndarray], request_id: str = "") -> None:
        self.client.async_stream_infer(
            model, tensors(inputs), request_id=request_id, enable_empty_final_response=True
        )

    def next(self, timeout: float = 60) -> tuple[Any, bool]:
        """The next response on the stream and whether it is its request's final one."""
        item = self.queue.get(timeout=timeout)
        if isinstance(item, InferenceServerException):
            raise item
        final = item.get_response().parameters["triton_final_response"].bool_param
        return item, final

    def collect(self, finals: int = 1, timeout: float = 60) -> Answer:
        answer = Answer()
        while finals:
            result, final = self.next(timeout)
            if result.get_response().outputs:
                answer.results.append(result)
            else:
                answer.empty += 1
            finals -= final
        return answer

    def close(self) -> None:
        self.client.stop_stream()
        self.client.close()


def call(url: str, model: str, inputs: dict[str, np.ndarray], request_id: str = "") -> Answer:
    """One request on its own stream, read to its final response."""
    stream = Stream(url)
    try:
        stream.send(model, inputs, request_id)
        return stream.collect()
    finally:
        stream.close()
