"""The ``preprocessing`` step: text in, token ids out, with TRT-LLM's tensor names.

Loads the Hugging Face tokenizer in ``tokenizer_dir`` (its ``tokenizer.json`` through the ``tokenizers``
library, or ``transformers.AutoTokenizer`` when the directory has no ``tokenizer.json``). Every row of a
batched request is encoded; prompts are padded to the longest with the pad id. Stop and bad words become
TRT-LLM's ``[batch, 2, N]`` word lists (concatenated ids, then cumulative end offsets padded with -1), each
word encoded as given without special tokens and empty ones skipped, as upstream's preprocessing does: a
word matches generated text only when the tokenizer spells it the same way there (with a byte-level BPE,
" word" and "word" are different tokens). Without a word input the list is ``[batch, 2, 0]``.
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


def _rows(request: Any, name: str) -> list[list[str]] | None:
    """The strings of each row of a ``[batch, n]`` string input, or None when it is absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    array = tensor.as_numpy()
    array = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(1, -1)
    return [
        [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in row]
        for row in array
    ]


def _ints(request: Any, name: str) -> list[int] | None:
    """One integer per row of a ``[batch, 1]`` input, or None when it is absent or empty."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None or tensor.as_numpy().size == 0:
        return None
    return [int(v) for v in tensor.as_numpy().reshape(-1)]


def _per_row(values: list[int] | None, batch: int, default: int) -> list[int]:
    if values is None:
        return [default] * batch
    return values if len(values) == batch else [values[0]] * batch


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        tokenizer_dir = _param(config, "tokenizer_dir")
        if not tokenizer_dir:
            raise pb_utils.TritonModelException("parameter tokenizer_dir is not set")
        self.tokenizer = _Tokenizer(Path(tokenizer_dir))
        self.add_special_tokens = _param(config, "add_special_tokens", "true").lower() in ("true", "1")

    def _word_lists(self, rows: list[list[str]] | None, batch: int) -> np.ndarray:
        if rows is None:
            return np.zeros((batch, 2, 0), dtype=np.int32)
        encoded: list[tuple[list[int], list[int]]] = []
        for words in rows:
            ids: list[int] = []
            offsets: list[int] = []
            for word in words:
                tokens = self.tokenizer.encode(word, add_special_tokens=False) if word else []
                if tokens:
                    ids.extend(tokens)
                    offsets.append(len(ids))
            encoded.append((ids, offsets))
        width = max(1, max(len(ids) for ids, _ in encoded))
        out = np.zeros((len(encoded), 2, width), dtype=np.int32)
        out[:, 1, :] = -1
        for row, (ids, offsets) in enumerate(encoded):
            out[row, 0, : len(ids)] = ids
            out[row, 1, : len(offsets)] = offsets
        return out

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as exc:  # one bad request must not fail the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _one(self, request: Any) -> Any:
        queries = _rows(request, "QUERY") or [[""]]
        batch = len(queries)
        prompts = [self.tokenizer.encode(row[0] if row else "", self.add_special_tokens) for row in queries]
        output_len = _ints(request, "REQUEST_OUTPUT_LEN")
        if output_len is None:
            raise ValueError("max_tokens is missing")
        end_ids = _per_row(_ints(request, "END_ID"), batch, self.tokenizer.eos_id)
        pad_ids = [
            e if p is None else p
            for p, e in zip(_optional_rows(request, "PAD_ID", batch), end_ids, strict=True)
        ]
        width = max(len(ids) for ids in prompts)
        input_ids = np.full((batch, width), pad_ids[0], dtype=np.int32)
        for row, ids in enumerate(prompts):
            input_ids[row, : len(ids)] = ids
        column = lambda values: np.asarray(values, dtype=np.int32).reshape(batch, 1)  # noqa: E731
        tensors = [
            pb_utils.Tensor("INPUT_ID", input_ids),
            pb_utils.Tensor("REQUEST_INPUT_LEN", column([len(ids) for ids in prompts])),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", column(_per_row(output_len, batch, 0))),
            pb_utils.Tensor("BAD_WORDS_IDS", self._word_lists(_rows(request, "BAD_WORDS_DICT"), batch)),
            pb_utils.Tensor("STOP_WORDS_IDS", self._word_lists(_rows(request, "STOP_WORDS_DICT"), batch)),
            pb_utils.Tensor("EMBEDDING_BIAS", np.zeros((batch, 0), dtype=np.float32)),
            pb_utils.Tensor("OUT_END_ID", column(end_ids)),
            pb_utils.Tensor("OUT_PAD_ID", column(pad_ids)),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)


def _optional_rows(request: Any, name: str, batch: int) -> list[int | None]:
    values = _ints(request, name)
    if values is None:
        return [None] * batch
    return list(_per_row(values, batch, 0))
