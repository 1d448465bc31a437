"""``AsyncTritonClient``: Triton's generate endpoints and HTTP API, asynchronously.

HTTP goes through aiohttp (:mod:`trtclient.transports.aiohttp_http`: one shared connection pool sized
for thousands of concurrent streams, streamed bodies read as they arrive and stamped);
``transport="grpc"`` sends the same requests over Triton's gRPC stream instead
(:mod:`trtclient.transports.grpc`). Options, validation and stream bookkeeping are the I/O-free
:mod:`trtclient._base`, shared with the blocking client.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from trtclient import errors
from trtclient._base import BaseClient, BaseStream
from trtclient.inputs import ModelInputs, build_body, make_request
from trtclient.prometheus import Sample, parse_metrics
from trtclient.responses import response_error
from trtclient.schema import (
    GenerateRequest,
    GenerateResponse,
    ModelMetadata,
    ModelStats,
    RepositoryModel,
    ServerMetadata,
    StreamChunk,
)
from trtclient.streaming import TextMode, text_mode_from_config
from trtclient.timing import now_ns
from trtclient.transports.aiohttp_http import AsyncHTTPTransport, make_session, map_error
from trtclient.transports.base import AsyncChunkSource, AsyncTransport, SendGate
from trtclient.urls import version_param

__all__ = ["AsyncGenerateStream", "AsyncTritonClient"]

T = TypeVar("T")


class AsyncTritonClient(BaseClient):
    """Async client of one Triton server (HTTP by default, or gRPC), usable as an async context manager.

    ``url``: ``http(s)://host:port`` (gRPC: ``host:port``); ``model``: default model of generate calls;
    ``timeout``: a :class:`~trtclient.options.Timeout`, a number (connect and read seconds) or None;
    ``headers``: sent with every request (values never logged or shown); ``verify``/``cert``: TLS
    options; ``max_retries``: opt-in retries of connection failures and 503s before any event (a count,
    or a :class:`~trtclient.retry.RetryPolicy` with its own delays);
    ``connections``: pool size; ``metrics_url``: Prometheus endpoint (default: port 8002 of the host);
    ``check_inputs``: read the model's metadata once and refuse inputs it does not have;
    ``text_mode``: ``"delta"``/``"cumulative"`` to override the streamed-text detection.
    One client belongs to one event loop.

    Streamed events are stamped with the kernel's receive time of their bytes where the platform
    allows it (:mod:`trtclient.rxstamp`: Linux, plain HTTP, asyncio's own event loop), so a busy event
    loop does not delay the stamps; each stream's ``arrival_clock`` says ``"kernel"`` or ``"read"``.
    Set ``kernel_stamps = False`` on a client before its first request to stamp reads instead.
    """

    kernel_stamps: bool = True
    """Stamp streamed events with the kernel's receive time where available (see the class docs)."""

    raw_streams: bool = False
    """Read streamed calls over plain HTTP on the client's own HTTP/1.1 connections
    (:mod:`trtclient.transports.raw_stream`) rather than aiohttp's: the same chunks, head and errors
    at a fraction of the CPU per event (what ``trtclient bench`` uses). Set before the first request."""

    def _init_io(self) -> None:
        # The transport is built from the first awaited call, inside the loop that uses it.
        self._locks: dict[str, asyncio.Lock] = {}
        self._transport_impl: AsyncTransport | None = None
        self._metrics_session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncTritonClient:
        self._impl()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; the client cannot be used afterwards."""
        self._closed = True
        impl, self._transport_impl = self._transport_impl, None
        if impl is not None:
            await impl.aclose()
        session, self._metrics_session = self._metrics_session, None
        if session is not None:
            await session.close()

    def _impl(self) -> AsyncTransport:
        impl = self._transport_impl
        if impl is not None:
            return impl
        self._check_open()
        endpoint = self._endpoint()
        if self.transport == "grpc":
            from trtclient.transports.grpc import AsyncGRPCTransport

            impl = AsyncGRPCTransport.for_endpoint(endpoint)
        else:
            impl = AsyncHTTPTransport(
                endpoint,
                connections=self._connections,
                kernel_stamps=self.kernel_stamps,
                raw_streams=self.raw_streams,
            )
        self._transport_impl = impl
        return impl

    # --- generate ---------------------------------------------------------------------------------

    async def generate(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> GenerateResponse:
        """One request to ``/generate``; returns the model's single response.

        ``prompt`` is the text (``inputs`` are the other ensemble inputs, e.g. ``max_tokens=20``) or
        a ready :class:`~trtclient.schema.GenerateRequest`. Streamed or multi-sequence requests need
        :meth:`generate_stream`.
        """
        request = make_request(prompt, inputs)
        name = model or self.model

        async def send(attempt: int) -> GenerateResponse:
            model_inputs = await self._inputs_for(name)
            body = build_body(request, model_inputs)
            return await self._impl().generate(name, body, model_inputs)

        return await self._retrying(send)

    def generate_stream(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> AsyncGenerateStream:
        """A streamed request to ``/generate_stream``: iterate it for :class:`StreamChunk` objects.

        The request is validated now and sent on first iteration (or ``async with``). ``stream``
        defaults to true. Use it as ``async with client.generate_stream(...) as s: async for c in s``
        so the connection is closed even when you stop early.
        """
        request = make_request(prompt, inputs)
        return AsyncGenerateStream(self, request, model or self.model)

    async def model_inputs(self, model: str | None = None) -> ModelInputs:
        """The inputs the model accepts (read once from its metadata, then cached).

        ``(await client.model_inputs()).supports("min_tokens")`` tells whether a feature is there
        under any spelling.
        """
        name = model or self.model
        cached = self._inputs.get(name)
        if cached is not None:
            return cached
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            cached = self._inputs.get(name)
            if cached is None:
                impl = self._impl()
                metadata = await impl.model_metadata(name, None)
                mode = self.text_mode or await self._detect_text_mode(impl, name)
                cached = self._inputs[name] = ModelInputs.from_metadata(metadata, mode)
        return cached

    async def _retrying(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``attempt(0)``, then ``attempt(1)``... after a pause, while it fails in a way that is retried."""
        number = 0
        while True:
            try:
                return await attempt(number)
            except errors.TritonError as exc:
                if not self._may_retry(number, exc):
                    raise
                await asyncio.sleep(self._retry_delay(number, exc))
                number += 1

    async def _inputs_for(self, model: str) -> ModelInputs | None:
        return await self.model_inputs(model) if self._reads_inputs else None

    async def _detect_text_mode(self, impl: AsyncTransport, model: str) -> TextMode:
        try:
            config = await impl.model_config(model, None)
        except errors.TritonStatusError:
            return "delta"
        return text_mode_from_config(config)

    # --- the rest of the HTTP API -----------------------------------------------------------------

    async def open_connections(self, n: int) -> None:
        """Open ``n`` keep-alive connections for streamed calls at once, ahead of a load (HTTP; gRPC
        multiplexes every stream over one channel). Failures are left for the calls to report."""
        impl = self._impl()
        if isinstance(impl, AsyncHTTPTransport):
            await impl.open_connections(n)

    async def is_server_live(self) -> bool:
        """``GET /v2/health/live``: True when the server answers 200."""
        return await self._impl().server_live()

    async def is_server_ready(self) -> bool:
        """``GET /v2/health/ready``: True when every model is ready (Triton answers 400 otherwise)."""
        return await self._impl().server_ready()

    async def is_model_ready(self, model: str | None = None, version: str | int | None = None) -> bool:
        """``GET /v2/models/{model}/ready``: False for an unknown or unready model."""
        return await self._impl().model_ready(model or self.model, version_param(version))

    async def server_metadata(self) -> ServerMetadata:
        """``GET /v2``: name, version, extensions."""
        return ServerMetadata.model_validate(await self._impl().server_metadata())

    async def model_metadata(
        self, model: str | None = None, version: str | int | None = None
    ) -> ModelMetadata:
        """``GET /v2/models/{model}``: platform, versions, inputs and outputs."""
        data = await self._impl().model_metadata(model or self.model, version_param(version))
        return ModelMetadata.model_validate(data)

    async def model_config(
        self, model: str | None = None, version: str | int | None = None
    ) -> dict[str, Any]:
        """``GET /v2/models/{model}/config``: the model configuration as JSON."""
        return await self._impl().model_config(model or self.model, version_param(version))

    async def repository_index(self, *, ready: bool = False) -> list[RepositoryModel]:
        """``POST /v2/repository/index``: every model in the repository with its state."""
        return [RepositoryModel.model_validate(item) for item in await self._impl().repository_index(ready)]

    async def model_statistics(
        self, model: str | None = None, version: str | int | None = None
    ) -> list[ModelStats]:
        """``GET /v2/models/{model}/stats``; ``model=""`` gives every model's statistics."""
        name = self.model if model is None else model
        data = await self._impl().model_statistics(name, version_param(version))
        return [ModelStats.model_validate(item) for item in data.get("model_stats") or []]

    async def metrics(self) -> list[Sample]:
        """``GET /metrics`` (Prometheus text, port 8002 by default) parsed into samples."""
        self._check_open()
        session = self._metrics_session
        if session is None:
            session = self._metrics_session = make_session(self._endpoint(), connections=4)
        url = self.metrics_url
        try:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise response_error(response.status, body, url=url)
        except aiohttp.ClientError as exc:
            raise map_error(exc, url, sent=False) from exc
        except TimeoutError as exc:
            raise map_error(exc, url, sent=True) from exc
        return parse_metrics(body.decode("utf-8", "replace"))


class AsyncGenerateStream(BaseStream[AsyncChunkSource]):
    """A streamed response: an async iterator of :class:`StreamChunk` and an async context manager.

    Filled as it progresses: ``start_ns`` (call began, before the pool), ``sent_ns`` (request
    started going out; 0 if never, kept when the call then fails), ``headers_ns`` (response headers
    arrived), ``first_arrival_ns``/``last_arrival_ns`` (events), ``status_code``, ``response_headers``
    (credentials redacted), ``events`` (chunks so far), ``text`` (full text so far), ``attempts``,
    ``arrival_clock`` (``"kernel"`` when event arrivals are the kernel's receive times, else
    ``"read"``). The transport's part of these is the stream's ``head``
    (:class:`~trtclient.streaming.StreamHead`), read-only here. All stamps are
    ``trtclient.timing.now_ns()``.
    """

    def __init__(self, client: AsyncTritonClient, request: GenerateRequest, model: str) -> None:
        super().__init__(request, model)
        self._client = client
        self._ready: collections.deque[StreamChunk] = collections.deque()
        self.send_gate: SendGate | None = None
        """Awaited just before the request's bytes are written (set it before opening the stream): the
        load engine's way to have everything before the write done ahead and write at an exact time."""

    def __aiter__(self) -> AsyncGenerateStream:
        return self

    async def __aenter__(self) -> AsyncGenerateStream:
        if self._source is None and not self._done:
            await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop receiving and close the connection (cancels the request on the server)."""
        self._stop()

    async def consume(self, on_chunk: Callable[[StreamChunk], None]) -> None:
        """Call ``on_chunk`` for every chunk, in order, to the end of the stream, then close it; raise
        what iterating would. Over HTTP the chunks are handed on from the connection's read callback,
        with no wake-up of the calling task per event: the cheaper way to take a stream whole (what
        ``trtclient bench`` does)."""
        ready = self._ready
        while ready:
            on_chunk(ready.popleft())
        source = self._source
        if source is None:
            if self._done:
                return
            source = await self._open()
        try:
            push = getattr(source, "consume", None)
            if push is not None:
                await push(on_chunk)
            else:
                while (chunks := await source.read()) is not None:
                    for chunk in chunks:
                        on_chunk(chunk)
        finally:
            await self.aclose()

    async def __anext__(self) -> StreamChunk:
        ready = self._ready
        if ready:
            return ready.popleft()
        source = self._source
        if source is None:
            if self._done:
                raise StopAsyncIteration
            source = await self._open()
        while True:
            try:
                chunks = await source.read()
            except BaseException:
                await self.aclose()
                raise
            if chunks is None:
                await self.aclose()
                raise StopAsyncIteration
            if chunks:
                if len(chunks) > 1:
                    ready.extend(chunks[1:])
                return chunks[0]

    async def _open(self) -> AsyncChunkSource:
        self.start_ns = now_ns()
        try:
            source = self._source = await self._client._retrying(self._send)
        except BaseException:
            self._done = True
            raise
        return source

    async def _send(self, attempt: int) -> AsyncChunkSource:
        self.attempts = attempt + 1
        client = self._client
        impl = client._impl()
        inputs = await client._inputs_for(self.model)
        body = self._new_attempt(inputs, client.text_mode)
        return await impl.open_stream(self.model, body, inputs, self.head, self.state, self.send_gate)
