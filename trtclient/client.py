"""``AsyncTritonClient``: Triton's generate endpoints and HTTP API, asynchronously.

HTTP goes through aiohttp with one shared connection pool sized for thousands of concurrent streams;
streamed bodies are read as they arrive, stamped, and decoded by the I/O-free :mod:`trtclient.sse`
and :mod:`trtclient.protocol`. ``transport="grpc"`` sends the same requests over Triton's gRPC
stream instead (:mod:`trtclient.grpc_transport`). Options, validation and stream bookkeeping are the
I/O-free :mod:`trtclient._base`, shared with the blocking client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
import weakref
from collections.abc import Awaitable, Callable
from types import SimpleNamespace, TracebackType
from typing import Any, Protocol, TypeVar, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler

from trtclient import errors, rxstamp
from trtclient._base import BaseClient, BaseStream, Closable, Endpoint
from trtclient.constants import USER_AGENT
from trtclient.inputs import ModelInputs, build_body, encode_body, make_request
from trtclient.options import JSON_HEADERS, safe_headers, ssl_option
from trtclient.prometheus import Sample, parse_metrics
from trtclient.responses import json_object, parse_generate_body, parse_json, repository_list, response_error
from trtclient.schema import (
    GenerateRequest,
    GenerateResponse,
    ModelMetadata,
    ModelStats,
    RepositoryModel,
    ServerMetadata,
    StreamChunk,
)
from trtclient.sse import SSEDecoder
from trtclient.streaming import StreamState, TextMode, chunks_from_events, text_mode_from_config
from trtclient.timing import now_ns
from trtclient.urls import model_path, redact_url, stats_path, version_param

__all__ = ["AsyncGenerateStream", "AsyncTritonClient"]

T = TypeVar("T")


class AsyncChunkSource(Closable, Protocol):
    """One open streamed response, as a transport delivers it."""

    async def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""


class AsyncTransport(Protocol):
    """What the client needs from a transport; HTTP and gRPC both provide it."""

    async def server_live(self) -> bool: ...
    async def server_ready(self) -> bool: ...
    async def model_ready(self, model: str, version: str | None) -> bool: ...
    async def server_metadata(self) -> dict[str, Any]: ...
    async def model_metadata(self, model: str, version: str | None) -> dict[str, Any]: ...
    async def model_config(self, model: str, version: str | None) -> dict[str, Any]: ...
    async def repository_index(self, ready: bool) -> list[dict[str, Any]]: ...
    async def model_statistics(self, model: str, version: str | None) -> dict[str, Any]: ...
    async def generate(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None
    ) -> GenerateResponse: ...
    async def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: AsyncGenerateStream
    ) -> AsyncChunkSource: ...
    async def aclose(self) -> None: ...


class AsyncTritonClient(BaseClient):
    """Async client of one Triton server (HTTP by default, or gRPC), usable as an async context manager.

    ``url``: ``http(s)://host:port`` (gRPC: ``host:port``); ``model``: default model of generate calls;
    ``timeout``: a :class:`~trtclient.protocol.Timeout`, a number (connect and read seconds) or None;
    ``headers``: sent with every request (values never logged or shown); ``verify``/``cert``: TLS
    options; ``max_retries``: opt-in retries of connection failures and 503s before any event (a count,
    or a :class:`~trtclient.protocol.RetryPolicy` with its own delays);
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
            from trtclient.grpc_transport import AsyncGRPCTransport

            impl = AsyncGRPCTransport.for_endpoint(endpoint)
        else:
            impl = _AsyncHTTPTransport(
                endpoint, connections=self._connections, kernel_stamps=self.kernel_stamps
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
            session = self._metrics_session = _make_session(self._endpoint(), connections=4)
        url = self.metrics_url
        try:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise response_error(response.status, body, url=url)
        except aiohttp.ClientError as exc:
            raise _map_error(exc, url, sent=False) from exc
        except TimeoutError as exc:
            raise _map_error(exc, url, sent=True) from exc
        return parse_metrics(body.decode("utf-8", "replace"))


class AsyncGenerateStream(BaseStream[AsyncChunkSource]):
    """A streamed response: an async iterator of :class:`StreamChunk` and an async context manager.

    Filled as it progresses: ``start_ns`` (call began, before the pool), ``sent_ns`` (request
    written), ``headers_ns`` (response headers arrived), ``first_arrival_ns``/``last_arrival_ns``
    (events), ``status_code``, ``response_headers`` (credentials redacted), ``events`` (chunks so
    far), ``text`` (full text so far), ``attempts``, ``arrival_clock`` (``"kernel"`` when event
    arrivals are the kernel's receive times, else ``"read"``). All stamps are
    ``trtclient.timing.now_ns()``.
    """

    def __init__(self, client: AsyncTritonClient, request: GenerateRequest, model: str) -> None:
        super().__init__(request, model)
        self._client = client
        self._ready: collections.deque[StreamChunk] = collections.deque()

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
        body = self._next_body(inputs, client.text_mode)
        source = await impl.open_stream(self.model, body, inputs, self)
        self.state.url = self.url
        return source


# --- HTTP over aiohttp ----------------------------------------------------------------------------


class _StampingHandler(ResponseHandler):
    """aiohttp's connection protocol, on a transport that reads with kernel receive timestamps."""

    rx: rxstamp.RxClock | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The body aiohttp's parser is filling (a private member; without it, events after the first
        # read of a body fall back to read stamps, and the stream says so).
        self.rx = rxstamp.install(transport, lambda: getattr(self, "_payload", None))


def _make_session(
    endpoint: Endpoint,
    *,
    connections: int,
    trace: aiohttp.TraceConfig | None = None,
    kernel_stamps: bool = False,
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=0, ssl=ssl_option(endpoint.verify, endpoint.cert)
    )
    if kernel_stamps and rxstamp.keep_enabled() and hasattr(connector, "_factory"):
        # The connector builds each connection's protocol from this factory (aiohttp internals; a
        # version without it keeps stamping reads).
        factory = functools.partial(_StampingHandler, loop=asyncio.get_running_loop())
        connector._factory = cast("functools.partial[ResponseHandler]", factory)
    timeout = endpoint.timeout
    client_timeout = aiohttp.ClientTimeout(
        total=timeout.total, sock_connect=timeout.connect, sock_read=timeout.read
    )
    base_headers = {"User-Agent": USER_AGENT, **endpoint.headers}
    return aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout,
        headers=base_headers,
        trace_configs=[trace] if trace is not None else None,
        raise_for_status=False,
        auto_decompress=True,
    )


class _SentStamp:
    """Receives the time the request headers were written. The trace context must not refer to the
    stream: aiohttp keeps it alive with the connection, and the stream has to be collectable for a
    consumer's early ``break`` to close that connection."""

    __slots__ = ("ns",)

    def __init__(self) -> None:
        self.ns = 0


async def _on_headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    stamp = context.trace_request_ctx
    if isinstance(stamp, _SentStamp):
        stamp.ns = now_ns()


def _map_error(exc: BaseException, url: str, *, sent: bool) -> errors.TritonError:
    """Translate an aiohttp/asyncio failure into the trtclient exception tree."""
    shown = redact_url(url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return errors.ConnectTimeoutError(f"connecting to {shown} timed out", url=shown)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return _read_timeout(url)
    if isinstance(exc, TimeoutError):
        return errors.TotalTimeoutError(f"request to {shown} exceeded the total timeout", url=shown)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.TritonConnectionError(f"cannot connect to {shown}: {exc.os_error or exc}", url=shown)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return errors.TritonDisconnectedError(f"connection to {shown} dropped: {exc}", url=shown)
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        if sent:
            return errors.TritonDisconnectedError(f"connection to {shown} failed: {exc}", url=shown)
        return errors.TritonConnectionError(f"cannot connect to {shown}: {exc}", url=shown)
    if isinstance(exc, aiohttp.ClientResponseError):
        return errors.TritonTransportError(f"invalid HTTP response from {shown}: {exc.message}", url=shown)
    return errors.TritonTransportError(f"request to {shown} failed: {exc!r}", url=shown)


def _read_timeout(url: str) -> errors.ReadTimeoutError:
    shown = redact_url(url)
    return errors.ReadTimeoutError(f"no data from {shown} within the read timeout", url=shown)


class _AsyncHTTPTransport:
    """Triton's HTTP/REST API over one aiohttp session."""

    def __init__(self, endpoint: Endpoint, *, connections: int, kernel_stamps: bool = False) -> None:
        self.url = endpoint.url
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        trace.freeze()
        # aiohttp binds a session to the running loop: the client builds its transport lazily, from
        # its first awaited call, so the session is always created inside the loop that uses it.
        self.session = _make_session(
            endpoint, connections=connections, trace=trace, kernel_stamps=kernel_stamps
        )
        read = endpoint.timeout.read
        self.watchdog = _ReadWatchdog(read) if read is not None else None

    async def aclose(self) -> None:
        if self.watchdog is not None:
            await self.watchdog.stop()
        await self.session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, bytes]:
        url = self.url + path
        try:
            async with self.session.request(method, url, data=body, headers=JSON_HEADERS) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=True) from exc
        if status not in ok:
            raise response_error(status, payload, url=url)
        return status, payload

    async def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        _, payload = await self._request(method, path, body)
        return parse_json(payload, url=self.url + path)

    async def _object(self, path: str) -> dict[str, Any]:
        return json_object(await self._json("GET", path), url=self.url)

    async def _probe(self, path: str) -> bool:
        status, _ = await self._request("GET", path, ok=(200, 400, 404, 503))
        return status == 200

    async def server_live(self) -> bool:
        return await self._probe("/v2/health/live")

    async def server_ready(self) -> bool:
        return await self._probe("/v2/health/ready")

    async def model_ready(self, model: str, version: str | None) -> bool:
        return await self._probe(model_path(model, version) + "/ready")

    async def server_metadata(self) -> dict[str, Any]:
        return await self._object("/v2")

    async def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return await self._object(model_path(model, version))

    async def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return await self._object(model_path(model, version) + "/config")

    async def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        body = encode_body({"ready": ready})
        return repository_list(await self._json("POST", "/v2/repository/index", body), url=self.url)

    async def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        return await self._object(stats_path(model, version))

    async def generate(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None
    ) -> GenerateResponse:
        url = self.url + model_path(model) + "/generate"
        data = encode_body(body)
        try:
            async with self.session.post(url, data=data, headers=JSON_HEADERS) as response:
                payload = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=True) from exc
        if status != 200:
            raise response_error(status, payload, url=url, retry_after=retry_after)
        return parse_generate_body(payload, url=url)

    async def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: AsyncGenerateStream
    ) -> AsyncChunkSource:
        url = self.url + model_path(model) + "/generate_stream"
        stream.url = url
        data = encode_body(body)
        stamp = _SentStamp()
        try:
            response = await self.session.post(url, data=data, headers=JSON_HEADERS, trace_request_ctx=stamp)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=bool(stamp.ns)) from exc
        stream.headers_ns = now_ns()
        headers_wall_ns = time.time_ns()
        stream.sent_ns = stamp.ns
        stream.status_code = response.status
        stream.response_headers = safe_headers(response.headers)
        if response.status != 200:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                response.close()
                raise _map_error(exc, url, sent=True) from exc
            finally:
                response.release()
            raise response_error(
                response.status, payload, url=url, retry_after=response.headers.get("Retry-After")
            )
        handler = response.connection.protocol if response.connection is not None else None
        rx: rxstamp.RxClock | None = getattr(handler, "rx", None)
        body_clock = None
        if rx is not None and rx.reads:
            # The headers were complete by the latest read before now: stamp them with its arrival.
            body_clock = rx.attach(response.content)
            kernel_ns = body_clock.headers_kernel_ns
            stream.headers_ns = rxstamp.local_stamp(kernel_ns, stream.headers_ns, headers_wall_ns, stamp.ns)
            stream.arrival_clock = "kernel"
        else:
            rx = None
        source = _AiohttpSource(response, stream.state, url, self.watchdog, rx, body_clock, stream)
        if self.watchdog is not None and handler is not None:
            # aiohttp re-arms a timer on every packet for its read timeout; during the body the
            # watchdog checks silence instead, at no cost per event.
            handler.read_timeout = None
            self.watchdog.add(source)
        return source


class _AiohttpSource:
    """Reads one SSE body as it arrives: stamp each read, decode events, parse chunks."""

    __slots__ = (
        "_closed",
        "_expired",
        "_pending",
        "body_clock",
        "content",
        "decoder",
        "floor_ns",
        "last_read_ns",
        "response",
        "rx",
        "state",
        "stream_ref",
        "url",
        "watchdog",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        state: StreamState,
        url: str,
        watchdog: _ReadWatchdog | None,
        rx: rxstamp.RxClock | None = None,
        body_clock: rxstamp.BodyClock | None = None,
        stream: AsyncGenerateStream | None = None,
    ) -> None:
        self.response = response
        self.content = response.content
        self.rx = rx
        self.body_clock = body_clock
        # Weakly: the stream refers to its source, and must stay collectable by reference counting.
        self.stream_ref = weakref.ref(stream) if stream is not None else None
        self.floor_ns = stream.headers_ns if stream is not None else 0
        self.decoder = SSEDecoder()
        self.state = state
        self.url = url
        self.watchdog = watchdog
        self.last_read_ns = now_ns()
        self._closed = False
        self._expired = False
        self._pending: errors.TritonError | None = None

    async def read(self) -> list[StreamChunk] | None:
        if self._pending is not None:
            raise self._pending
        try:
            data = await self.content.readany()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.close()
            if self._expired:
                raise _read_timeout(self.url) from None
            raise _map_error(exc, self.url, sent=True) from exc
        arrival = self.last_read_ns = now_ns()
        if not data:
            if self._expired:
                raise _read_timeout(self.url)
            self.state.finish(self.decoder.finish())
            self._forget()
            self.response.release()
            return None
        clock = self.body_clock
        if clock is None:
            events = self.decoder.feed(data, arrival)
        else:
            pieces = clock.segments(data, arrival, time.time_ns(), self.floor_ns)
            if len(pieces) == 1:
                events = self.decoder.feed(*pieces[0])
            else:
                events = [event for piece in pieces for event in self.decoder.feed(*piece)]
            if clock.missed:
                self._downgrade_clock()
        if not events:
            return []
        if len(events) == 1:
            return [self.state.chunk_from_event(events[0])]
        chunks, self._pending = chunks_from_events(self.state, events)
        return chunks

    def _downgrade_clock(self) -> None:
        """Some arrivals came without a kernel stamp: the stream no longer claims kernel stamps."""
        stream = self.stream_ref() if self.stream_ref is not None else None
        if stream is not None:
            stream.arrival_clock = "read"

    def expire(self) -> None:
        """Called by the watchdog: the server has been silent too long; fail the pending read."""
        self._expired = True
        self.close()

    def close(self) -> None:
        if not self._closed:
            self.response.close()
            self._forget()

    def _forget(self) -> None:
        self._closed = True
        if self.rx is not None and self.body_clock is not None:
            self.rx.detach(self.body_clock)
        self.rx = None
        if self.watchdog is not None:
            self.watchdog.discard(self)


class _ReadWatchdog:
    """The read timeout of streamed bodies: one task per client looks at every open stream's last
    read, instead of a timer re-armed on every packet. A silent stream fails within a quarter of the
    timeout (at most 1 s) after the deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout_ns = int(timeout * 1e9)
        self.interval = min(1.0, timeout / 4)
        self.sources: set[_AiohttpSource] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, source: _AiohttpSource) -> None:
        self.sources.add(source)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, source: _AiohttpSource) -> None:
        self.sources.discard(source)

    async def _watch(self) -> None:
        try:
            while self.sources:
                await asyncio.sleep(self.interval)
                deadline = now_ns() - self.timeout_ns
                for source in [s for s in self.sources if s.last_read_ns < deadline]:
                    source.expire()
        finally:
            self.task = None

    async def stop(self) -> None:
        task = self.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
