"""The pure half of the gRPC transport: tensors, ``ModelInferRequest`` building, responses turned
back into the JSON-shaped dict the HTTP endpoints send, gRPC status -> trtclient exception, and TLS
channel credentials.

A request body built by :func:`trtclient.inputs.build_body` becomes one ``ModelInferRequest``: each
input a tensor shaped by the rule Triton's HTTP front-end applies to generate requests (the innermost
variable dimension takes the element count, other variable dimensions 1), ``id`` the request id,
``parameters`` request parameters, plus ``triton_enable_empty_final_response`` so every response
carries ``triton_final_response`` and the end of the stream is explicit (server
``src/grpc/stream_infer_handler.cc``). Responses become dicts with one-element tensors as scalars and
BYTES as text, so both front-ends yield the same :class:`~trtclient.schema.StreamChunk` objects. The
messages are tritonclient's generated ``service_pb2``.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2 as pb

from trtclient import errors
from trtclient.inputs import ModelInputs
from trtclient.responses import status_error_class
from trtclient.schema import GenerateResponse, StreamChunk

__all__ = [
    "CHANNEL_OPTIONS",
    "as_dict",
    "build_infer_request",
    "channel_credentials",
    "decode_tensor",
    "encode_tensor",
    "has_outputs",
    "map_rpc_error",
    "metadata_dict",
    "response_data",
    "single_response",
    "stream_error",
    "tensor_shape",
]

_FINAL = "triton_final_response"
_STRUCT_CODES = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
]


# --- tensors --------------------------------------------------------------------------------------


def tensor_shape(shape: tuple[int, ...] | list[int], count: int) -> list[int]:
    """The concrete shape of ``count`` elements for a metadata shape with ``-1`` dimensions."""
    dims = list(shape) or [-1]
    fixed = 1
    for dim in dims:
        if dim >= 0:
            fixed *= dim
    variable = [i for i, dim in enumerate(dims) if dim < 0]
    result = [dim if dim >= 0 else 1 for dim in dims]
    if variable:
        result[variable[-1]] = count // fixed if fixed else count
    return result


def encode_tensor(datatype: str, values: list[Any]) -> bytes:
    """Raw little-endian contents of one tensor (BYTES: 4-byte length before each element)."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    code = _STRUCT_CODES.get(datatype)
    if code is None:
        raise errors.RequestValidationError(f"datatype {datatype} cannot be sent over gRPC by trtclient")
    return struct.pack(f"<{len(values)}{code}", *values)


def decode_tensor(datatype: str, raw: bytes) -> list[Any]:
    """Elements of one output tensor from its raw contents (BYTES decoded as UTF-8 text)."""
    if datatype == "BYTES":
        items: list[Any] = []
        pos = 0
        while pos + 4 <= len(raw):
            (size,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            items.append(raw[pos : pos + size].decode("utf-8", "replace"))
            pos += size
        return items
    code = _STRUCT_CODES.get(datatype)
    if code is None:
        return []
    count = len(raw) // struct.calcsize(code)
    return list(struct.unpack(f"<{count}{code}", raw[: count * struct.calcsize(code)]))


def build_infer_request(model: str, body: Mapping[str, Any], inputs: ModelInputs) -> pb.ModelInferRequest:
    """One ``ModelInferRequest`` carrying the same inputs, id and parameters as the HTTP body."""
    request = pb.ModelInferRequest(model_name=model)
    for name, value in body.items():
        if name == "id":
            request.id = str(value)
            continue
        if name == "parameters":
            for key, param in value.items():
                _set_parameter(request.parameters[key], param)
            continue
        values = value if isinstance(value, list) else [value]
        datatype = inputs.datatypes.get(name, "")
        tensor = request.inputs.add(name=name, datatype=datatype)
        tensor.shape.extend(tensor_shape(inputs.shapes.get(name, ()), len(values)))
        request.raw_input_contents.append(encode_tensor(datatype, values))
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


def _set_parameter(target: pb.InferParameter, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def response_data(response: pb.ModelInferResponse) -> tuple[dict[str, Any], bool]:
    """A response as the JSON-shaped dict of the HTTP endpoints, and whether it is the final one."""
    data: dict[str, Any] = {}
    final = False
    for key, param in response.parameters.items():
        kind = param.WhichOneof("parameter_choice")
        value = getattr(param, kind) if kind else None
        if key == _FINAL:
            final = bool(value)
        else:
            data[key] = value
    for index, output in enumerate(response.outputs):
        if index < len(response.raw_output_contents):
            values = decode_tensor(output.datatype, response.raw_output_contents[index])
        else:
            values = _contents_values(output)
        data[output.name] = values[0] if len(values) == 1 else values
    if not data and not response.model_name:
        return data, final
    data["model_name"] = response.model_name
    data["model_version"] = response.model_version
    if response.id:
        data["id"] = response.id
    return data, final


def _contents_values(output: pb.ModelInferResponse.InferOutputTensor) -> list[Any]:
    contents = output.contents
    for field_name in (
        "bytes_contents",
        "bool_contents",
        "int_contents",
        "int64_contents",
        "uint_contents",
        "uint64_contents",
        "fp32_contents",
        "fp64_contents",
    ):
        values = list(getattr(contents, field_name))
        if values:
            if field_name == "bytes_contents":
                return [v.decode("utf-8", "replace") for v in values]
            return values
    return []


def has_outputs(response: pb.ModelInferResponse) -> bool:
    return len(response.outputs) > 0


# --- errors ---------------------------------------------------------------------------------------

_STATUS_BY_CODE = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 400,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 503,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
}


#: Details gRPC's own core gives a call whose connection broke (Triton's errors never read like this).
_BROKEN_CONNECTION = (
    "socket closed",
    "stream removed",
    "connection reset",
    "broken pipe",
    "internal error from core",
    "rst_stream",
    "goaway",
)


def map_rpc_error(exc: grpc.RpcError, target: str, *, in_stream: bool = False) -> errors.TritonError:
    """Translate a failed gRPC call into the trtclient exception tree.

    ``in_stream``: the failure ended a stream call already under way (the request was sent, tokens may
    have arrived), so a connection that broke is a disconnect, not a failure to connect.
    """
    code_obj = exc.code() if hasattr(exc, "code") else None
    code = code_obj.name if code_obj is not None else "UNKNOWN"
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    if code == "DEADLINE_EXCEEDED":
        return errors.TotalTimeoutError(f"gRPC call to {target} exceeded its deadline", url=target)
    if code == "UNAVAILABLE" and "restricted" in details:
        return errors.AccessDeniedError(details, status_code=403, url=target, grpc_code=code)
    lowered = details.lower()
    if (
        in_stream
        and code in ("UNAVAILABLE", "INTERNAL", "UNKNOWN")
        and "failed to connect" not in lowered
        and any(word in lowered for word in _BROKEN_CONNECTION)
    ):
        return errors.TritonDisconnectedError(f"gRPC stream from {target} dropped: {details}", url=target)
    if code == "UNAVAILABLE" and any(
        word in details.lower()
        for word in ("connect", "connection refused", "dns", "socket closed", "handshake")
    ):
        return errors.TritonConnectionError(f"cannot connect to {target}: {details}", url=target)
    if code == "CANCELLED":
        return errors.TritonDisconnectedError(f"gRPC call to {target} was cancelled: {details}", url=target)
    status = _STATUS_BY_CODE.get(code, 500)
    return status_error_class(status)(details, status_code=status, url=target, grpc_code=code)


def stream_error(message: str, target: str, count: int) -> errors.TritonStreamError:
    return errors.TritonStreamError(message, url=target, events_received=count)


# --- channels -------------------------------------------------------------------------------------


def channel_credentials(
    verify: bool | str | ssl.SSLContext, cert: str | tuple[str, str] | None
) -> grpc.ChannelCredentials:
    if verify is False or isinstance(verify, ssl.SSLContext):
        raise errors.RequestValidationError(
            "gRPC over TLS needs verify=True or a CA bundle path (it cannot skip verification "
            "or take an ssl.SSLContext)"
        )
    root = _read(verify) if isinstance(verify, str) else None
    key = chain = None
    if cert is not None:
        certfile, keyfile = (cert, cert) if isinstance(cert, str) else cert
        chain, key = _read(certfile), _read(keyfile)
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise errors.RequestValidationError(f"cannot read {path!r}: {exc.strerror}") from None


def single_response(chunks: list[StreamChunk], target: str) -> GenerateResponse:
    """What /generate would return: exactly one response, else the same error Triton gives."""
    if len(chunks) != 1:
        raise errors.ErrorBodyError(
            f"generate expects model to produce exactly 1 response, got {len(chunks)} over gRPC",
            url=target,
        )
    return chunks[0].response


def as_dict(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return result


def metadata_dict(message: Any) -> dict[str, Any]:
    data = as_dict(message)
    for key in ("inputs", "outputs"):
        for tensor in data.get(key) or []:
            tensor["shape"] = [int(dim) for dim in tensor.get("shape") or []]
    return data
