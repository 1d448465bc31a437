"""Streamed ``generate_stream`` calls over the client's own keep-alive HTTP/1.1 connections: the lean
path of the async client for plain HTTP, which ``trtclient bench`` takes.

Each connection is a non-blocking socket that the event loop watches (``add_reader``) while a response
is read. Every read is one ``recv`` (``recvmsg`` when kernel receive stamps are on,
:mod:`trtclient.rxstamp`), stamped once, framed by :mod:`trtclient.transports.http1`, split into events
by :class:`~trtclient.sse.SSEDecoder` and parsed into chunks by the caller's
:class:`~trtclient.streaming.StreamState`, all in the read callback: no stream reader, no task wake-up
per event (:meth:`RawSource.consume`), no per-request session machinery. Each chunk carries the
arrival of the read that completed it: the kernel's receive time of the newest segment that read
took, on the ``now_ns()`` scale (:func:`trtclient.rxstamp.local_stamp`), or the read time when the
read came without a kernel stamp (the head's ``arrival_clock`` then says ``"read"``).

The read timeout is the client's :class:`~trtclient.transports.watchdog.ReadWatchdog`; the total
timeout one timer per request. Failures are the same ``trtclient`` exceptions as aiohttp's path raises.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from trtclient import errors, rxstamp
from trtclient.constants import READ_CHUNK_SIZE, USER_AGENT
from trtclient.options import JSON_HEADERS, safe_headers
from trtclient.responses import response_error
from trtclient.schema import StreamChunk
from trtclient.sse import SSEDecoder
from trtclient.streaming import StreamHead, StreamState
from trtclient.timing import now_ns
from trtclient.transports.base import Endpoint, SendGate
from trtclient.transports.http1 import CHUNK_START, DONE, BodyFramer, HTTPParseError, parse_head
from trtclient.transports.watchdog import ReadWatchdog
from trtclient.urls import redact_url

__all__ = ["RawSource", "RawStreamPool"]

_TIMESPEC = struct.Struct("@qq")


def _hex(size: bytes) -> int:
    """A chunk-size line's number; -1 when it is not one."""
    try:
        return int(size, 16)
    except ValueError:
        return -1


def _kernel_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel arrival in ``recvmsg``'s ancillary data (:func:`trtclient.rxstamp.kernel_ns_of`),
    with the one message these sockets ask for read first."""
    level, kind, payload = ancillary[0]
    if len(ancillary) == 1 and level == socket.SOL_SOCKET and len(payload) >= 16:
        seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
        if kind == rxstamp.SO_TIMESTAMPNS:
            return int(seconds * 1_000_000_000 + nanoseconds)
    return rxstamp.kernel_ns_of(ancillary)


class RawStreamPool:
    """Keep-alive connections to one plain-HTTP server, at most ``connections`` in use at once."""

    def __init__(
        self, endpoint: Endpoint, *, connections: int, kernel_stamps: bool, watchdog: ReadWatchdog | None
    ) -> None:
        parts = urlsplit(endpoint.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {"User-Agent": USER_AGENT, **JSON_HEADERS, **endpoint.headers}
        self.fixed_head = f"Host: {netloc}:{self.port}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fixed.items()
        )
        self.connect_timeout = endpoint.timeout.connect
        self.total_timeout = endpoint.timeout.total
        self.kernel = kernel_stamps and rxstamp.keep_enabled()
        self.watchdog = watchdog
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[socket.socket] = []
        self.address: tuple[socket.AddressFamily, tuple[object, ...]] | None = None
        self.closed = False

    @staticmethod
    def usable(endpoint: Endpoint) -> bool:
        """True for a plain-HTTP server on an event loop that can watch sockets (not Windows')."""
        return urlsplit(endpoint.url).scheme == "http" and sys.platform != "win32"

    async def open_stream(
        self,
        url: str,
        path: str,
        body: bytes,
        head: StreamHead,
        state: StreamState,
        gate: SendGate | None = None,
    ) -> RawSource:
        """POST ``body`` to ``path``, fill ``head`` up to the response's head, return the body's source.
        An error status raises (after the head is filled), as do connection failures. ``gate`` is
        awaited once the connection is taken, right before the request is written."""
        request = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n{self.fixed_head}Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body
        await self.slots.acquire()
        try:
            sock = self._idle() or await self._connect(url)
        except BaseException:
            self.slots.release()
            raise
        source = RawSource(self, sock, head, state, url)
        try:
            if gate is not None:
                await gate()
            await source.start(request)
        except BaseException:
            source.close()
            raise
        return source

    async def preopen(self, n: int) -> None:
        """Open connections until ``n`` are idle (failures are left for the requests to report)."""
        wanted = n - len(self.idle)
        if wanted <= 0:
            return
        opened = await asyncio.gather(*(self._connect("") for _ in range(wanted)), return_exceptions=True)
        for sock in opened:
            if isinstance(sock, socket.socket):
                if self.closed:
                    sock.close()
                else:
                    self.idle.append(sock)

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their streams end."""
        self.closed = True
        idle, self.idle = self.idle, []
        for sock in idle:
            sock.close()

    def give_back(self, sock: socket.socket, reusable: bool) -> None:
        """A response is over: keep its connection for the next request, or close it."""
        if reusable and not self.closed:
            self.idle.append(sock)
        else:
            sock.close()
        self.slots.release()

    def _idle(self) -> socket.socket | None:
        """An idle connection the server has not closed (nor written to) meanwhile."""
        while self.idle:
            sock = self.idle.pop()
            try:
                sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return sock
            except OSError:
                pass
            sock.close()  # closed by the server while idle, or it sent something unasked
        return None

    async def _connect(self, url: str) -> socket.socket:
        loop = asyncio.get_running_loop()
        shown = redact_url(url)
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.address is None:
                    found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                    if not found:
                        raise OSError(f"no address for {self.host}")
                    self.address = (found[0][0], found[0][4])
                family, address = self.address
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
        except TimeoutError:
            if sock is not None:
                sock.close()
            raise errors.ConnectTimeoutError(f"connecting to {shown} timed out", url=shown) from None
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise errors.TritonConnectionError(f"cannot connect to {shown}: {exc}", url=shown) from None
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.kernel:
            rxstamp.enable(sock)  # where it fails, reads come unstamped and the stream says "read"
        return sock


class RawSource:
    """One response on a pool connection: its head, then its streamed body, event by event."""

    __slots__ = (
        "_ready",
        "buffer",
        "decoder",
        "ended",
        "fast",
        "error",
        "fd",
        "floor_ns",
        "framer",
        "head",
        "keep_alive",
        "kernel",
        "last_read_ns",
        "loop",
        "on_chunk",
        "payload",
        "pool",
        "reading",
        "released",
        "sock",
        "stamped",
        "state",
        "status",
        "timer",
        "url",
        "waiter",
    )

    def __init__(
        self, pool: RawStreamPool, sock: socket.socket, head: StreamHead, state: StreamState, url: str
    ) -> None:
        self.pool = pool
        self.sock = sock
        self.fd = sock.fileno()
        self.head = head
        self.state = state
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.kernel = pool.kernel
        self.stamped = True
        self.buffer = b""
        self.framer: BodyFramer | None = None
        self.decoder = SSEDecoder()
        self.fast = False  # the framer and the decoder hold nothing: _on_body's shortcut applies
        self._ready: list[StreamChunk] = []
        self.on_chunk: Callable[[StreamChunk], None] = self._ready.append
        self.payload = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.ended = False
        self.released = False
        self.reading = False
        self.status = 0
        self.keep_alive = False
        self.floor_ns = 0
        self.last_read_ns = now_ns()
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the caller's side

    async def start(self, request: bytes) -> None:
        """Send the request and wait for the response's head; raise for an error status."""
        pool, head, loop = self.pool, self.head, self.loop
        head.sent_ns = self.floor_ns = now_ns()
        self.reading = True
        loop.add_reader(self.fd, self._on_readable)
        if pool.watchdog is not None:
            pool.watchdog.add(self)
        if pool.total_timeout is not None:
            self.timer = loop.call_later(pool.total_timeout, self._total_timeout)
        try:
            await loop.sock_sendall(self.sock, request)
        except OSError as exc:
            raise self._dropped(exc) from None
        while self.framer is None and self.error is None:
            await self._wait()
        if self.framer is None and self.error is not None:
            raise self.error
        if self.status == 200:
            return  # a failure after the head is raised by the reads, after the chunks before it
        while not self.ended and self.error is None:
            await self._wait()
        if self.error is not None and not self.ended:
            raise self.error
        raise response_error(
            self.status, bytes(self.payload), url=self.url, retry_after=head.headers.get("retry-after")
        )

    async def read(self) -> list[StreamChunk] | None:
        """The chunks completed since the last call (waiting for one); ``None`` at the end."""
        ready = self._ready
        while True:
            if ready:
                chunks = ready[:]
                ready.clear()
                return chunks
            if self.error is not None:
                raise self.error
            if self.ended:
                return None
            await self._wait()

    async def consume(self, on_chunk: Callable[[StreamChunk], None]) -> None:
        """Call ``on_chunk`` for every chunk to the end of the body, from the read callback; raise
        what :meth:`read` would (after the chunks before the failure were handed on)."""
        ready = self._ready
        for chunk in ready:
            on_chunk(chunk)
        ready.clear()
        self.on_chunk = on_chunk
        try:
            while not self.ended and self.error is None:
                await self._wait()
        finally:
            self.on_chunk = ready.append
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop reading; a response not read to its end drops the connection (the server cancels)."""
        self._release(False)

    def expire(self) -> None:
        """Called by the watchdog: the server has been silent too long."""
        shown = redact_url(self.url)
        self._fail(errors.ReadTimeoutError(f"no data from {shown} within the read timeout", url=shown))

    # ------------------------------------------------------------------ the read callback's side

    def _on_readable(self) -> None:
        ancillary: list[tuple[int, int, bytes]] = []
        try:
            if self.kernel:
                data, ancillary, _flags, _address = self.sock.recvmsg(
                    READ_CHUNK_SIZE, rxstamp.ANCILLARY_SPACE
                )
            else:
                data = self.sock.recv(READ_CHUNK_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(self._dropped(exc))
            return
        read_ns = self.last_read_ns = now_ns()
        if not data:
            self._on_eof()
            return
        arrival = read_ns
        if self.kernel:
            kernel_ns = _kernel_ns(ancillary) if ancillary else 0
            if kernel_ns:  # rxstamp.local_stamp, inline
                arrival = max(self.floor_ns, read_ns - max(0, time.time_ns() - kernel_ns))
            elif self.stamped:
                self.stamped = False
                self.head.arrival_clock = "read"
        try:
            if self.framer is None:
                self._on_head(data, arrival)
            else:
                self._on_body(data, arrival)
        except HTTPParseError as exc:
            shown = redact_url(self.url)
            self._fail(errors.TritonTransportError(f"invalid HTTP response from {shown}: {exc}", url=shown))
        except Exception as exc:  # an error event, invalid JSON, or the consumer's own failure
            self._fail(exc)

    def _on_head(self, data: bytes, arrival: int) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            parsed = parse_head(buffer)
            if parsed is None:
                self.buffer = buffer
                return
            response, start = parsed
            buffer = buffer[start:]
            if response.status >= 200:
                break  # an interim answer (100 Continue) is skipped
        self.buffer = b""
        head = self.head
        head.headers_ns = self.floor_ns = arrival
        head.status_code = self.status = response.status
        head.headers = safe_headers(response.headers)
        head.arrival_clock = "kernel" if self.kernel and self.stamped else "read"
        self.keep_alive = response.keep_alive
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise HTTPParseError(f"a {encoding!r}-encoded body, though the request asked for identity")
        self.framer = framer = response.framer()
        self._wake()
        if buffer:
            self._on_body(buffer, arrival)
        elif framer.done:
            self._end()

    def _on_body(self, data: bytes, arrival: int) -> None:
        if self.fast:
            # The framer and the decoder hold nothing: a read that is one chunk carrying one Triton
            # event, "<hex>\r\ndata: <json>\n\n\r\n", is taken in a few slices.
            start = data.find(b"\r\n", 0, 10) + 2
            end = len(data) - 4
            if (
                start > 2
                and data[start : start + 6] == b"data: "
                and data[end:] == b"\n\n\r\n"
                and data.find(b"\n", start) == end
                and data.find(b"\r", start, end) < 0
                and _hex(data[: start - 2]) == end + 2 - start
            ):
                self.on_chunk(self.state.chunk_from_bytes(data[start + 6 : end], arrival))
                if self._ready:
                    self._wake()
                return
        framer = self.framer
        assert framer is not None
        pieces = framer.feed(data)
        if self.status == 200:
            decoder, state, on_chunk = self.decoder, self.state, self.on_chunk
            for piece in pieces:
                raw = decoder.single(piece)
                if raw is not None:
                    on_chunk(state.chunk_from_bytes(raw, arrival))
                else:
                    for event in decoder.feed(piece, arrival):
                        on_chunk(state.chunk_from_event(event))
            self.fast = framer.state == CHUNK_START and not framer.buffer and decoder.idle
            if self._ready:
                self._wake()
        else:
            for piece in pieces:
                self.payload += piece
        if framer.state == DONE:
            self._end()

    def _on_eof(self) -> None:
        framer = self.framer
        if framer is not None and framer.eof():
            self.keep_alive = False
            self._end()
            return
        shown = redact_url(self.url)
        when = "before the end of the response" if framer is not None else "before answering"
        self._fail(errors.TritonDisconnectedError(f"connection to {shown} dropped: closed {when}", url=shown))

    def _end(self) -> None:
        """The body ended normally: check its end, give the connection back."""
        framer = self.framer
        reusable = self.keep_alive and framer is not None and not framer.extra
        self.ended = True
        self._release(reusable)
        if self.status == 200:
            try:
                self.state.finish(self.decoder.finish())
            except errors.TritonError as exc:
                self.error = exc
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.ended:
            self.error = exc
        self._release(False)
        self._wake()

    def _total_timeout(self) -> None:
        shown = redact_url(self.url)
        self._fail(errors.TotalTimeoutError(f"request to {shown} exceeded the total timeout", url=shown))

    def _release(self, reusable: bool) -> None:
        if self.released:
            return
        self.released = True
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)
        pool = self.pool
        if pool.watchdog is not None:
            pool.watchdog.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        pool.give_back(self.sock, reusable)

    def _dropped(self, exc: OSError) -> errors.TritonError:
        shown = redact_url(self.url)
        return errors.TritonDisconnectedError(f"connection to {shown} failed: {exc}", url=shown)

    async def _wait(self) -> None:
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
