"""The ``tensorrt_llm`` step of the embedded server: a CPU engine behind TRT-LLM's tensor contract.

Runs in Triton's python backend (decoupled). ``execute`` validates each request and queues one engine
request per row of its batch; a scheduler thread runs the in-flight batching loop of
``cpu_engine.Scheduler``, sleeping for the timing profile's iteration time and sending one response per
sequence per iteration (streaming) or one per finished sequence, the last one of the last row flagged
final. A request with ``stop`` set ends the running request of the same request id, as the TensorRT-LLM
backend does. Optional outputs (log probs, logits, perf metrics, token counts) are sent only when requested
(``responses``); the backend's ``nv_trt_llm_*`` gauges are updated after every iteration
(``engine_metrics``: the values that changed; the timestamp and iteration counter alone at most once per
``stats_check_period_ms``, as often as the real backend reports them). Perf-metric timestamps are
nanoseconds since the epoch.
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
from engine_metrics import TritonMetrics, snapshot  # noqa: E402
from lora_cache import LoraError  # noqa: E402
from responses import LOGITS_DTYPES, Row, Wanted, output_tensors  # noqa: E402

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
CANCEL_CHECK_PERIOD_S = 0.1


def _tensor(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    array = tensor.as_numpy()
    return None if array.size == 0 else array


def _row_value(array: np.ndarray, row: int) -> Any:
    rows = array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, 1)
    return rows[row if row < rows.shape[0] else 0][0].item()


def _scalar(request: Any, names: tuple[str, ...], default: Any, row: int = 0) -> Any:
    for name in names:
        array = _tensor(request, name)
        if array is not None:
            return _row_value(array, row)
    return default


def _flag(request: Any, name: str, default: bool = False, row: int = 0) -> bool:
    return bool(_scalar(request, (name,), default, row))


def _words(request: Any, name: str, row: int) -> list[tuple[int, ...]]:
    array = _tensor(request, name)
    if array is None:
        return []
    lists = array.reshape(-1, 2, array.shape[-1])
    pair = lists[row if row < lists.shape[0] else 0]
    return parse_word_list(pair[0].tolist(), pair[1].tolist())


def _param(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if not value or value.startswith("${") else value


def _output_dtype(config: dict[str, Any], name: str) -> Any:
    for output in config.get("output", []):
        if output.get("name") == name:
            return LOGITS_DTYPES.get(output.get("data_type", ""), np.float32)
    return np.float32


class _Output:
    """One Triton request: where its responses go and how many of its rows are still running."""

    def __init__(self, request: Any, sender: Any) -> None:
        self.sender = sender
        self.request_id = request.request_id() or ""
        self.open_rows = 0
        self.specs: list[RequestSpec] = []
        self.done = threading.Event()


def _wanted(request: Any) -> Wanted:
    return Wanted(
        log_probs=_flag(request, "return_log_probs"),
        context_logits=_flag(request, "return_context_logits"),
        generation_logits=_flag(request, "return_generation_logits"),
        perf=_flag(request, "return_perf_metrics") or _flag(request, "return_kv_cache_reuse_stats"),
        num_input=_flag(request, "return_num_input_tokens"),
        num_output=_flag(request, "return_num_output_tokens"),
    )


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(self.model_config)
        engine_dir = _param(self.model_config, "gpt_model_path")
        if not engine_dir:
            raise pb_utils.TritonModelException(
                "parameter gpt_model_path (${engine_dir}) is not set: render the repository with engine_dir"
            )
        fraction_text = _param(self.model_config, "kv_cache_free_gpu_mem_fraction")
        try:
            fraction = float(fraction_text) if fraction_text else None
        except ValueError:
            raise pb_utils.TritonModelException(
                f"kv_cache_free_gpu_mem_fraction must be a number, got {fraction_text!r}"
            ) from None
        self.settings = EngineSettings.load(Path(engine_dir), fraction)
        self.exclude_input_default = _param(
            self.model_config, "exclude_input_in_output", "false"
        ).lower() in ("true", "1")
        self.vocab_size = int(self.settings.tables["vocab_size"])
        self.logits_dtype = _output_dtype(self.model_config, "generation_logits")
        # Up to v0.13 the backend sent batch_index with every response; v0.14 (which added the
        # sequence_index output) sends it only for a batch of more than one row.
        outputs = {output.get("name") for output in self.model_config.get("output", [])}
        self.batch_index_always = "sequence_index" not in outputs
        reuse = _param(self.model_config, "enable_kv_cache_reuse", "false").lower() in ("true", "1")
        self.scheduler = Scheduler(self.settings, kv_cache_reuse=reuse)
        period_ms = _param(self.model_config, "stats_check_period_ms", "100")
        self.metrics = TritonMetrics(
            pb_utils,
            args.get("model_name", "tensorrt_llm"),
            str(args.get("model_version", "1")),
            quiet_period_s=int(period_ms) / 1000 if period_ms.isdigit() else 0.1,
        )
        self.metrics.publish(snapshot(self.scheduler))
        self.running: dict[str, list[_Output]] = {}
        """Requests in flight by Triton request id, for stop requests."""
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="cpu-engine", daemon=True)
        self.thread.start()

    # ----------------------------------------------------------------------------------------------
    def execute(self, requests: list[Any]) -> list[Any] | None:
        arrival = time.time_ns()
        accepted: list[tuple[_Output, list[RequestSpec]]] = []
        for request in requests:
            # The response sender serves both modes (non-decoupled: exactly one response, flagged final), so
            # execute never blocks and a stop request reaches a running request in either mode.
            output = _Output(request, request.get_response_sender())
            if _flag(request, "stop"):
                self._stop(output)
                continue
            try:
                specs = self._parse(request, output, arrival)
            except RequestError as exc:
                self._send_error(output, str(exc))
                continue
            accepted.append((output, specs))
        if accepted:
            with self.cond:
                for output, specs in accepted:
                    output.specs = specs
                    output.open_rows = len(specs)
                    if output.request_id:
                        self.running.setdefault(output.request_id, []).append(output)
                    for spec in specs:
                        self.scheduler.submit(spec)
                self.cond.notify()
        return None

    def finalize(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=5)

    # ----------------------------------------------------------------------------------------------
    def _parse(self, request: Any, output: _Output, arrival: int) -> list[RequestSpec]:
        """One engine request per row of the Triton request's batch, all validated before any is queued."""
        ids = _tensor(request, "input_ids")
        if ids is None:  # refused by validate() below, with the message every empty prompt gets
            ids = np.zeros((1, 0), dtype=np.int32)
        ids = ids.reshape(ids.shape[0], -1) if ids.ndim > 1 else ids.reshape(1, -1)
        streaming = _flag(request, "streaming")
        if not self.decoupled:
            if streaming:
                raise RequestError("Streaming is only supported if model is deployed using decoupled mode.")
            if ids.shape[0] > 1:
                raise RequestError(
                    "a batch of more than one prompt needs decoupled mode (one response per row)"
                )
        wanted = _wanted(request)
        specs = []
        for row in range(ids.shape[0]):
            length = int(_scalar(request, ("input_lengths",), ids.shape[1], row))
            top_k = int(_scalar(request, ("runtime_top_k",), 0, row))
            spec = RequestSpec(
                prompt=[int(t) for t in ids[row][:length]],
                max_new_tokens=int(_scalar(request, ("request_output_len",), 0, row)),
                end_id=int(_scalar(request, ("end_id",), 2, row)),
                streaming=streaming,
                exclude_input=_flag(request, "exclude_input_in_output", self.exclude_input_default, row),
                num_sequences=int(_scalar(request, ("num_return_sequences",), 1, row)),
                min_tokens=int(_scalar(request, ("min_tokens", "min_length"), 0, row)),
                seed=int(_scalar(request, ("seed", "random_seed"), 0, row)),
                greedy=top_k == 1,
                stop_words=_words(request, "stop_words_list", row),
                bad_words=_words(request, "bad_words_list", row),
                lora_task_id=self._lora(request, row),
                handle=(output, Row(wanted, row, ids.shape[0], self.batch_index_always)),
                arrival_ns=arrival,
            )
            if spec.num_sequences > 1 and not self.decoupled:
                raise RequestError(
                    "num_return_sequences above 1 needs decoupled mode (one response per sequence)"
                )
            beam_width = int(_scalar(request, ("beam_width",), 1, row))
            try:
                validate(spec, self.settings.limits, beam_width)
            except RequestError as exc:
                where = f"row {row} of the batch: " if ids.shape[0] > 1 else ""
                raise RequestError(f"{where}{exc}") from None
            specs.append(spec)
        return specs

    def _lora(self, request: Any, row: int) -> int | None:
        """The row's ``lora_task_id``, its adapter checked (and stored when its weights came along)."""
        task = _scalar(request, ("lora_task_id",), None, row)
        if task is None:
            return None
        try:
            self.scheduler.lora.register(
                int(task), _tensor(request, "lora_weights"), _tensor(request, "lora_config")
            )
        except LoraError as exc:
            raise RequestError(str(exc)) from None
        return int(task)

    def _stop(self, output: _Output) -> None:
        """A stop request: end every running request with its id; answer with an empty final response."""
        if not output.request_id:
            self._send_error(output, "Trying to stop a request but request ID is not provided")
            return
        with self.cond:
            for running in self.running.get(output.request_id, []):
                for spec in running.specs:
                    self.scheduler.stop(spec)
            self.cond.notify()
        self._deliver(output, pb_utils.InferenceResponse(output_tensors=[]), final=True)

    def _send_error(self, output: _Output, message: str) -> None:
        response = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        self._deliver(output, response, final=True)

    def _deliver(self, output: _Output, response: Any, *, final: bool) -> None:
        output.sender.send(response, flags=FINAL if final else 0)
        if final:
            output.done.set()

    def _finish(self, output: _Output) -> None:
        """Forget a request whose last row has ended."""
        with self.cond:
            if output.request_id in self.running:
                others = [o for o in self.running[output.request_id] if o is not output]
                if others:
                    self.running[output.request_id] = others
                else:
                    del self.running[output.request_id]

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
                iteration = snapshot(scheduler)
            self.metrics.publish(iteration)
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
                idle = snapshot(scheduler) if scheduler.idle else None
            if idle is not None:  # published before the last responses go out, so a client sees it after them
                self.metrics.publish(idle)
            for emission in emissions:
                self._send(emission)
            if time.perf_counter() >= next_cancel_check:
                next_cancel_check = time.perf_counter() + CANCEL_CHECK_PERIOD_S
                self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        with self.cond:
            specs = {id(s.request): s.request for s in self.scheduler.active}
            specs.update({id(s.request): s.request for s in self.scheduler.waiting})
        cancelled: dict[int, _Output] = {}
        for spec in specs.values():
            output: _Output = spec.handle[0]
            if not output.done.is_set() and output.sender.is_cancelled():
                cancelled[id(output)] = output
        for output in cancelled.values():
            with self.cond:
                for spec in output.specs:
                    self.scheduler.cancel(spec)
            if self.decoupled:
                output.sender.send(flags=FINAL)
            else:  # a non-decoupled request gets exactly one response
                error = pb_utils.TritonError("the request was cancelled")
                output.sender.send(pb_utils.InferenceResponse(error=error), flags=FINAL)
            output.done.set()
            self._finish(output)
        if cancelled:
            with self.cond:
                idle = snapshot(self.scheduler) if self.scheduler.idle else None
            if idle is not None:
                self.metrics.publish(idle)

    def _send(self, emission: Emission) -> None:
        seq = emission.sequence
        spec = seq.request
        output, row = spec.handle
        if output.done.is_set():  # cancelled meanwhile
            return
        final = False
        if emission.request_finished:
            output.open_rows -= 1
            final = output.open_rows == 0
            self.metrics.observe_request(len(spec.prompt), len(seq.generated))
        if spec.streaming and not emission.tokens:
            # Ended by end_id or a stop request with nothing left to send: a flags-only final response.
            if final:
                output.sender.send(flags=FINAL)
                output.done.set()
                self._finish(output)
            return
        if spec.streaming:
            # The engine's timestamps mark when a token leaves the engine: just before it is sent.
            now = time.time_ns()
            if not seq.sent_first:
                seq.first_token_ns = now
                seq.sent_first = True
            seq.last_token_ns = now
        tensors = [
            pb_utils.Tensor(name, array)
            for name, array in output_tensors(
                emission,
                row,
                vocab_size=self.vocab_size,
                logits_dtype=self.logits_dtype,
            )
        ]
        self._deliver(output, pb_utils.InferenceResponse(output_tensors=tensors), final=final)
        if final:
            self._finish(output)
