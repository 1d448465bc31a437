"""The async client's raw streams: HTTP/1.1 framing split anywhere across reads, and the pool's
keep-alive connections (opened ahead, reused, replaced when the server closed them).

What every transport must make of a byte script (errors, truncation, stalls) is in
``test_contract.py``; kernel stamps on this path in ``test_rxstamp.py``.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from trtclient import errors
from trtclient.options import Timeout
from trtclient.streaming import StreamHead, StreamState
from trtclient.transports.base import Endpoint
from trtclient.transports.http1 import BodyFramer, HTTPParseError, parse_head
from trtclient.transports.raw_stream import RawStreamPool

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY = b"".join(b'data: {"text_output":"%d"}\n\n' % i for i in range(5))


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: 1\r\n\r\n"


def _framer(head: bytes) -> BodyFramer:
    parsed = parse_head(head)
    assert parsed is not None
    return parsed[0].framer()


@pytest.mark.parametrize("size", [1, 7, 29, len(BODY)])
def test_a_chunked_body_split_anywhere_gives_the_same_bytes(size: int) -> None:
    wire = _chunked(BODY, size) + b"NEXT"
    for cut in range(len(wire) + 1):
        framer = _framer(HEAD)
        got = b"".join(framer.feed(wire[:cut]) + framer.feed(wire[cut:]))
        assert got == BODY and framer.done and framer.extra == b"NEXT", cut


def test_one_byte_at_a_time_and_one_chunk_per_read() -> None:
    framer = _framer(HEAD)
    wire = _chunked(BODY, 9)
    assert b"".join(piece for i in range(len(wire)) for piece in framer.feed(wire[i : i + 1])) == BODY
    framer = _framer(HEAD)
    one = b"%x\r\n%s\r\n" % (len(BODY), BODY)
    assert (framer.feed(one), framer.done) == ([BODY], False)
    assert (framer.feed(b"0\r\n\r\n"), framer.done) == ([], True)


def test_length_and_close_framed_bodies() -> None:
    framer = _framer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\n")
    assert framer.feed(b"ab") == [b"ab"] and framer.feed(b"cdefg") == [b"cde"]
    assert framer.done and framer.extra == b"fg"
    framer = _framer(b"HTTP/1.0 200 OK\r\n\r\n")
    assert (framer.feed(b"abc"), framer.done) == ([b"abc"], False)
    assert (framer.eof(), framer.done) == (True, True)
    cut_short = _framer(HEAD)
    cut_short.feed(b"5\r\nab")
    assert not cut_short.eof()


def test_heads_say_whether_the_connection_stays_open() -> None:
    def keep(head: bytes) -> bool:
        parsed = parse_head(head + b"\r\n")
        assert parsed is not None
        return parsed[0].keep_alive

    assert keep(b"HTTP/1.1 200 OK\r\n")
    assert not keep(b"HTTP/1.1 200 OK\r\nConnection: close\r\n")
    assert not keep(b"HTTP/1.0 200 OK\r\n")
    assert keep(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n")
    assert parse_head(b"HTTP/1.1 200 OK\r\nA: b\r\n") is None  # not complete yet
    wire = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\n\r\nrest"
    parsed = parse_head(wire)
    assert parsed is not None and parsed[0].headers == {"x-a": "1, 2"} and wire[parsed[1] :] == b"rest"


@pytest.mark.parametrize(
    "wire",
    [b"HTTP/2 200\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"],
)
def test_heads_it_does_not_understand_are_refused(wire: bytes) -> None:
    with pytest.raises(HTTPParseError):
        parse_head(wire)


def test_invalid_chunk_sizes_and_encodings_are_refused() -> None:
    with pytest.raises(HTTPParseError):
        _framer(HEAD).feed(b"zz\r\nabc\r\n")
    with pytest.raises(HTTPParseError):
        _framer(HEAD).feed(b"3\r\nabcXY")
    with pytest.raises(HTTPParseError):
        _framer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")


# --- the pool ------------------------------------------------------------------------------------


class KeepAliveServer:
    """Answers every request with two events on a keep-alive connection; counts connections.
    With ``close_after_each``, the server closes each connection once its answer is sent."""

    def __init__(self, close_after_each: bool = False) -> None:
        self.connections = 0
        self.requests = 0
        self.close_after_each = close_after_each
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.requests += 1
                body = b'data: {"text_output":"a"}\n\ndata: {"text_output":"b"}\n\n'
                writer.write(HEAD + _chunked(body, 28).replace(b"X-Trailer: 1\r\n", b""))
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def _stream(pool: RawStreamPool, url: str) -> list[str]:
    head, state = StreamHead(), StreamState()
    path = "/v2/models/m/generate_stream"
    source = await pool.open_stream(url + path, path, b"{}", head, state)
    texts: list[str] = []
    try:
        await source.consume(lambda chunk: texts.append(chunk.text))
    finally:
        source.close()
    assert head.status_code == 200 and head.headers["content-type"] == "text/event-stream"
    return texts


async def _with_server(server: KeepAliveServer, connections: int, body: object) -> None:
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    pool = RawStreamPool(
        Endpoint(url, Timeout(connect=5, read=5, total=None), {}, True, None),
        connections=connections,
        kernel_stamps=False,
        watchdog=None,
    )
    try:
        await body(pool, url)  # type: ignore[operator]
    finally:
        await pool.aclose()
        listener.close()
        for writer in server.writers:
            writer.close()
        await listener.wait_closed()


async def test_connections_opened_ahead_are_the_ones_the_streams_use() -> None:
    server = KeepAliveServer()

    async def go(pool: RawStreamPool, url: str) -> None:
        await pool.preopen(3)
        assert len(pool.idle) == 3
        results = await asyncio.gather(*(_stream(pool, url) for _ in range(3)))
        assert results == [["a", "b"]] * 3
        assert await _stream(pool, url) == ["a", "b"]

    await _with_server(server, 3, go)
    assert (server.connections, server.requests) == (3, 4)


async def test_the_pool_holds_requests_beyond_its_size_until_a_connection_is_free() -> None:
    server = KeepAliveServer()

    async def go(pool: RawStreamPool, url: str) -> None:
        assert await asyncio.gather(*(_stream(pool, url) for _ in range(5))) == [["a", "b"]] * 5

    await _with_server(server, 2, go)
    assert server.connections == 2 and server.requests == 5


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending() -> None:
    server = KeepAliveServer(close_after_each=True)

    async def go(pool: RawStreamPool, url: str) -> None:
        for _ in range(3):
            assert await _stream(pool, url) == ["a", "b"]
            for _ in range(100):  # the server's close reaches this side
                if pool.idle and not _idle_is_open(pool):
                    break
                await asyncio.sleep(0.01)

    await _with_server(server, 1, go)
    assert (server.connections, server.requests) == (3, 3)


def _idle_is_open(pool: RawStreamPool) -> bool:
    try:
        pool.idle[-1].recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


async def test_a_pool_that_cannot_connect_says_so() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    url = f"http://127.0.0.1:{port}"
    pool = RawStreamPool(
        Endpoint(url, Timeout(connect=5, read=5, total=None), {}, True, None),
        connections=1,
        kernel_stamps=False,
        watchdog=None,
    )
    with pytest.raises(errors.TritonConnectionError):
        await _stream(pool, url)
    assert pool.slots._value == 1  # the slot was given back


async def test_one_event_per_read_and_odd_events_between_give_the_events_in_order() -> None:
    """Each chunk is written once the previous one was handed on, so every read holds one chunk:
    plain Triton events (the shortcut), and between them events the shortcut must leave to the
    decoder (two data lines, a comment, CRLF line ends, an event split over two chunks)."""
    chunks = [
        b'data: {"text_output":"a"}\n\n',
        b'data: {"text_output":"b"}\n\n',
        b'data: {"text_output":\ndata: "c"}\n\n',
        b'data: {"text_output":"d"}\n\n',
        b': a comment\n\ndata: {"text_output":"e"}\n\n',
        b'data: {"text_output":"f"}\n\n',
        b'data: {"text_out',
        b'put":"g"}\n\n',
        b'data: {"text_output":"h"}\n\n',
        b'data: {"text_output":"i"}\r\n\r\n',
        b'data: {"text_output":"j"}\n\n',
    ]
    handed_on = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(HEAD)
        for data in chunks:
            await writer.drain()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            if data.endswith(b"\n\n"):
                await handed_on.wait()
                handed_on.clear()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    pool = RawStreamPool(
        Endpoint(url, Timeout(connect=5, read=5, total=None), {}, True, None),
        connections=1,
        kernel_stamps=False,
        watchdog=None,
    )
    texts: list[str] = []

    def take(chunk: object) -> None:
        texts.append(chunk.text)  # type: ignore[attr-defined]
        handed_on.set()

    try:
        head, state = StreamHead(), StreamState()
        path = "/v2/models/m/generate_stream"
        source = await pool.open_stream(url + path, path, b"{}", head, state)
        await source.consume(take)
        source.close()
    finally:
        await pool.aclose()
        listener.close()
        await listener.wait_closed()
    assert texts == list("abcdefghij")
