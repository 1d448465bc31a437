"""The ``preprocessing`` step: text in, token ids out, with TRT-LLM's tensor names.

Loads the Hugging Face tokenizer in ``tokenizer_dir`` (its ``tokenizer.json`` through the ``tokenizers``
library, or ``transformers.AutoTokenizer`` when the directory has no ``tokenizer.json``). Stop and bad
words become TRT-LLM's ``[2, N]`` word lists (concatenated ids, then end offsets padded with -1); empty
strings are skipped. A byte-level BPE spells a word differently after a space, so each word is also listed
with a leading space, which is how it appears inside generated text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


def _param(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if not value or value.startswith("${") else value


class _Tokenizer:
    def __init__(self, directory: Path) -> None:
        self.fast = None
        self.slow = None
        if (directory / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            self.fast = Tokenizer.from_file(str(directory / "tokenizer.json"))
        else:  # a directory with only a slow tokenizer: needs transformers in the model environment
            from transformers import AutoTokenizer

            self.slow = AutoTokenizer.from_pretrained(str(directory))
        eos = "</s>"
        config_file = directory / "tokenizer_config.json"
        if config_file.exists():
            value = json.loads(config_file.read_text()).get("eos_token", eos)
            eos = value["content"] if isinstance(value, dict) else value
        self.eos_id = self._token_id(eos)

    def _token_id(self, token: str) -> int:
        if self.fast is not None:
            found = self.fast.token_to_id(token)
            return 0 if found is None else int(found)
        return int(self.slow.convert_tokens_to_ids(token))

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        if self.fast is not None:
            return list(self.fast.encode(text, add_special_tokens=add_special_tokens).ids)
        return list(self.slow.encode(text, add_special_tokens=add_special_tokens))


def _strings(request: Any, name: str) -> list[str]:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    out = []
    for item in tensor.as_numpy().reshape(-1):
        out.append(item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item))
    return out


def _int(request: Any, name: str, default: int | None) -> int | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None or tensor.as_numpy().size == 0:
        return default
    return int(tensor.as_numpy().reshape(-1)[0])


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        tokenizer_dir = _param(config, "tokenizer_dir")
        if not tokenizer_dir:
            raise pb_utils.TritonModelException("parameter tokenizer_dir is not set")
        self.tokenizer = _Tokenizer(Path(tokenizer_dir))
        self.add_special_tokens = _param(config, "add_special_tokens", "true").lower() in ("true", "1")

    def _word_list(self, words: list[str]) -> np.ndarray:
        ids: list[int] = []
        offsets: list[int] = []
        for word in words:
            if not word:
                continue
            variants = [word] if word.startswith(" ") else [word, " " + word]
            for variant in variants:
                tokens = self.tokenizer.encode(variant, add_special_tokens=False)
                if tokens:
                    ids.extend(tokens)
                    offsets.append(len(ids))
        width = max(1, len(ids))
        flat = np.zeros(width, dtype=np.int32)
        flat[: len(ids)] = ids
        ends = np.full(width, -1, dtype=np.int32)
        ends[: len(offsets)] = offsets
        return np.stack([flat, ends])[None, ...]

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as exc:  # one bad request must not fail the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _one(self, request: Any) -> Any:
        queries = _strings(request, "QUERY")
        text = queries[0] if queries else ""
        ids = self.tokenizer.encode(text, self.add_special_tokens)
        output_len = _int(request, "REQUEST_OUTPUT_LEN", None)
        if output_len is None:
            raise ValueError("max_tokens is missing")
        end_id = _int(request, "END_ID", None)
        pad_id = _int(request, "PAD_ID", None)
        end_id = self.tokenizer.eos_id if end_id is None else end_id
        pad_id = end_id if pad_id is None else pad_id
        tensors = [
            pb_utils.Tensor("INPUT_ID", np.asarray([ids], dtype=np.int32)),
            pb_utils.Tensor("REQUEST_INPUT_LEN", np.asarray([[len(ids)]], dtype=np.int32)),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", np.asarray([[output_len]], dtype=np.int32)),
            pb_utils.Tensor("BAD_WORDS_IDS", self._word_list(_strings(request, "BAD_WORDS_DICT"))),
            pb_utils.Tensor("STOP_WORDS_IDS", self._word_list(_strings(request, "STOP_WORDS_DICT"))),
            pb_utils.Tensor("EMBEDDING_BIAS", np.zeros((1, 0), dtype=np.float32)),
            pb_utils.Tensor("OUT_END_ID", np.asarray([[end_id]], dtype=np.int32)),
            pb_utils.Tensor("OUT_PAD_ID", np.asarray([[pad_id]], dtype=np.int32)),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)
