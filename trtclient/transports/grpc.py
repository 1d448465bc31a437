"""Triton's gRPC API: the same generate requests over the ``ModelStreamInfer`` stream, the admin calls
as unary RPCs. Both I/O styles side by side: ``grpc.aio`` for the async client, a blocking channel for
the sync one. Tensors, response decoding and error mapping are :mod:`trtclient.transports.grpc_codec`.

Deadlines: unary calls use the read timeout; streams use the total timeout, and the async stream also
fails when no message arrives within the read timeout (the blocking one cannot).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from trtclient import errors
from trtclient.inputs import ModelInputs
from trtclient.options import Timeout
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.streaming import StreamHead, StreamState
from trtclient.timing import now_ns
from trtclient.transports.base import Endpoint, SendGate
from trtclient.transports.grpc_codec import (
    CHANNEL_OPTIONS,
    as_dict,
    build_infer_request,
    channel_credentials,
    has_outputs,
    map_rpc_error,
    metadata_dict,
    response_data,
    single_response,
    stream_error,
)

__all__ = ["AsyncGRPCTransport", "GRPCTransport"]

STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"


def _handed_over(payload: bytes, head: StreamHead) -> Iterator[bytes]:
    """The request's one message for gRPC's writer, stamping ``sent_ns`` as gRPC takes it: gRPC asks
    for the next message when it is about to write it, and writes the bytes as they are."""
    head.sent_ns = now_ns()
    yield payload


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
        self.credentials = channel_credentials(verify, cert) if self.tls else None
        # gRPC metadata keys must be lower case.
        self.metadata = tuple((name.lower(), value) for name, value in headers.items())
        self.timeout = timeout
        self.unary_deadline = (
            timeout.read if timeout.total is None else min(timeout.read or timeout.total, timeout.total)
        )
        if self.credentials is not None:
            self.channel = self._channels.secure_channel(
                self.target, self.credentials, options=CHANNEL_OPTIONS
            )
        else:
            self.channel = self._channels.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        # ModelStreamInfer taking requests the client has already serialised: gRPC's write then does no
        # serialising of its own, so the moment the bytes are handed to it (``sent_ns``) is known.
        self.stream_infer = self.channel.stream_stream(
            STREAM_INFER,
            request_serializer=None,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )

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
        return as_dict(await self._unary("ServerMetadata", pb.ServerMetadataRequest()))

    async def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary(
            "ModelMetadata", pb.ModelMetadataRequest(name=model, version=version or "")
        )
        return metadata_dict(response)

    async def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary("ModelConfig", pb.ModelConfigRequest(name=model, version=version or ""))
        return as_dict(response.config)

    async def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        response = await self._unary("RepositoryIndex", pb.RepositoryIndexRequest(ready=ready))
        return [as_dict(item) for item in response.models]

    async def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        response = await self._unary(
            "ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version or "")
        )
        return as_dict(response)

    async def generate(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None
    ) -> GenerateResponse:
        assert inputs is not None
        source = await self._start(model, body, inputs, StreamHead(), StreamState(inputs.text_mode), None)
        chunks: list[StreamChunk] = []
        try:
            while True:
                batch = await source.read()
                if batch is None:
                    break
                chunks.extend(batch)
        finally:
            source.close()
        return single_response(chunks, self.target)

    async def open_stream(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
        gate: SendGate | None = None,
    ) -> _AsyncGRPCSource:
        assert inputs is not None
        return await self._start(model, body, inputs, head, state, gate)

    async def _start(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs,
        head: StreamHead,
        state: StreamState,
        gate: SendGate | None,
    ) -> _AsyncGRPCSource:
        payload = build_infer_request(model, body, inputs).SerializeToString()
        target = self.target
        head.url = state.url = f"grpc://{target}/{model}"

        async def requests() -> Any:
            # Runs in grpc.aio's writer task, which passes the message straight to its write.
            if gate is not None:
                await gate()
            for message in _handed_over(payload, head):
                yield message

        call = self.stream_infer(requests(), metadata=self.metadata, timeout=self.timeout.total)
        try:
            await call.initial_metadata()
        except grpc.RpcError as exc:
            raise map_rpc_error(exc, target, in_stream=True) from exc
        _headers_came(head)
        return _AsyncGRPCSource(call, state, target, self.timeout.read)


def _headers_came(head: StreamHead) -> None:
    """The call's initial metadata arrived: gRPC's equivalent of a 200 response head."""
    head.headers_ns = now_ns()
    head.status_code = 200


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
            raise stream_error(message.error_message, self.target, self.state.count)
        response = message.infer_response
        data, final = response_data(response)
        chunks = [self.state.chunk_from_data(data, None, arrival)] if has_outputs(response) else []
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
        return as_dict(self._unary("ServerMetadata", pb.ServerMetadataRequest()))

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return metadata_dict(
            self._unary("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version or ""))
        )

    def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return as_dict(
            self._unary("ModelConfig", pb.ModelConfigRequest(name=model, version=version or "")).config
        )

    def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        return [
            as_dict(item)
            for item in self._unary("RepositoryIndex", pb.RepositoryIndexRequest(ready=ready)).models
        ]

    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        return as_dict(
            self._unary("ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version or ""))
        )

    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse:
        assert inputs is not None
        source = self._start(model, body, inputs, StreamHead(), StreamState(inputs.text_mode), wait=False)
        chunks: list[StreamChunk] = []
        try:
            while True:
                batch = source.read()
                if batch is None:
                    break
                chunks.extend(batch)
        finally:
            source.close()
        return single_response(chunks, self.target)

    def open_stream(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
    ) -> _GRPCSource:
        assert inputs is not None
        return self._start(model, body, inputs, head, state, wait=True)

    def _start(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs,
        head: StreamHead,
        state: StreamState,
        *,
        wait: bool,
    ) -> _GRPCSource:
        payload = build_infer_request(model, body, inputs).SerializeToString()
        head.url = state.url = f"grpc://{self.target}/{model}"
        call = self.stream_infer(
            _handed_over(payload, head), metadata=self.metadata, timeout=self.timeout.total
        )
        if wait:  # a stream reports failures to start at open; generate() reads them with the responses
            try:
                call.initial_metadata()
            except grpc.RpcError as exc:
                raise map_rpc_error(exc, self.target, in_stream=True) from exc
            _headers_came(head)
        return _GRPCSource(call, state, self.target)


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
