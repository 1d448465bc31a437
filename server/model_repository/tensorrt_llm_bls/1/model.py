"""The ``tensorrt_llm_bls`` model: the ensemble's text interface, composed in python.

As upstream's BLS, an instance serves one request at a time, inside ``execute`` (more concurrent requests
need more instances: ``bls_instance_count``): ``preprocessing`` (BLS call), then ``tensorrt_llm`` as a
decoupled BLS call whose responses are decoded by ``postprocessing`` and forwarded as they arrive. Inputs
that the BLS config reshapes to a scalar per row (``return_*``, ``num_return_sequences``, ...) get their
``[batch, 1]`` shape back before they go to ``tensorrt_llm``. With ``accumulate_tokens`` a streamed
response carries the whole text so far instead of the delta. As upstream's BLS, it also looks for the
stop words in the text (``stop_words.py``) and sends the engine a ``stop`` request under the engine
request's id once every row has stopped; it sends one too when its client goes away.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stop_words import StopWordWatch  # noqa: E402

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

# ensemble input -> preprocessing input
PRE_INPUTS = {
    "text_input": "QUERY",
    "max_tokens": "REQUEST_OUTPUT_LEN",
    "bad_words": "BAD_WORDS_DICT",
    "stop_words": "STOP_WORDS_DICT",
    "end_id": "END_ID",
    "pad_id": "PAD_ID",
}
PRE_OUTPUTS = (
    "INPUT_ID",
    "REQUEST_INPUT_LEN",
    "REQUEST_OUTPUT_LEN",
    "BAD_WORDS_IDS",
    "STOP_WORDS_IDS",
    "EMBEDDING_BIAS",
    "OUT_END_ID",
    "OUT_PAD_ID",
)
# preprocessing output -> tensorrt_llm input
PRE_TO_LLM = {
    "INPUT_ID": "input_ids",
    "REQUEST_INPUT_LEN": "input_lengths",
    "REQUEST_OUTPUT_LEN": "request_output_len",
    "BAD_WORDS_IDS": "bad_words_list",
    "STOP_WORDS_IDS": "stop_words_list",
    "OUT_END_ID": "end_id",
    "OUT_PAD_ID": "pad_id",
}
# BLS input -> tensorrt_llm input, passed through unchanged
PASSTHROUGH = {
    "stream": "streaming",
    "top_k": "runtime_top_k",
    "top_p": "runtime_top_p",
    "temperature": "temperature",
    "length_penalty": "len_penalty",
    "repetition_penalty": "repetition_penalty",
    "min_tokens": "min_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "return_log_probs": "return_log_probs",
    "return_context_logits": "return_context_logits",
    "return_generation_logits": "return_generation_logits",
    "return_perf_metrics": "return_perf_metrics",
    "return_num_input_tokens": "return_num_input_tokens",
    "return_num_output_tokens": "return_num_output_tokens",
    "num_return_sequences": "num_return_sequences",
    "beam_width": "beam_width",
    "exclude_input_in_output": "exclude_input_in_output",
}
LLM_OUTPUTS = (
    "output_ids",
    "sequence_length",
    "cum_log_probs",
    "output_log_probs",
    "context_logits",
    "generation_logits",
    "batch_index",
    "sequence_index",
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
    "num_input_tokens",
    "num_output_tokens",
)


def _param(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if not value or value.startswith("${") else value


class _Failure(Exception):
    pass


def _strings(request: Any, name: str) -> list[list[str]]:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    array = tensor.as_numpy()
    rows = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(1, -1)
    return [[v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row] for row in rows]


def _watch(request: Any, streaming: bool) -> StopWordWatch:
    exclude = pb_utils.get_input_tensor_by_name(request, "exclude_input_in_output")
    return StopWordWatch(
        words=_strings(request, "stop_words"),
        prompts=[row[0] if row else "" for row in _strings(request, "text_input")],
        streaming=streaming,
        exclude_input=exclude is not None and bool(exclude.as_numpy().reshape(-1)[0]),
    )


def _index(response: Any, name: str) -> int:
    tensor = pb_utils.get_output_tensor_by_name(response, name)
    return 0 if tensor is None else int(tensor.as_numpy().reshape(-1)[0])


def _row_major(array: np.ndarray) -> np.ndarray:
    """A per-row scalar that the config reshaped to ``[batch]`` back to ``[batch, 1]``."""
    return array.reshape(-1, 1) if array.ndim == 1 else array


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.accumulate = _param(config, "accumulate_tokens", "false").lower() in ("true", "1")
        self.llm_name = _param(config, "tensorrt_llm_model_name", "tensorrt_llm")

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            self._serve(request, request.get_response_sender())
        return None

    # ----------------------------------------------------------------------------------------------
    def _serve(self, request: Any, sender: Any) -> None:
        try:
            self._pipeline(request, sender)
            sender.send(flags=FINAL)
        except _Failure as exc:
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)
        except Exception as exc:  # never leave a client stream open
            sender.send(
                pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tensorrt_llm_bls: {exc}")),
                flags=FINAL,
            )

    def _pipeline(self, request: Any, sender: Any) -> None:
        pre_inputs = []
        for source, target in PRE_INPUTS.items():
            tensor = pb_utils.get_input_tensor_by_name(request, source)
            if tensor is not None:
                pre_inputs.append(pb_utils.Tensor(target, tensor.as_numpy()))
        pre = pb_utils.InferenceRequest(
            model_name="preprocessing", inputs=pre_inputs, requested_output_names=list(PRE_OUTPUTS)
        ).exec()
        if pre.has_error():
            raise _Failure(f"preprocessing: {pre.error().message()}")
        llm_inputs = []
        for source, target in PRE_TO_LLM.items():
            tensor = pb_utils.get_output_tensor_by_name(pre, source)
            if tensor is not None:
                llm_inputs.append(pb_utils.Tensor(target, tensor.as_numpy()))
        streaming = False
        for source, target in PASSTHROUGH.items():
            tensor = pb_utils.get_input_tensor_by_name(request, source)
            if tensor is not None:
                llm_inputs.append(pb_utils.Tensor(target, _row_major(tensor.as_numpy())))
                if source == "stream":
                    streaming = bool(tensor.as_numpy().reshape(-1)[0])
        llm_request_id = str(uuid.uuid4())
        responses = pb_utils.InferenceRequest(
            model_name=self.llm_name,
            inputs=llm_inputs,
            requested_output_names=list(LLM_OUTPUTS),
            request_id=llm_request_id,
        ).exec(decoupled=True)
        so_far: dict[tuple[int, int], np.ndarray] = {}
        watch = _watch(request, streaming)
        stop_sent = False
        for response in responses:
            if response.has_error():
                raise _Failure(response.error().message())
            if sender.is_cancelled():
                if not stop_sent:
                    self._stop(llm_request_id)
                    stop_sent = True
                continue  # drain what the engine still sends until its final response
            ids = pb_utils.get_output_tensor_by_name(response, "output_ids")
            if ids is None:  # a flags-only final response
                continue
            key = (_index(response, "batch_index"), _index(response, "sequence_index"))
            if watch.is_stopped(*key):
                continue
            tokens = ids.as_numpy()
            lengths = pb_utils.get_output_tensor_by_name(response, "sequence_length").as_numpy()
            if self.accumulate and streaming:
                new = tokens[..., : int(lengths.reshape(-1)[0])].reshape(-1)
                so_far[key] = np.concatenate([so_far.get(key, np.zeros(0, np.int32)), new]).astype(np.int32)
                tokens = so_far[key].reshape(1, 1, -1)
                lengths = np.asarray([[tokens.shape[-1]]], dtype=np.int32)
            text = self._decode(tokens, lengths)
            checked = [
                watch.check(*key, t.decode("utf-8", "replace")).encode("utf-8") for t in text.reshape(-1)
            ]
            text = np.asarray(checked, dtype=object)
            outputs = [pb_utils.Tensor("text_output", text)]
            for name in LLM_OUTPUTS[2:]:
                tensor = pb_utils.get_output_tensor_by_name(response, name)
                if tensor is not None:
                    outputs.append(pb_utils.Tensor(name, tensor.as_numpy()))
            sender.send(pb_utils.InferenceResponse(output_tensors=outputs))
            if watch.every_row_stopped and not stop_sent:
                self._stop(llm_request_id)
                stop_sent = True

    def _stop(self, llm_request_id: str) -> None:
        """Ask the engine to end the request (TRT-LLM's stop request: ``stop`` and the request's id)."""
        stop = pb_utils.InferenceRequest(
            model_name=self.llm_name,
            inputs=[
                pb_utils.Tensor("input_ids", np.zeros((1, 1), dtype=np.int32)),
                pb_utils.Tensor("input_lengths", np.zeros((1, 1), dtype=np.int32)),
                pb_utils.Tensor("request_output_len", np.zeros((1, 1), dtype=np.int32)),
                pb_utils.Tensor("stop", np.ones((1, 1), dtype=bool)),
            ],
            requested_output_names=[],
            request_id=llm_request_id,
        )
        for _ in stop.exec(decoupled=True):
            pass

    def _decode(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        post = pb_utils.InferenceRequest(
            model_name="postprocessing",
            inputs=[
                pb_utils.Tensor("TOKENS_BATCH", tokens.astype(np.int32)),
                pb_utils.Tensor("SEQUENCE_LENGTH", lengths.astype(np.int32)),
            ],
            requested_output_names=["OUTPUT"],
        ).exec()
        if post.has_error():
            raise _Failure(f"postprocessing: {post.error().message()}")
        return pb_utils.get_output_tensor_by_name(post, "OUTPUT").as_numpy()
