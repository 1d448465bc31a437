"""The same generate requests over Triton's gRPC ``ModelStreamInfer`` stream.

A request body built by :func:`trtclient.protocol.build_body` becomes one ``ModelInferRequest``:
each input a tensor shaped by the rule Triton's HTTP front-end applies to generate requests (the
innermost variable dimension takes the element count, other variable dimensions 1), ``id`` the
request id, ``parameters`` request parameters, plus ``triton_enable_empty_final_response`` so
every response carries ``triton_final_response`` and the end of the stream is explicit (server
``src/grpc/stream_infer_handler.cc``). Responses are turned back into the JSON-shaped dict the
HTTP endpoints send (one-element tensors as scalars, BYTES as text), so both front-ends yield the
same :class:`~trtclient.schema.StreamChunk` objects.

The stubs and messages are tritonclient's generated ``service_pb2``/``service_pb2_grpc``; the
channel is ``grpc.aio`` for the async client and a blocking ``grpc`` channel for the sync one.
Deadlines: unary calls use the read timeout; streams use the total timeout, and the async stream
also fails when no message arrives within the read timeout (the blocking one cannot).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from trtclient import errors
from trtclient._base import BaseStream, Endpoint
from trtclient.inputs import ModelInputs
from trtclient.options import Timeout
from trtclient.responses import status_error_class
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.streaming import StreamState
from trtclient.timing import now_ns

if TYPE_CHECKING:
    from trtclient.client import AsyncGenerateStream
    from trtclient.sync_client import GenerateStream

__all__ = [
    "AsyncGRPCTransport",
    "GRPCTransport",
    "build_infer_request",
    "decode_tensor",
    "encode_tensor",
    "map_rpc_error",
    "response_data",
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
_CHANNEL_OPTIONS = [
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


def _has_outputs(response: pb.ModelInferResponse) -> bool:
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


def _stream_error(message: str, target: str, count: int) -> errors.TritonStreamError:
    return errors.TritonStreamError(message, url=target, events_received=count)


# --- channels -------------------------------------------------------------------------------------


def _credentials(
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


class _GRPCConfig:
    """Target, credentials, metadata, deadlines and channel: what both gRPC transports share.

    ``_channels`` is the module whose ``secure_channel``/``insecure_channel`` a transport uses.
    """

    _channels: ClassVar[Any]

    def __init__(
        self,
        url: str,
        *,
        timeout: Timeout,
        headers: Mapping[str, str],
        verify: bool | str | ssl.SSLContext,
        cert: str | tuple[str, str] | None,
    ) -> None:
        self.tls = url.startswith("grpcs://")
        self.target = url.removeprefix("grpcs://")
        self.credentials = _credentials(verify, cert) if self.tls else None
        # gRPC metadata keys must be lower case.
        self.metadata = tuple((name.lower(), value) for name, value in headers.items())
        self.timeout = timeout
        self.unary_deadline = (
            timeout.read if timeout.total is None else min(timeout.read or timeout.total, timeout.total)
        )
        if self.credentials is not None:
            self.channel = self._channels.secure_channel(
                self.target, self.credentials, options=_CHANNEL_OPTIONS
            )
        else:
            self.channel = self._channels.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    @classmethod
    def for_endpoint(cls: type[_TransportT], endpoint: Endpoint) -> _TransportT:
        """A transport to the client's endpoint."""
        return cls(
            endpoint.url,
            timeout=endpoint.timeout,
            headers=endpoint.headers,
            verify=endpoint.verify,
            cert=endpoint.cert,
        )

    def _stream_state(self, stream: BaseStream[Any] | None, inputs: ModelInputs) -> StreamState:
        """The state a call's responses fill, once its headers came: the stream's, or generate's own."""
        if stream is None:
            return StreamState(inputs.text_mode, url=self.target)
        stream.headers_ns = now_ns()
        stream.status_code = 200
        stream.state.url = stream.url
        return stream.state


_TransportT = TypeVar("_TransportT", bound=_GRPCConfig)


class AsyncGRPCTransport(_GRPCConfig):
    """Triton's gRPC API over one ``grpc.aio`` channel (created on first use, inside the loop)."""

    _channels = grpc.aio

    async def aclose(self) -> None:
        await self.channel.close()

    async def _unary(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(
                request, metadata=self.metadata, timeout=self.unary_deadline
            )
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, self.target) from exc

    async def server_live(self) -> bool:
        return bool((await self._unary("ServerLive", pb.ServerLiveRequest())).live)

    async def server_ready(self) -> bool:
        return bool((await self._unary("ServerReady", pb.ServerReadyRequest())).ready)

    async def model_ready(self, model: str, version: str | None) -> bool:
        try:
            response = await self._unary(
                "ModelReady", pb.ModelReadyRequest(name=model, version=version or "")
            )
        except errors.TritonStatusError:
            return False
        return bool(response.ready)

    async def server_metadata(self) -> dict[str, Any]:
        return _as_dict(await self._unary("ServerMetadata", pb.ServerMetadataRequest()))

    async def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary(
            "ModelMetadata", pb.ModelMetadataRequest(name=model, version=version or "")
        )
        return _metadata_dict(response)

    async def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary("ModelConfig", pb.ModelConfigRequest(name=model, version=version or ""))
        return _as_dict(response.config)

    async def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        response = await self._unary("RepositoryIndex", pb.RepositoryIndexRequest(ready=ready))
        return [_as_dict(item) for item in response.models]

    async def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary(
            "ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version or "")
        )
        return _as_dict(response)

    async def generate(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None
    ) -> GenerateResponse:
        assert inputs is not None
        source = await self._start(model, body, inputs, None)
        chunks: list[StreamChunk] = []
        try:
            while True:
                batch = await source.read()
                if batch is None:
                    break
                chunks.extend(batch)
        finally:
            source.close()
        return _single_response(chunks, self.target)

    async def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: AsyncGenerateStream
    ) -> _AsyncGRPCSource:
        assert inputs is not None
        return await self._start(model, body, inputs, stream)

    async def _start(
        self, model: str, body: dict[str, Any], inputs: ModelInputs, stream: AsyncGenerateStream | None
    ) -> _AsyncGRPCSource:
        request = build_infer_request(model, body, inputs)
        target = self.target
        if stream is not None:
            stream.url = f"grpc://{target}/{model}"
            stream.sent_ns = now_ns()

        async def requests() -> Any:
            yield request

        call = self.stub.ModelStreamInfer(requests(), metadata=self.metadata, timeout=self.timeout.total)
        try:
            await call.initial_metadata()
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, target, in_stream=True) from exc
        return _AsyncGRPCSource(call, self._stream_state(stream, inputs), target, self.timeout.read)


class _GRPCReader:
    """What a reader of one ``ModelStreamInfer`` call makes of each message, without reading it.

    After the final response the call is left to finish on its own (the request side is already
    half-closed): cancelling a call Triton has just completed leaves the ensemble busy on 2.51, which
    then delays the server's shutdown past its exit timeout. Calls stopped early are cancelled.
    """

    def __init__(self, call: Any, state: StreamState, target: str) -> None:
        self.call = call
        self.state = state
        self.target = target
        self._closed = False
        self._final = False

    def _chunks(self, message: Any, arrival: int) -> tuple[list[StreamChunk], bool]:
        """The chunks of one message (none for an empty final response) and whether it is the final one;
        raises the error the message carries."""
        if message.error_message:
            self.close()
            raise _stream_error(message.error_message, self.target, self.state.count)
        response = message.infer_response
        data, final = response_data(response)
        chunks = [self.state.chunk_from_data(data, None, arrival)] if _has_outputs(response) else []
        if final:
            self._final = True
        return chunks, final

    def _ended(self) -> None:
        """The server ended the call: no more chunks."""
        self._closed = True
        self.state.finish()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.call.cancel()


class _AsyncGRPCSource(_GRPCReader):
    """Reads the responses of one ``ModelStreamInfer`` call until the final one (and the call's end)."""

    def __init__(self, call: Any, state: StreamState, target: str, read_timeout: float | None) -> None:
        super().__init__(call, state, target)
        self.read_timeout = read_timeout

    async def read(self) -> list[StreamChunk] | None:
        if self._closed:
            return None
        if self._final:
            await self._drain()
            return None
        try:
            if self.read_timeout is None:
                message = await self.call.read()
            else:
                message = await asyncio.wait_for(self.call.read(), self.read_timeout)
        except TimeoutError:
            self.close()
            raise errors.ReadTimeoutError(
                f"no message from {self.target} within the read timeout", url=self.target
            ) from None
        except grpc.RpcError as exc:
            self.close()
            raise map_rpc_error(exc, self.target, in_stream=True) from exc
        arrival = now_ns()
        if message is grpc.aio.EOF:
            self._ended()
            return None
        chunks, final = self._chunks(message, arrival)
        if final and not chunks:
            await self._drain()
            self.state.finish()
            return None
        return chunks

    async def _drain(self) -> None:
        """Wait for the server to end the call after its final response."""
        self._closed = True
        try:
            await asyncio.wait_for(self.call.code(), self.read_timeout)
        except (TimeoutError, grpc.RpcError):
            self.call.cancel()


class GRPCTransport(_GRPCConfig):
    """Triton's gRPC API over one blocking channel (safe to share between threads)."""

    _channels = grpc

    def close(self) -> None:
        self.channel.close()

    def _unary(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=self.unary_deadline)
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, self.target) from exc

    def server_live(self) -> bool:
        return bool(self._unary("ServerLive", pb.ServerLiveRequest()).live)

    def server_ready(self) -> bool:
        return bool(self._unary("ServerReady", pb.ServerReadyRequest()).ready)

    def model_ready(self, model: str, version: str | None) -> bool:
        try:
            response = self._unary("ModelReady", pb.ModelReadyRequest(name=model, version=version or ""))
        except errors.TritonStatusError:
            return False
        return bool(response.ready)

    def server_metadata(self) -> dict[str, Any]:
        return _as_dict(self._unary("ServerMetadata", pb.ServerMetadataRequest()))

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return _metadata_dict(
            self._unary("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version or ""))
        )

    def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return _as_dict(
            self._unary("ModelConfig", pb.ModelConfigRequest(name=model, version=version or "")).config
        )

    def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        return [
            _as_dict(item)
            for item in self._unary("RepositoryIndex", pb.RepositoryIndexRequest(ready=ready)).models
        ]

    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        return _as_dict(
            self._unary("ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version or ""))
        )

    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse:
        assert inputs is not None
        source = self._start(model, body, inputs, None)
        chunks: list[StreamChunk] = []
        try:
            while True:
                batch = source.read()
                if batch is None:
                    break
                chunks.extend(batch)
        finally:
            source.close()
        return _single_response(chunks, self.target)

    def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: GenerateStream
    ) -> _GRPCSource:
        assert inputs is not None
        return self._start(model, body, inputs, stream)

    def _start(
        self, model: str, body: dict[str, Any], inputs: ModelInputs, stream: GenerateStream | None
    ) -> _GRPCSource:
        request = build_infer_request(model, body, inputs)
        if stream is not None:
            stream.url = f"grpc://{self.target}/{model}"
            stream.sent_ns = now_ns()
        call = self.stub.ModelStreamInfer(iter([request]), metadata=self.metadata, timeout=self.timeout.total)
        if stream is not None:
            try:
                call.initial_metadata()
            except grpc.RpcError as exc:
                raise map_rpc_error(exc, self.target, in_stream=True) from exc
        return _GRPCSource(call, self._stream_state(stream, inputs), self.target)


class _GRPCSource(_GRPCReader):
    """Blocking reader of one ``ModelStreamInfer`` call until the final response (and the call's end)."""

    def __init__(self, call: Any, state: StreamState, target: str) -> None:
        super().__init__(call, state, target)
        self.messages: Iterator[Any] = iter(call)

    def read(self) -> list[StreamChunk] | None:
        if self._closed:
            return None
        if self._final:
            self._drain()
            return None
        try:
            message = next(self.messages, None)
        except grpc.RpcError as exc:
            self.close()
            raise map_rpc_error(exc, self.target, in_stream=True) from exc
        arrival = now_ns()
        if message is None:
            self._ended()
            return None
        chunks, final = self._chunks(message, arrival)
        if final and not chunks:
            self._drain()
            self.state.finish()
            return None
        return chunks

    def _drain(self) -> None:
        self._closed = True
        try:
            for _ in self.messages:
                pass
        except grpc.RpcError:
            self.call.cancel()


def _single_response(chunks: list[StreamChunk], target: str) -> GenerateResponse:
    """What /generate would return: exactly one response, else the same error Triton gives."""
    if len(chunks) != 1:
        raise errors.ErrorBodyError(
            f"generate expects model to produce exactly 1 response, got {len(chunks)} over gRPC",
            url=target,
        )
    return chunks[0].response


def _as_dict(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return result


def _metadata_dict(message: Any) -> dict[str, Any]:
    data = _as_dict(message)
    for key in ("inputs", "outputs"):
        for tensor in data.get(key) or []:
            tensor["shape"] = [int(dim) for dim in tensor.get("shape") or []]
    return data
