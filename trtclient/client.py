"""``AsyncTritonClient``: Triton's generate endpoints and HTTP API, asynchronously.

HTTP goes through aiohttp with one shared connection pool sized for thousands of concurrent streams;
streamed bodies are read as they arrive, stamped, and decoded by the I/O-free :mod:`trtclient.sse`
and :mod:`trtclient.protocol`. ``transport="grpc"`` sends the same requests over Triton's gRPC
stream instead (:mod:`trtclient.grpc_transport`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
from collections.abc import Mapping
from types import SimpleNamespace, TracebackType
from typing import Any, Literal, Protocol

import aiohttp

from trtclient import errors, protocol
from trtclient.constants import DEFAULT_CONNECTIONS, DEFAULT_MODEL, USER_AGENT
from trtclient.prometheus import Sample, parse_metrics
from trtclient.protocol import DEFAULT_TIMEOUT, ModelInputs, RetryPolicy, StreamState, TextMode, Timeout
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
from trtclient.timing import now_ns

__all__ = ["AsyncGenerateStream", "AsyncTritonClient"]

logger = logging.getLogger("trtclient")

Transport = Literal["http", "grpc"]


class AsyncChunkSource(Protocol):
    """One open streamed response, as a transport delivers it."""

    async def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""

    def close(self) -> None:
        """Drop the connection or cancel the call (safe to call twice)."""


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


class AsyncTritonClient:
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
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = DEFAULT_MODEL,
        transport: Transport = "http",
        timeout: Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        verify: bool | str | ssl.SSLContext = True,
        cert: str | tuple[str, str] | None = None,
        max_retries: int | RetryPolicy = 0,
        connections: int = DEFAULT_CONNECTIONS,
        metrics_url: str | None = None,
        check_inputs: bool = True,
        text_mode: TextMode | None = None,
    ) -> None:
        if transport not in ("http", "grpc"):
            raise errors.RequestValidationError(f"transport must be 'http' or 'grpc', not {transport!r}")
        if text_mode not in (None, "delta", "cumulative"):
            raise errors.RequestValidationError(
                f"text_mode must be 'delta' or 'cumulative', not {text_mode!r}"
            )
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise errors.RequestValidationError(f"connections must be an int >= 1, not {connections!r}")
        protocol.model_path(model)
        url, moved = protocol.move_credentials(url, protocol.check_headers(headers))
        self.url = protocol.normalize_url(url, transport=transport)
        self.model = model
        self.transport: Transport = transport
        self.timeout = Timeout.of(timeout)
        self.retry = (
            max_retries if isinstance(max_retries, RetryPolicy) else RetryPolicy(max_retries=max_retries)
        )
        self.metrics_url = metrics_url or protocol.metrics_url_for(self.url)
        self.check_inputs = check_inputs
        self.text_mode = text_mode
        self._headers = moved
        self._verify = verify
        self._cert = cert
        self._connections = connections
        self._inputs: dict[str, ModelInputs] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False
        self._transport_impl: AsyncTransport | None = None
        self._metrics_session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        names = sorted(self._headers)
        return (
            f"AsyncTritonClient(url={protocol.redact_url(self.url)!r}, model={self.model!r}, "
            f"transport={self.transport!r}, headers={names})"
        )

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
        if self._closed:
            raise RuntimeError("this AsyncTritonClient is closed; create a new one")
        if self.transport == "grpc":
            from trtclient.grpc_transport import AsyncGRPCTransport

            impl = AsyncGRPCTransport(
                self.url, timeout=self.timeout, headers=self._headers, verify=self._verify, cert=self._cert
            )
        else:
            impl = _AsyncHTTPTransport(
                self.url,
                timeout=self.timeout,
                headers=self._headers,
                verify=self._verify,
                cert=self._cert,
                connections=self._connections,
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
        request = protocol.make_request(prompt, inputs)
        name = model or self.model
        attempt = 0
        while True:
            try:
                model_inputs = await self._inputs_for(name)
                body = protocol.build_body(request, model_inputs)
                return await self._impl().generate(name, body, model_inputs)
            except errors.TritonError as exc:
                if attempt >= self.retry.max_retries or not protocol.should_retry(exc):
                    raise
                await self._backoff(attempt, exc)
                attempt += 1

    def generate_stream(
        self, prompt: str | GenerateRequest, *, model: str | None = None, **inputs: Any
    ) -> AsyncGenerateStream:
        """A streamed request to ``/generate_stream``: iterate it for :class:`StreamChunk` objects.

        The request is validated now and sent on first iteration (or ``async with``). ``stream``
        defaults to true. Use it as ``async with client.generate_stream(...) as s: async for c in s``
        so the connection is closed even when you stop early.
        """
        request = protocol.make_request(prompt, inputs)
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
                cached = ModelInputs.from_metadata(metadata, mode)
                self._inputs[name] = cached
        return cached

    async def _inputs_for(self, model: str) -> ModelInputs | None:
        if self.check_inputs or self.transport == "grpc":
            return await self.model_inputs(model)
        return None

    async def _detect_text_mode(self, impl: AsyncTransport, model: str) -> TextMode:
        try:
            config = await impl.model_config(model, None)
        except errors.TritonStatusError:
            return "delta"
        return protocol.text_mode_from_config(config)

    async def _backoff(self, attempt: int, exc: BaseException) -> None:
        retry_after = exc.retry_after if isinstance(exc, errors.TritonStatusError) else None
        delay = protocol.retry_delay(attempt, self.retry, rand=random.random(), retry_after=retry_after)
        logger.info(
            "retrying in %.2f s after %s (retry %d of %d)", delay, exc, attempt + 1, self.retry.max_retries
        )
        await asyncio.sleep(delay)

    # --- the rest of the HTTP API -----------------------------------------------------------------

    async def is_server_live(self) -> bool:
        """``GET /v2/health/live``: True when the server answers 200."""
        return await self._impl().server_live()

    async def is_server_ready(self) -> bool:
        """``GET /v2/health/ready``: True when every model is ready (Triton answers 400 otherwise)."""
        return await self._impl().server_ready()

    async def is_model_ready(self, model: str | None = None, version: str | int | None = None) -> bool:
        """``GET /v2/models/{model}/ready``: False for an unknown or unready model."""
        return await self._impl().model_ready(model or self.model, _version(version))

    async def server_metadata(self) -> ServerMetadata:
        """``GET /v2``: name, version, extensions."""
        return ServerMetadata.model_validate(await self._impl().server_metadata())

    async def model_metadata(
        self, model: str | None = None, version: str | int | None = None
    ) -> ModelMetadata:
        """``GET /v2/models/{model}``: platform, versions, inputs and outputs."""
        data = await self._impl().model_metadata(model or self.model, _version(version))
        return ModelMetadata.model_validate(data)

    async def model_config(
        self, model: str | None = None, version: str | int | None = None
    ) -> dict[str, Any]:
        """``GET /v2/models/{model}/config``: the model configuration as JSON."""
        return await self._impl().model_config(model or self.model, _version(version))

    async def repository_index(self, *, ready: bool = False) -> list[RepositoryModel]:
        """``POST /v2/repository/index``: every model in the repository with its state."""
        return [RepositoryModel.model_validate(item) for item in await self._impl().repository_index(ready)]

    async def model_statistics(
        self, model: str | None = None, version: str | int | None = None
    ) -> list[ModelStats]:
        """``GET /v2/models/{model}/stats``; ``model=""`` gives every model's statistics."""
        name = self.model if model is None else model
        data = await self._impl().model_statistics(name, _version(version))
        return [ModelStats.model_validate(item) for item in data.get("model_stats") or []]

    async def metrics(self) -> list[Sample]:
        """``GET /metrics`` (Prometheus text, port 8002 by default) parsed into samples."""
        if self._closed:
            raise RuntimeError("this AsyncTritonClient is closed; create a new one")
        session = self._metrics_session
        if session is None:
            session = self._metrics_session = _make_session(
                self.timeout, self._headers, self._verify, self._cert, connections=4
            )
        url = self.metrics_url
        try:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise protocol.status_error(response.status, protocol.error_message(body), url=url)
        except aiohttp.ClientError as exc:
            raise _map_error(exc, url, sent=False) from exc
        except TimeoutError as exc:
            raise _map_error(exc, url, sent=True) from exc
        return parse_metrics(body.decode("utf-8", "replace"))


def _version(version: str | int | None) -> str | None:
    return None if version is None or version == "" else str(version)


class AsyncGenerateStream:
    """A streamed response: an async iterator of :class:`StreamChunk` and an async context manager.

    Filled as it progresses: ``start_ns`` (call began, before the pool), ``sent_ns`` (request
    written), ``headers_ns`` (response headers arrived), ``first_arrival_ns``/``last_arrival_ns``
    (events), ``status_code``, ``response_headers`` (credentials redacted), ``events`` (chunks so
    far), ``text`` (full text so far), ``attempts``. All stamps are ``trtclient.timing.now_ns()``.
    """

    def __init__(self, client: AsyncTritonClient, request: GenerateRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.start_ns = 0
        self.sent_ns = 0
        self.headers_ns = 0
        self.status_code = 0
        self.response_headers: dict[str, str] = {}
        self.attempts = 0
        self.url = ""
        self.state = StreamState()
        self._client = client
        self._source: AsyncChunkSource | None = None
        self._ready: collections.deque[StreamChunk] = collections.deque()
        self._done = False

    @property
    def events(self) -> int:
        """Chunks received so far."""
        return self.state.count

    @property
    def text(self) -> str:
        """The full text of sequence 0 so far."""
        return self.state.text(0)

    @property
    def first_arrival_ns(self) -> int:
        """``now_ns()`` when the first event's first byte arrived (0 before it did)."""
        return self.state.first_arrival_ns

    @property
    def last_arrival_ns(self) -> int:
        """``now_ns()`` when the latest event's first byte arrived."""
        return self.state.last_arrival_ns

    @property
    def closed(self) -> bool:
        """True once the stream ended or was closed."""
        return self._done

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
        self._done = True
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def __del__(self) -> None:
        # A consumer that breaks out of ``async for`` drops its last reference here: close the
        # connection so the server stops generating. The loop may already be gone at exit.
        source = self._source
        if source is not None:
            with contextlib.suppress(Exception):
                source.close()

    async def __anext__(self) -> StreamChunk:
        ready = self._ready
        if ready:
            return ready.popleft()
        source = self._source
        if source is None:
            if self._done:
                raise StopAsyncIteration
            await self._open()
            source = self._source
            assert source is not None
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

    async def _open(self) -> None:
        client = self._client
        self.start_ns = now_ns()
        attempt = 0
        while True:
            self.attempts = attempt + 1
            try:
                impl = client._impl()
                inputs = await client._inputs_for(self.model)
                mode = inputs.text_mode if inputs is not None else (client.text_mode or "delta")
                body = protocol.build_body(self.request, inputs, stream=True)
                self.state = StreamState(mode)
                self._source = await impl.open_stream(self.model, body, inputs, self)
                self.state.url = self.url
                return
            except errors.TritonError as exc:
                if attempt >= client.retry.max_retries or not protocol.should_retry(exc):
                    self._done = True
                    raise
                await client._backoff(attempt, exc)
                attempt += 1
            except BaseException:
                self._done = True
                raise


# --- HTTP over aiohttp ----------------------------------------------------------------------------


def _make_session(
    timeout: Timeout,
    headers: Mapping[str, str],
    verify: bool | str | ssl.SSLContext,
    cert: str | tuple[str, str] | None,
    *,
    connections: int,
    trace: aiohttp.TraceConfig | None = None,
) -> aiohttp.ClientSession:
    context = protocol.make_ssl_context(verify, cert) if (verify is not True or cert is not None) else True
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, ssl=context)
    client_timeout = aiohttp.ClientTimeout(
        total=timeout.total, sock_connect=timeout.connect, sock_read=timeout.read
    )
    base_headers = {"User-Agent": USER_AGENT, **headers}
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
    shown = protocol.redact_url(url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return errors.ConnectTimeoutError(f"connecting to {shown} timed out", url=shown)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return errors.ReadTimeoutError(f"no data from {shown} within the read timeout", url=shown)
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


_JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class _AsyncHTTPTransport:
    """Triton's HTTP/REST API over one aiohttp session."""

    def __init__(
        self,
        url: str,
        *,
        timeout: Timeout,
        headers: Mapping[str, str],
        verify: bool | str | ssl.SSLContext,
        cert: str | tuple[str, str] | None,
        connections: int,
    ) -> None:
        self.url = url
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        trace.freeze()
        # aiohttp binds a session to the running loop: the client builds its transport lazily, from
        # its first awaited call, so the session is always created inside the loop that uses it.
        self.session = _make_session(timeout, headers, verify, cert, connections=connections, trace=trace)
        self.watchdog = _ReadWatchdog(timeout.read) if timeout.read is not None else None

    async def aclose(self) -> None:
        if self.watchdog is not None:
            await self.watchdog.stop()
        await self.session.close()

    async def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, bytes]:
        url = self.url + path
        try:
            async with self.session.request(method, url, data=body, headers=_JSON_HEADERS) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=True) from exc
        if status not in ok:
            raise protocol.status_error(status, protocol.error_message(payload), url=url)
        return status, payload

    async def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        _, payload = await self._request(method, path, body)
        return protocol.parse_json(payload, url=self.url + path)

    async def _probe(self, path: str) -> bool:
        status, _ = await self._request("GET", path, ok=(200, 400, 404, 503))
        return status == 200

    async def server_live(self) -> bool:
        return await self._probe("/v2/health/live")

    async def server_ready(self) -> bool:
        return await self._probe("/v2/health/ready")

    async def model_ready(self, model: str, version: str | None) -> bool:
        return await self._probe(protocol.model_path(model, version) + "/ready")

    async def server_metadata(self) -> dict[str, Any]:
        return _object(await self._json("GET", "/v2"), self.url)

    async def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return _object(await self._json("GET", protocol.model_path(model, version)), self.url)

    async def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return _object(await self._json("GET", protocol.model_path(model, version) + "/config"), self.url)

    async def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        data = await self._json("POST", "/v2/repository/index", protocol.encode_body({"ready": ready}))
        if not isinstance(data, list):
            raise errors.InvalidJSONError("the repository index is not a JSON list", url=self.url)
        return data

    async def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        path = (protocol.model_path(model, version) if model else "/v2/models") + "/stats"
        return _object(await self._json("GET", path), self.url)

    async def generate(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None
    ) -> GenerateResponse:
        url = self.url + protocol.model_path(model) + "/generate"
        data = protocol.encode_body(body)
        try:
            async with self.session.post(url, data=data, headers=_JSON_HEADERS) as response:
                payload = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=True) from exc
        if status != 200:
            raise protocol.status_error(
                status,
                protocol.error_message(payload),
                url=url,
                retry_after=protocol.parse_retry_after(retry_after),
            )
        return protocol.parse_generate_body(payload, url=url)

    async def open_stream(
        self, model: str, body: dict[str, Any], inputs: ModelInputs | None, stream: AsyncGenerateStream
    ) -> AsyncChunkSource:
        url = self.url + protocol.model_path(model) + "/generate_stream"
        stream.url = url
        data = protocol.encode_body(body)
        stamp = _SentStamp()
        try:
            response = await self.session.post(url, data=data, headers=_JSON_HEADERS, trace_request_ctx=stamp)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _map_error(exc, url, sent=bool(stamp.ns)) from exc
        stream.headers_ns = now_ns()
        stream.sent_ns = stamp.ns
        stream.status_code = response.status
        stream.response_headers = protocol.safe_headers(response.headers)
        if response.status != 200:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                response.close()
                raise _map_error(exc, url, sent=True) from exc
            finally:
                response.release()
            raise protocol.status_error(
                response.status,
                protocol.error_message(payload),
                url=url,
                retry_after=protocol.parse_retry_after(response.headers.get("Retry-After")),
            )
        source = _AiohttpSource(response, stream.state, url, self.watchdog)
        handler = response.connection.protocol if response.connection is not None else None
        if self.watchdog is not None and handler is not None:
            # aiohttp re-arms a timer on every packet for its read timeout; during the body the
            # watchdog checks silence instead, at no cost per event.
            handler.read_timeout = None
            self.watchdog.add(source)
        return source


def _object(data: Any, url: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise errors.InvalidJSONError(f"expected a JSON object, got {type(data).__name__}", url=url)
    return data


class _AiohttpSource:
    """Reads one SSE body as it arrives: stamp each read, decode events, parse chunks."""

    __slots__ = (
        "_closed",
        "_expired",
        "_pending",
        "content",
        "decoder",
        "last_read_ns",
        "response",
        "state",
        "url",
        "watchdog",
    )

    def __init__(
        self, response: aiohttp.ClientResponse, state: StreamState, url: str, watchdog: _ReadWatchdog | None
    ) -> None:
        self.response = response
        self.content = response.content
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
                raise errors.ReadTimeoutError(
                    f"no data from {protocol.redact_url(self.url)} within the read timeout", url=self.url
                ) from None
            raise _map_error(exc, self.url, sent=True) from exc
        arrival = self.last_read_ns = now_ns()
        if not data:
            if self._expired:
                raise errors.ReadTimeoutError(
                    f"no data from {protocol.redact_url(self.url)} within the read timeout", url=self.url
                )
            self.state.finish(self.decoder.finish())
            self.response.release()
            self._forget()
            return None
        events = self.decoder.feed(data, arrival)
        if not events:
            return []
        chunk_from_event = self.state.chunk_from_event
        if len(events) == 1:
            return [chunk_from_event(events[0])]
        chunks: list[StreamChunk] = []
        for event in events:
            try:
                chunks.append(chunk_from_event(event))
            except errors.TritonError as exc:
                if not chunks:
                    raise
                self._pending = exc  # deliver the chunks before it, then fail on the next read
                break
        return chunks

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
