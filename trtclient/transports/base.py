"""The transport contract: what a client needs from a wire, in core types only.

A transport gets an :class:`Endpoint` (where and how to connect), sends requests built by
:mod:`trtclient.inputs`, and for a streamed call fills the caller's :class:`~trtclient.streaming.StreamHead`
(URL, send and header stamps, status, headers, arrival clock) and returns a chunk source that feeds the
caller's :class:`~trtclient.streaming.StreamState`. It never sees a client, a stream object or a record.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from trtclient.inputs import ModelInputs
from trtclient.options import Timeout
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.streaming import StreamHead, StreamState

__all__ = [
    "AsyncChunkSource",
    "AsyncTransport",
    "ChunkSource",
    "Closable",
    "Endpoint",
    "SendGate",
    "SyncTransport",
]

SendGate = Callable[[], Awaitable[None]]
"""Awaited by an async transport once a streamed request is ready to go, right before its bytes are
written: whatever precedes the write (building the body, taking a connection) is done by then. The load
engine uses it to start a request's path early and still write it at its intended time."""


@dataclass(frozen=True)
class Endpoint:
    """The server a transport talks to and how: URL, timeouts, headers and TLS options."""

    url: str
    timeout: Timeout
    headers: Mapping[str, str]
    verify: bool | str | ssl.SSLContext
    cert: str | tuple[str, str] | None


class Closable(Protocol):
    """What every open streamed response has, whichever transport and I/O style delivers it."""

    def close(self) -> None:
        """Drop the connection or cancel the call (safe to call twice)."""


class AsyncChunkSource(Closable, Protocol):
    """One open streamed response, as a transport delivers it."""

    async def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""


class AsyncTransport(Protocol):
    """What the client needs from a transport; HTTP and gRPC both provide it.

    ``open_stream`` sets ``head.url`` first and ``head.sent_ns`` as soon as the request starts going out
    (so a call that fails after sending still has it), then the response's status, headers, header stamp
    and arrival clock; the source it returns parses events into ``state``. Error statuses raise (after
    the head is filled), as do connection failures. A ``gate`` is awaited just before the request's
    bytes are written (see :data:`SendGate`).
    """

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
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
        gate: SendGate | None = None,
    ) -> AsyncChunkSource: ...
    async def aclose(self) -> None: ...


class ChunkSource(Closable, Protocol):
    """One open streamed response, as a blocking transport delivers it."""

    def read(self) -> list[StreamChunk] | None:
        """The chunks completed by the next read; ``None`` at the end of the stream."""


class SyncTransport(Protocol):
    """What the blocking client needs from a transport; the same contract as :class:`AsyncTransport`."""

    def server_live(self) -> bool: ...
    def server_ready(self) -> bool: ...
    def model_ready(self, model: str, version: str | None) -> bool: ...
    def server_metadata(self) -> dict[str, Any]: ...
    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]: ...
    def model_config(self, model: str, version: str | None) -> dict[str, Any]: ...
    def repository_index(self, ready: bool) -> list[dict[str, Any]]: ...
    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]: ...
    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse: ...
    def open_stream(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
    ) -> ChunkSource: ...
    def close(self) -> None: ...
