"""The ``postprocessing`` step: token ids in, text out, with TRT-LLM's tensor names.

Each response is decoded on its own, so a streamed ensemble yields text deltas, as upstream does. The
output is one string per sequence in a flat ``[batch * beams]`` tensor, the shape upstream's
postprocessing produces (its config declares ``[-1]``), so ``text_output[0]`` is a string for a client.
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


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        tokenizer_dir = Path(_param(config, "tokenizer_dir"))
        self.skip_special = _param(config, "skip_special_tokens", "true").lower() in ("true", "1")
        if (tokenizer_dir / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
            self.decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=self.skip_special)
        else:
            from transformers import AutoTokenizer

            slow = AutoTokenizer.from_pretrained(str(tokenizer_dir))
            self.decode = lambda ids: slow.decode(ids, skip_special_tokens=self.skip_special)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
            lengths = lengths.reshape(tokens.shape[0], -1)
            # one string per sequence, batch-major ([batch * beams]), as upstream's postprocessing returns
            texts = [
                self.decode(tokens[b, k, : lengths[b, k]].tolist()).encode("utf-8")
                for b in range(tokens.shape[0])
                for k in range(tokens.shape[1])
            ]
            output = pb_utils.Tensor("OUTPUT", np.asarray(texts, dtype=object))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
