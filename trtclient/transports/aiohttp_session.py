"""The aiohttp session under :class:`~trtclient.transports.aiohttp_http.AsyncHTTPTransport`: a
connection protocol that hands each read to the body being consumed (kernel-stamped where
:mod:`trtclient.rxstamp` can), and the trace callbacks that stamp when a request's bytes went out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.client_proto import ResponseHandler
from aiohttp.payload import BytesPayload

from trtclient import rxstamp
from trtclient.constants import USER_AGENT
from trtclient.options import ssl_option
from trtclient.timing import now_ns
from trtclient.transports.base import Endpoint, SendGate

__all__ = ["GatedBody", "PushHandler", "SentStamp", "make_session", "on_body_sent", "on_headers_sent"]


class PushHandler(ResponseHandler):
    """aiohttp's connection protocol, which also hands what each read brought to the body being
    consumed (the HTTP transport's ``consume``) right in the read callback, so that a streamed body
    costs no task wake-up per event."""

    drain: Callable[[], None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        drain = self.drain
        if drain is not None:
            drain()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        drain = self.drain
        if drain is not None:
            drain()


class _StampingHandler(PushHandler):
    """The same, on a transport that reads with kernel receive timestamps."""

    rx: rxstamp.RxClock | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The body aiohttp's parser is filling (a private member; without it, events after the first
        # read of a body fall back to read stamps, and the stream says so).
        self.rx = rxstamp.install(transport, lambda: getattr(self, "_payload", None))
        if self.rx is not None:
            self.rx.listener = self._after_read

    def data_received(self, data: bytes) -> None:
        if self.rx is None:
            super().data_received(data)
        else:  # a consumed body is drained once the clock has marked this read (_after_read)
            ResponseHandler.data_received(self, data)

    def _after_read(self) -> None:
        drain = self.drain
        if drain is not None:
            drain()


def make_session(
    endpoint: Endpoint,
    *,
    connections: int,
    trace: aiohttp.TraceConfig | None = None,
    kernel_stamps: bool = False,
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=0, ssl=ssl_option(endpoint.verify, endpoint.cert)
    )
    if hasattr(connector, "_factory"):
        # The connector builds each connection's protocol from this factory (aiohttp internals; a
        # version without it keeps stamping reads, and bodies are read by a task).
        stamping = kernel_stamps and rxstamp.keep_enabled()
        handler = _StampingHandler if stamping else PushHandler
        factory = functools.partial(handler, loop=asyncio.get_running_loop())
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


class SentStamp:
    """Receives the time the request's bytes were handed to the socket. The trace context must not
    refer to the stream: aiohttp keeps it alive with the connection, and the stream has to be
    collectable for a consumer's early ``break`` to close that connection.

    aiohttp (3.10+) only buffers the headers when it reports them sent and writes them, together
    with the body, from a task of its own that the loop runs later (on a busy loop, milliseconds
    later). The body's first chunk is reported just before that write, so it sets the stamp; the
    headers' report is the fallback for a request that never got to its body."""

    __slots__ = ("body", "ns")

    def __init__(self) -> None:
        self.ns = 0
        self.body = False


async def on_headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    stamp = context.trace_request_ctx
    if isinstance(stamp, SentStamp) and not stamp.body:
        stamp.ns = now_ns()


async def on_body_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams
) -> None:
    stamp = context.trace_request_ctx
    if isinstance(stamp, SentStamp) and not stamp.body:
        stamp.ns = now_ns()
        stamp.body = True


class GatedBody(BytesPayload):
    """A JSON request body whose write first awaits a :data:`~trtclient.transports.base.SendGate`.

    aiohttp writes the buffered headers together with the body's first chunk, from its own task, once
    the connection is taken and the request built; waiting there leaves only the write itself after
    the gate opens (and ``on_body_sent`` stamps the moment the bytes go out)."""

    def __init__(self, value: bytes, gate: SendGate) -> None:
        super().__init__(value, content_type="application/json")
        self._gate: SendGate | None = gate

    async def _open_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            await gate()

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._open_gate()
        await super().write(writer)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self._open_gate()
        await super().write_with_length(writer, content_length)
