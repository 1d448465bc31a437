"""A BLS in the upstream layout (our own code, for the tests): preprocessing, the engine, postprocessing."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


def call(model, inputs, outputs):
    request = pb_utils.InferenceRequest(model_name=model, inputs=inputs, requested_output_names=outputs)
    return request.exec()


def output(response, name):
    if response.has_error():
        raise pb_utils.TritonModelException(response.error().message())
    return pb_utils.get_output_tensor_by_name(response, name).as_numpy()


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.engine = parameters["tensorrt_llm_model_name"]["string_value"]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self.generate(request, sender)
            except Exception as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def generate(self, request, sender):
        text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(1, 1)
        max_tokens = pb_utils.get_input_tensor_by_name(request, "max_tokens").as_numpy().reshape(1, 1)
        stream_tensor = pb_utils.get_input_tensor_by_name(request, "stream")
        stream = bool(stream_tensor.as_numpy().reshape(-1)[0]) if stream_tensor is not None else False
        pre = call(
            "preprocessing",
            [pb_utils.Tensor("QUERY", text), pb_utils.Tensor("REQUEST_OUTPUT_LEN", max_tokens)],
            ["INPUT_ID", "REQUEST_INPUT_LEN", "REQUEST_OUTPUT_LEN", "OUT_END_ID", "OUT_PAD_ID"],
        )
        inputs = [
            pb_utils.Tensor("input_ids", output(pre, "INPUT_ID")),
            pb_utils.Tensor("input_lengths", output(pre, "REQUEST_INPUT_LEN")),
            pb_utils.Tensor("request_output_len", output(pre, "REQUEST_OUTPUT_LEN")),
            pb_utils.Tensor("end_id", output(pre, "OUT_END_ID")),
            pb_utils.Tensor("pad_id", output(pre, "OUT_PAD_ID")),
            pb_utils.Tensor("streaming", np.array([[stream]], dtype=bool)),
        ]
        seed = pb_utils.get_input_tensor_by_name(request, "seed")
        if seed is not None:
            inputs.append(pb_utils.Tensor("seed", seed.as_numpy().reshape(1, 1)))
        engine = pb_utils.InferenceRequest(
            model_name=self.engine, inputs=inputs, requested_output_names=["output_ids", "sequence_length"]
        )
        for response in engine.exec(decoupled=True):
            if response.has_error():
                raise pb_utils.TritonModelException(response.error().message())
            if not response.output_tensors():
                continue  # the empty final response of a decoupled model
            post = call(
                "postprocessing",
                [
                    pb_utils.Tensor("TOKENS_BATCH", output(response, "output_ids")),
                    pb_utils.Tensor("SEQUENCE_LENGTH", output(response, "sequence_length")),
                ],
                ["OUTPUT"],
            )
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("text_output", output(post, "OUTPUT"))]))
