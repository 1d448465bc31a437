"""The pure half of the gRPC transport: tensors, request building, response decoding, error mapping."""

from __future__ import annotations

import struct

import grpc  # type: ignore[import-untyped]
import pytest
from tritonclient.grpc import service_pb2 as pb

from trtclient import errors
from trtclient.errors import error_kind
from trtclient.inputs import ModelInputs, build_body, make_request
from trtclient.transports.grpc_codec import (
    build_infer_request,
    decode_tensor,
    encode_tensor,
    map_rpc_error,
    response_data,
    tensor_shape,
)

INPUTS = ModelInputs.from_metadata(
    {
        "name": "ensemble",
        "inputs": [
            {"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]},
            {"name": "max_tokens", "datatype": "INT32", "shape": [-1, 1]},
            {"name": "stop_words", "datatype": "BYTES", "shape": [-1, -1]},
            {"name": "seed", "datatype": "UINT64", "shape": [-1, 1]},
            {"name": "temperature", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "stream", "datatype": "BOOL", "shape": [-1, 1]},
        ],
    }
)


@pytest.mark.parametrize(
    ("shape", "count", "expected"),
    [([-1, 1], 1, [1, 1]), ([-1, -1], 3, [1, 3]), ([-1, -1, 3], 6, [1, 2, 3]), ([], 1, [1]), ([-1], 4, [4])],
)
def test_shapes_follow_the_http_front_ends_rule(shape: list[int], count: int, expected: list[int]) -> None:
    assert tensor_shape(shape, count) == expected


@pytest.mark.parametrize(
    ("datatype", "values"),
    [("INT32", [1, -2]), ("UINT64", [2**64 - 1]), ("FP32", [0.5]), ("BOOL", [True, False]), ("INT64", [7])],
)
def test_numeric_tensors_round_trip(datatype: str, values: list[object]) -> None:
    assert decode_tensor(datatype, encode_tensor(datatype, values)) == values


def test_bytes_tensors_are_length_prefixed_utf8() -> None:
    raw = encode_tensor("BYTES", ["hé", ""])
    assert raw == struct.pack("<I", 3) + "hé".encode() + struct.pack("<I", 0)
    assert decode_tensor("BYTES", raw) == ["hé", ""]


def test_unsupported_datatype_is_refused() -> None:
    with pytest.raises(errors.RequestValidationError, match="BF16"):
        encode_tensor("BF16", [1.0])


def test_request_carries_inputs_id_parameters_and_the_final_flag() -> None:
    request = make_request(
        "hi",
        {"max_tokens": 3, "stop_words": ["a", "b"], "seed": 9, "id": "r1", "parameters": {"priority": 2}},
    )
    body = build_body(request, INPUTS, stream=True)
    message = build_infer_request("ensemble", body, INPUTS)
    assert message.model_name == "ensemble" and message.id == "r1"
    tensors = {t.name: (t.datatype, list(t.shape)) for t in message.inputs}
    assert tensors == {
        "text_input": ("BYTES", [1, 1]),
        "max_tokens": ("INT32", [1, 1]),
        "stop_words": ("BYTES", [1, 2]),
        "seed": ("UINT64", [1, 1]),
        "stream": ("BOOL", [1, 1]),
    }
    contents = dict(zip([t.name for t in message.inputs], message.raw_input_contents, strict=True))
    assert decode_tensor("BYTES", contents["stop_words"]) == ["a", "b"]
    assert decode_tensor("INT32", contents["max_tokens"]) == [3]
    assert message.parameters["priority"].int64_param == 2
    assert message.parameters["triton_enable_empty_final_response"].bool_param is True


def response(final: bool, text: str | None = None) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(model_name="ensemble", model_version="1", id="r1")
    message.parameters["triton_final_response"].bool_param = final
    message.parameters["sequence_id"].int64_param = 0
    if text is not None:
        out = message.outputs.add(name="text_output", datatype="BYTES", shape=[1, 1])
        out.shape[:] = [1, 1]
        message.raw_output_contents.append(encode_tensor("BYTES", [text]))
        count = message.outputs.add(name="num_output_tokens", datatype="INT32")
        count.shape[:] = [1, 1]
        message.raw_output_contents.append(encode_tensor("INT32", [1]))
    return message


def test_responses_look_like_the_http_json() -> None:
    data, final = response_data(response(False, " token"))
    assert not final
    assert data == {
        "sequence_id": 0,
        "text_output": " token",
        "num_output_tokens": 1,
        "model_name": "ensemble",
        "model_version": "1",
        "id": "r1",
    }
    empty, final = response_data(response(True))
    assert final and "text_output" not in empty


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc raises it (codes that loopback cannot produce on demand)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "cls", "kind"),
    [
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "unexpected input",
            errors.BadRequestError,
            "grpc_invalid_argument",
        ),
        (grpc.StatusCode.NOT_FOUND, "no model", errors.NotFoundError, "grpc_not_found"),
        (grpc.StatusCode.INTERNAL, "boom", errors.InternalServerError, "grpc_internal"),
        (grpc.StatusCode.UNIMPLEMENTED, "no", errors.NotSupportedError, "grpc_unimplemented"),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            errors.TritonConnectionError,
            "connect",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'",
            errors.AccessDeniedError,
            "grpc_unavailable",
        ),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.TotalTimeoutError, "timeout_total"),
        (grpc.StatusCode.CANCELLED, "Cancelled", errors.TritonDisconnectedError, "disconnect"),
    ],
)
def test_rpc_errors_map_to_the_same_tree(
    code: grpc.StatusCode, details: str, cls: type[errors.TritonError], kind: str
) -> None:
    error = map_rpc_error(FakeRpcError(code, details), "127.0.0.1:8001")
    assert type(error) is cls
    assert error_kind(error) == kind
    if isinstance(error, errors.TritonStatusError):
        assert error.message == details and error.grpc_code == code.name
