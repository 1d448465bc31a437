"""The ``tensorrt_llm`` step of the embedded server: a CPU engine behind TRT-LLM's tensor contract.

Runs in Triton's python backend (decoupled). ``execute`` validates each request and queues it; a scheduler
thread runs the in-flight batching loop of ``cpu_engine.Scheduler``, sleeping for the timing profile's
iteration time and sending one response per sequence per iteration (streaming) or one per finished sequence.
Optional outputs (log probs, logits, perf metrics, token counts) are sent only when requested, as the
TensorRT-LLM backend does. Perf-metric timestamps are nanoseconds since the epoch.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpu_engine import (  # noqa: E402
    Emission,
    EngineSettings,
    RequestError,
    RequestSpec,
    Scheduler,
    parse_word_list,
    validate,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
CANCEL_CHECK_PERIOD_S = 0.1


def _tensor(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    array = tensor.as_numpy()
    return None if array.size == 0 else array


def _scalar(request: Any, names: tuple[str, ...], default: Any) -> Any:
    for name in names:
        array = _tensor(request, name)
        if array is not None:
            return array.reshape(-1)[0].item()
    return default


def _flag(request: Any, name: str, default: bool = False) -> bool:
    return bool(_scalar(request, (name,), default))


def _words(request: Any, name: str) -> list[tuple[int, ...]]:
    array = _tensor(request, name)
    if array is None:
        return []
    rows = array.reshape(-1, 2, array.shape[-1])[0]
    return parse_word_list(rows[0].tolist(), rows[1].tolist())


def _param(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if not value or value.startswith("${") else value


def _i32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


class _Output:
    """What one Triton request asked to get back, and where to send it."""

    def __init__(self, request: Any, sender: Any) -> None:
        self.sender = sender
        self.log_probs = _flag(request, "return_log_probs")
        self.context_logits = _flag(request, "return_context_logits")
        self.generation_logits = _flag(request, "return_generation_logits")
        self.perf = _flag(request, "return_perf_metrics") or _flag(request, "return_kv_cache_reuse_stats")
        self.num_input = _flag(request, "return_num_input_tokens")
        self.num_output = _flag(request, "return_num_output_tokens")
        self.done = threading.Event()
        self.responses: list[Any] = []


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(self.model_config)
        engine_dir = _param(self.model_config, "gpt_model_path")
        if not engine_dir:
            raise pb_utils.TritonModelException(
                "parameter gpt_model_path (${engine_dir}) is not set: render the repository with engine_dir"
            )
        self.settings = EngineSettings.load(Path(engine_dir))
        self.exclude_input_default = _param(
            self.model_config, "exclude_input_in_output", "false"
        ).lower() in (
            "true",
            "1",
        )
        self.scheduler = Scheduler(self.settings)
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="cpu-engine", daemon=True)
        self.thread.start()

    # ----------------------------------------------------------------------------------------------
    def execute(self, requests: list[Any]) -> list[Any] | None:
        arrival = time.time_ns()
        accepted: list[RequestSpec] = []
        outputs: list[_Output] = []
        for request in requests:
            sender = request.get_response_sender() if self.decoupled else None
            output = _Output(request, sender)
            outputs.append(output)
            try:
                spec = self._parse(request, output, arrival)
            except RequestError as exc:
                self._send_error(output, str(exc))
                continue
            accepted.append(spec)
        if accepted:
            with self.cond:
                for spec in accepted:
                    self.scheduler.submit(spec)
                self.cond.notify()
        if self.decoupled:
            return None
        responses = []
        for output in outputs:
            output.done.wait()
            responses.append(output.responses[-1])
        return responses

    def finalize(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=5)

    # ----------------------------------------------------------------------------------------------
    def _parse(self, request: Any, output: _Output, arrival: int) -> RequestSpec:
        ids = _tensor(request, "input_ids")
        prompt = [] if ids is None else ids.reshape(-1).tolist()
        length = _scalar(request, ("input_lengths",), len(prompt))
        prompt = prompt[: int(length)]
        streaming = _flag(request, "streaming")
        if streaming and not self.decoupled:
            raise RequestError("Streaming is only supported if model is deployed using decoupled mode.")
        top_k = int(_scalar(request, ("runtime_top_k",), 0))
        spec = RequestSpec(
            prompt=[int(t) for t in prompt],
            max_new_tokens=int(_scalar(request, ("request_output_len",), 0)),
            end_id=int(_scalar(request, ("end_id",), 2)),
            streaming=streaming,
            exclude_input=_flag(request, "exclude_input_in_output", self.exclude_input_default),
            num_sequences=int(_scalar(request, ("num_return_sequences",), 1)),
            min_tokens=int(_scalar(request, ("min_tokens", "min_length"), 0)),
            seed=int(_scalar(request, ("seed", "random_seed"), 0)),
            greedy=top_k == 1,
            stop_words=_words(request, "stop_words_list"),
            bad_words=_words(request, "bad_words_list"),
            handle=output,
            arrival_ns=arrival,
        )
        beam_width = int(_scalar(request, ("beam_width",), 1))
        validate(spec, self.settings.limits, beam_width)
        return spec

    def _send_error(self, output: _Output, message: str) -> None:
        response = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        self._deliver(output, response, final=True)

    def _deliver(self, output: _Output, response: Any, *, final: bool) -> None:
        if output.sender is not None:
            output.sender.send(response, flags=FINAL if final else 0)
        else:
            output.responses.append(response)
        if final:
            output.done.set()

    # ----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        scheduler = self.scheduler
        deadline = 0.0
        next_cancel_check = 0.0
        while True:
            with self.cond:
                while not self.stopping and scheduler.idle:
                    self.cond.wait()
                    deadline = 0.0
                if self.stopping:
                    return
                admitted = scheduler.admit()
                duration = scheduler.iteration_seconds(admitted)
                scheduler.step()
            now = time.perf_counter()
            # Pace by deadlines so the time spent sending overlaps the next iteration, as on a GPU;
            # start afresh after idling or when more than one iteration behind.
            if deadline == 0.0 or now - deadline > duration:
                deadline = now
            deadline += duration
            if deadline > now:
                time.sleep(deadline - now)
            with self.cond:
                emissions = scheduler.collect()
            for emission in emissions:
                self._send(emission)
            if time.perf_counter() >= next_cancel_check:
                next_cancel_check = time.perf_counter() + CANCEL_CHECK_PERIOD_S
                self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        with self.cond:
            specs = {id(s.request): s.request for s in self.scheduler.active}
            specs.update({id(s.request): s.request for s in self.scheduler.waiting})
        for spec in specs.values():
            output: _Output = spec.handle
            if output.sender is not None and output.sender.is_cancelled():
                with self.cond:
                    dropped = self.scheduler.cancel(spec)
                if dropped:
                    output.sender.send(flags=FINAL)
                    output.done.set()

    def _send(self, emission: Emission) -> None:
        seq = emission.sequence
        spec = seq.request
        output: _Output = spec.handle
        tokens = emission.tokens
        if spec.streaming and not tokens:
            # Ended by end_id with nothing left to send: a flags-only final response (no event).
            if emission.request_finished and output.sender is not None:
                output.sender.send(flags=FINAL)
                output.done.set()
            return
        tensors = [
            pb_utils.Tensor("output_ids", _i32([[tokens]])),
            pb_utils.Tensor("sequence_length", _i32([[len(tokens)]])),
        ]
        if spec.streaming:
            # The engine's timestamps mark when a token leaves the engine: just before it is sent.
            now = time.time_ns()
            if not seq.sent_first:
                seq.first_token_ns = now
                seq.sent_first = True
            seq.last_token_ns = now
        if spec.num_sequences > 1:
            tensors.append(pb_utils.Tensor("sequence_index", _i32([[seq.index]])))
        if output.log_probs:
            tensors.append(pb_utils.Tensor("cum_log_probs", np.zeros((1, 1), dtype=np.float32)))
            tensors.append(pb_utils.Tensor("output_log_probs", np.zeros((1, 1, len(tokens)), np.float32)))
        if output.context_logits:
            tensors.append(pb_utils.Tensor("context_logits", np.zeros((1, 1, 1), dtype=np.float32)))
        if output.generation_logits:
            tensors.append(pb_utils.Tensor("generation_logits", np.zeros((1, 1, 1, 1), dtype=np.float32)))
        if output.perf:
            blocks = -(-seq.kv_tokens // 64)
            for name, value in (
                ("arrival_time_ns", spec.arrival_ns),
                ("first_scheduled_time_ns", spec.first_scheduled_ns),
                ("first_token_time_ns", seq.first_token_ns),
                ("last_token_time_ns", seq.last_token_ns),
            ):
                tensors.append(pb_utils.Tensor(name, np.asarray([[value]], dtype=np.int64)))
            for name, count in (
                ("kv_cache_alloc_new_blocks", blocks),
                ("kv_cache_reused_blocks", 0),
                ("kv_cache_alloc_total_blocks", blocks),
                ("total_accepted_draft_tokens", 0),
                ("total_draft_tokens", 0),
            ):
                tensors.append(pb_utils.Tensor(name, _i32([[count]])))
            tensors.append(pb_utils.Tensor("acceptance_rate", np.zeros((1, 1), dtype=np.float32)))
        if output.num_input:
            tensors.append(pb_utils.Tensor("num_input_tokens", _i32([[len(spec.prompt)]])))
        if output.num_output:
            count = len(tokens) if spec.streaming else len(seq.generated)
            tensors.append(pb_utils.Tensor("num_output_tokens", _i32([[count]])))
        self._deliver(
            output, pb_utils.InferenceResponse(output_tensors=tensors), final=emission.request_finished
        )
