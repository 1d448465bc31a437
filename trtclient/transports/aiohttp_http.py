"""Triton's HTTP/REST API over aiohttp: one shared connection pool sized for thousands of concurrent
streams, streamed bodies read as they arrive, stamped (kernel receive times where :mod:`trtclient.rxstamp`
can), decoded by the I/O-free :mod:`trtclient.sse` and parsed into the caller's
:class:`~trtclient.streaming.StreamState`. One watchdog task per transport enforces the read timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from trtclient import errors, rxstamp
from trtclient.inputs import ModelInputs, encode_body
from trtclient.options import JSON_HEADERS, safe_headers
from trtclient.responses import json_object, parse_generate_body, parse_json, repository_list, response_error
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.sse import SSEDecoder, SSEEvent
from trtclient.streaming import StreamHead, StreamState, chunks_from_events
from trtclient.timing import now_ns
from trtclient.transports.aiohttp_session import (
    GatedBody,
    PushHandler,
    SentStamp,
    make_session,
    on_body_sent,
    on_headers_sent,
)
from trtclient.transports.base import AsyncChunkSource, Endpoint, SendGate
from trtclient.transports.raw_stream import RawStreamPool
from trtclient.transports.watchdog import ReadWatchdog
from trtclient.urls import model_path, redact_url, stats_path

__all__ = ["AsyncHTTPTransport", "make_session", "map_error"]


def map_error(exc: BaseException, url: str, *, sent: bool) -> errors.TritonError:
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


class AsyncHTTPTransport:
    """Triton's HTTP/REST API over one aiohttp session."""

    def __init__(
        self, endpoint: Endpoint, *, connections: int, kernel_stamps: bool = False, raw_streams: bool = False
    ) -> None:
        self.url = endpoint.url
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(on_headers_sent)
        trace.on_request_chunk_sent.append(on_body_sent)
        trace.freeze()
        # aiohttp binds a session to the running loop: the client builds its transport lazily, from
        # its first awaited call, so the session is always created inside the loop that uses it.
        self.session = make_session(
            endpoint, connections=connections, trace=trace, kernel_stamps=kernel_stamps
        )
        read = endpoint.timeout.read
        self.watchdog = ReadWatchdog(read) if read is not None else None
        self.raw: RawStreamPool | None = None
        if raw_streams and RawStreamPool.usable(endpoint):
            self.raw = RawStreamPool(
                endpoint, connections=connections, kernel_stamps=kernel_stamps, watchdog=self.watchdog
            )

    async def aclose(self) -> None:
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self.raw is not None:
            await self.raw.aclose()
        await self.session.close()

    async def open_connections(self, n: int) -> None:
        """Open ``n`` keep-alive connections for streamed calls at once (failures are left for the
        calls to report): the raw streams' own when they are on, else aiohttp's (health probes)."""
        if self.raw is not None:
            await self.raw.preopen(n)
        elif n > 0:
            await asyncio.gather(*(self.server_ready() for _ in range(n)), return_exceptions=True)

    async def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, bytes]:
        url = self.url + path
        try:
            async with self.session.request(method, url, data=body, headers=JSON_HEADERS) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_error(exc, url, sent=True) from exc
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
            raise map_error(exc, url, sent=True) from exc
        if status != 200:
            raise response_error(status, payload, url=url, retry_after=retry_after)
        return parse_generate_body(payload, url=url)

    async def open_stream(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
        gate: SendGate | None = None,
    ) -> AsyncChunkSource:
        path = model_path(model) + "/generate_stream"
        url = head.url = state.url = self.url + path
        encoded = encode_body(body)
        if self.raw is not None:
            return await self.raw.open_stream(url, path, encoded, head, state, gate)
        data: bytes | GatedBody = encoded if gate is None else GatedBody(encoded, gate)
        stamp = SentStamp()
        try:
            response = await self.session.post(url, data=data, headers=JSON_HEADERS, trace_request_ctx=stamp)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            head.sent_ns = stamp.ns
            raise map_error(exc, url, sent=bool(stamp.ns)) from exc
        head.headers_ns = now_ns()
        headers_wall_ns = time.time_ns()
        head.sent_ns = stamp.ns
        head.status_code = response.status
        head.headers = safe_headers(response.headers)
        if response.status != 200:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                response.close()
                raise map_error(exc, url, sent=True) from exc
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
            head.headers_ns = rxstamp.local_stamp(kernel_ns, head.headers_ns, headers_wall_ns, stamp.ns)
            head.arrival_clock = "kernel"
        else:
            rx = None
        source = _AiohttpSource(response, state, head, self.watchdog, rx, body_clock)
        if isinstance(handler, PushHandler):
            source.handler = handler
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
        "draining",
        "floor_ns",
        "handler",
        "last_read_ns",
        "on_chunk",
        "pushed",
        "response",
        "rx",
        "head",
        "state",
        "url",
        "watchdog",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        state: StreamState,
        head: StreamHead,
        watchdog: ReadWatchdog | None,
        rx: rxstamp.RxClock | None = None,
        body_clock: rxstamp.BodyClock | None = None,
    ) -> None:
        self.response = response
        self.content = response.content
        self.rx = rx
        self.body_clock = body_clock
        # The head is a plain value: holding it keeps no stream alive, so a consumer's early ``break``
        # still collects the stream and closes this connection.
        self.head = head
        self.floor_ns = head.headers_ns
        self.decoder = SSEDecoder()
        self.state = state
        self.url = head.url
        self.watchdog = watchdog
        self.last_read_ns = now_ns()
        self._closed = False
        self._expired = False
        self._pending: errors.TritonError | None = None
        self.handler: PushHandler | None = None
        self.on_chunk: Callable[[StreamChunk], None] | None = None
        self.pushed: asyncio.Future[None] | None = None
        self.draining = False

    async def read(self) -> list[StreamChunk] | None:
        if self._pending is not None:
            raise self._pending
        try:
            data = await self.content.readany()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.close()
            if self._expired:
                raise _read_timeout(self.url) from None
            raise map_error(exc, self.url, sent=True) from exc
        arrival = self.last_read_ns = now_ns()
        if not data:
            if self._expired:
                raise _read_timeout(self.url)
            self._end()
            return None
        events = self._events(data, arrival)
        if not events:
            return []
        if len(events) == 1:
            return [self.state.chunk_from_event(events[0])]
        chunks, self._pending = chunks_from_events(self.state, events)
        return chunks

    async def consume(self, on_chunk: Callable[[StreamChunk], None]) -> None:
        """Call ``on_chunk`` for every chunk to the end of the body, from the connection's read
        callback: one call per read, no wake-up of this task per event. Raises what :meth:`read`
        would (after the chunks before the failure were handed on)."""
        if self.handler is None or self._pending is not None:
            while (chunks := await self.read()) is not None:
                for chunk in chunks:
                    on_chunk(chunk)
            return
        self.on_chunk = on_chunk
        self.pushed = pushed = asyncio.get_running_loop().create_future()
        self.handler.drain = self._drain
        try:
            self._drain()  # what came with the head
            await pushed
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.close()
            if self._expired:
                raise _read_timeout(self.url) from None
            raise map_error(exc, self.url, sent=True) from exc
        except BaseException:
            self.close()
            raise
        finally:
            if self.handler is not None:
                self.handler.drain = None
            self.on_chunk = self.pushed = None
        self._end()

    def _drain(self) -> None:
        """Take all the body bytes that are in and hand their events on; settle ``pushed`` at the end
        of the body or on a failure. Taking bytes may let aiohttp resume reading, which parses more
        and calls this again: that inner call returns at once, and the loop here takes those too."""
        pushed, on_chunk = self.pushed, self.on_chunk
        if pushed is None or on_chunk is None or pushed.done() or self.draining:
            return
        self.draining = True
        content = self.content
        try:
            while data := content.read_nowait():  # raises the body's failure, if any
                arrival = self.last_read_ns = now_ns()
                chunk_from_event = self.state.chunk_from_event
                for event in self._events(data, arrival):
                    on_chunk(chunk_from_event(event))
            if self._expired:
                raise _read_timeout(self.url)
            if content.is_eof() and not pushed.done():
                pushed.set_result(None)
        except Exception as exc:
            if not pushed.done():
                pushed.set_exception(exc)
        finally:
            self.draining = False

    def _events(self, data: bytes, arrival: int) -> list[SSEEvent]:
        """The events one read completed, stamped with the kernel's arrival where it is known."""
        clock = self.body_clock
        if clock is None:
            return self.decoder.feed(data, arrival)
        pieces = clock.segments(data, arrival, time.time_ns(), self.floor_ns)
        if len(pieces) == 1:
            events = self.decoder.feed(*pieces[0])
        else:
            events = [event for piece in pieces for event in self.decoder.feed(*piece)]
        if clock.missed:
            self._downgrade_clock()
        return events

    def _end(self) -> None:
        """The body ended normally: check its end, give the connection back."""
        self.state.finish(self.decoder.finish())
        self._forget()
        self.response.release()

    def _downgrade_clock(self) -> None:
        """Some arrivals came without a kernel stamp: the stream no longer claims kernel stamps."""
        self.head.arrival_clock = "read"

    def expire(self) -> None:
        """Called by the watchdog: the server has been silent too long; fail the pending read."""
        self._expired = True
        self.close()
        pushed = self.pushed
        if pushed is not None and not pushed.done():
            pushed.set_exception(_read_timeout(self.url))

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
