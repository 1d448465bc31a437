"""Text to token ids with the upstream preprocessing step's tensor names (our own code, for the tests)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer


def parameter(config, key):
    value = config["parameters"].get(key, {}).get("string_value", "")
    return "" if value.startswith("${") else value


def strings(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    return [s.decode() if isinstance(s, bytes) else str(s) for s in tensor.as_numpy().reshape(-1)]


def scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else int(tensor.as_numpy().reshape(-1)[0])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.tokenizer = Tokenizer.from_file(parameter(config, "tokenizer_dir") + "/tokenizer.json")
        self.special = parameter(config, "add_special_tokens") == "true"
        self.end_id = self.tokenizer.token_to_id("</s>") or 0

    def words(self, words):
        ids, ends = [], []
        for word in filter(None, words):
            ids += self.tokenizer.encode(word, add_special_tokens=False).ids
            ends.append(len(ids))
        width = max(1, len(ids))
        return np.array([[ids + [0] * (width - len(ids)), ends + [-1] * (width - len(ends))]], np.int32)

    def execute(self, requests):
        responses = []
        for request in requests:
            ids = self.tokenizer.encode(strings(request, "QUERY")[0], add_special_tokens=self.special).ids
            end_id = scalar(request, "END_ID", self.end_id)
            outputs = {
                "INPUT_ID": np.array([ids], np.int32),
                "REQUEST_INPUT_LEN": np.array([[len(ids)]], np.int32),
                "REQUEST_OUTPUT_LEN": np.array([[scalar(request, "REQUEST_OUTPUT_LEN", 16)]], np.int32),
                "BAD_WORDS_IDS": self.words(strings(request, "BAD_WORDS_DICT")),
                "STOP_WORDS_IDS": self.words(strings(request, "STOP_WORDS_DICT")),
                "OUT_END_ID": np.array([[end_id]], np.int32),
                "OUT_PAD_ID": np.array([[scalar(request, "PAD_ID", end_id)]], np.int32),
            }
            tensors = [pb_utils.Tensor(name, value) for name, value in outputs.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
