"""Token ids to text with the upstream postprocessing step's tensor names (our own code, for the tests)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.tokenizer = Tokenizer.from_file(parameters["tokenizer_dir"]["string_value"] + "/tokenizer.json")
        self.skip = parameters["skip_special_tokens"]["string_value"] != "false"

    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            texts = []
            for row, length in zip(tokens.reshape(-1, tokens.shape[-1]), lengths.reshape(-1), strict=True):
                text = self.tokenizer.decode(row[:length].tolist(), skip_special_tokens=self.skip)
                texts.append(text.encode())
            batch = np.array(texts, dtype=object).reshape(tokens.shape[0], -1)
            output = pb_utils.Tensor("OUTPUT", batch)
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
