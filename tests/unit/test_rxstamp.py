"""Kernel receive timestamps: the byte bookkeeping of ``RxClock``, the transport hook on real loopback
sockets, and the async client's stamps when its event loop is held up (``trtclient.rxstamp``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from triton_fake import Exchange, FakeTriton, sse

from trtclient import AsyncTritonClient, TritonClient, rxstamp
from trtclient.rxstamp import RxClock, local_stamp
from trtclient.timing import now_ns

STREAM = "/v2/models/ensemble/generate_stream"
HELD_NS = 100_000_000


class Body:
    """A body buffer as far as ``RxClock`` looks at it."""

    def __init__(self) -> None:
        self.total_bytes = 0

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)


# --- bookkeeping -------------------------------------------------------------------------------------


def test_pieces_follow_the_reads_that_delivered_them() -> None:
    clock, body = RxClock(), Body()
    assert clock.attach(body) == 0
    wall, read = 10_000_000, 50_000_000
    for data, kernel in ((b"aaaa", 9_000_000), (b"bb", 9_500_000), (b"ccc", 9_900_000)):
        body.feed(data)
        clock.on_read(kernel)
    # One take of everything buffered: three pieces, each stamped read - (wall - kernel).
    pieces = clock.segments(b"aaaabbccc", read, wall)
    assert pieces == [(b"aaaa", read - 1_000_000), (b"bb", read - 500_000), (b"ccc", read - 100_000)]
    assert clock.reads == 3


def test_a_take_may_end_inside_a_read_and_the_rest_keeps_its_stamp() -> None:
    clock, body = RxClock(), Body()
    clock.attach(body)
    body.feed(b"abcdef")
    clock.on_read(900)
    assert clock.segments(b"abcd", 5_000, 1_000) == [(b"abcd", 4_900)]
    assert clock.segments(b"ef", 5_010, 1_010) == [(b"ef", 4_900)]


def test_bytes_buffered_before_attaching_get_the_latest_read() -> None:
    clock, body = RxClock(), Body()
    clock.on_read(700)  # the headers
    body.feed(b"data")
    clock.on_read(800)  # the headers' tail and a first event, before the reader attached
    assert clock.attach(body) == 800
    assert clock.segments(b"data", 1_000, 1_000) == [(b"data", 800)]


def test_unstamped_reads_and_unmarked_bytes_keep_the_read_time() -> None:
    clock, body = RxClock(), Body()
    clock.attach(body)
    body.feed(b"xy")
    clock.on_read(0)
    body.feed(b"z")  # fed without a read callback (a path the hook does not see)
    assert clock.segments(b"xyz", 5_000, 9_000) == [(b"xy", 5_000), (b"z", 5_000)]
    assert clock.reads == 0 and clock.missed == 2
    clock.attach(Body())
    assert clock.missed == 0  # counted per response


def test_detach_starts_the_next_response_afresh() -> None:
    clock, first = RxClock(), Body()
    clock.attach(first)
    first.feed(b"old")
    clock.on_read(100)
    clock.detach()
    second = Body()
    clock.on_read(200)  # the next response's headers
    assert clock.attach(second) == 200
    second.feed(b"new")
    clock.on_read(300)
    assert clock.segments(b"new", 1_000, 1_000) == [(b"new", 300)]


def test_local_stamp_stays_between_the_floor_and_the_read() -> None:
    assert local_stamp(0, 500, 10_000) == 500  # unknown
    assert local_stamp(9_900, 500, 10_000) == 400
    assert local_stamp(10_200, 500, 10_000) == 500  # a stamp "from the future" (clock stepped back)
    assert local_stamp(1, 500, 10_000, floor_ns=450) == 450  # clock stepped forward


# --- the transport hook --------------------------------------------------------------------------


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.eof = asyncio.Event()
        self.lost: BaseException | None = None
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        self.eof.set()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc
        self.closed.set()


async def test_the_hooked_transport_reads_stamps_and_ends_like_the_stock_one() -> None:
    """Bytes written while the loop is held are stamped when they arrived, not when they were read;
    end of stream still reaches the protocol."""
    wrote = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1) == b"p":
            writer.write(b"pong")
            await writer.drain()
            wrote.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(Collect, "127.0.0.1", port)
    clock = rxstamp.install(transport)
    assert clock is not None

    async def ping(hold_ns: int = 0) -> int:
        """One exchange; with ``hold_ns``, hold the loop once the answer is on its way back."""
        wrote.clear()
        expected = len(proto.data) + 4
        transport.write(b"p")
        await wrote.wait()  # the server runs on this loop
        held_from = now_ns()
        time.sleep(hold_ns / 1e9)  # a busy loop: the bytes wait in the socket
        while len(proto.data) < expected:
            await asyncio.sleep(0)
        return held_from

    # Linux switches receive timestamping on lazily when the first socket asks: wait for a stamp.
    for _ in range(1000):
        await ping()
        if clock.reads:
            break
    assert clock.reads, "no read ever carried a kernel timestamp"
    body = Body()
    received: list[int] = []
    original = proto.data_received

    def count(data: bytes) -> None:
        body.feed(data)
        received.append(now_ns())
        original(data)

    proto.data_received = count  # type: ignore[method-assign]
    clock.attach(body)
    held_from = await ping(HELD_NS)
    read_ns, wall_ns = now_ns(), time.time_ns()
    assert received[0] >= held_from + HELD_NS
    ((piece, stamp),) = clock.segments(proto.data[-4:], read_ns, wall_ns)
    assert piece == b"pong" and clock.missed == 0
    assert stamp <= held_from  # when the bytes arrived, not when the held loop read them
    transport.write(b"q")
    await asyncio.wait_for(proto.eof.wait(), 5)
    transport.close()
    await proto.closed.wait()
    server.close()
    await server.wait_closed()


def test_install_declines_what_it_does_not_know() -> None:
    class Other:
        pass

    assert rxstamp.install(Other()) is None


# --- the client ----------------------------------------------------------------------------------


def _held_stream(fake: FakeTriton, written: threading.Event) -> None:
    """Requests for 2 tokens get one event, then wait for ``fake.release``; others get one event."""

    def route(x: Exchange) -> None:
        if x.request.json()["max_tokens"] != 2:
            x.stream(sse({"text_output": "w"}))
            return
        x.start_stream()
        x.chunk(sse({"text_output": "a"})[0])
        written.set()
        fake.release.wait(10)
        x.chunk(sse({"text_output": "b"})[0])
        x.end()

    fake.on("POST", STREAM, route)


@pytest.mark.parametrize("kernel", [True, False])
async def test_client_stamps_events_when_they_arrived_even_if_the_loop_was_busy(kernel: bool) -> None:
    fake = FakeTriton()
    written = threading.Event()
    _held_stream(fake, written)
    try:
        client = AsyncTritonClient(fake.url, max_retries=0)
        client.kernel_stamps = kernel
        async with client:
            # Linux switches receive timestamping on lazily: until then streams fall back to reads.
            for _ in range(200):
                async with client.generate_stream("hi", max_tokens=1) as warm:
                    assert [c.text async for c in warm] == ["w"]
                if warm.arrival_clock == "kernel" or not kernel:
                    break
            assert warm.arrival_clock == ("kernel" if kernel else "read")
            async with client.generate_stream("hi", max_tokens=2) as stream:
                assert written.wait(5)
                time.sleep(HELD_NS / 1e9)  # the event waits in the socket while the loop is busy
                held_until = now_ns()
                first = await stream.__anext__()
                fake.release.set()
                rest = [chunk async for chunk in stream]
        assert [c.text for c in (first, *rest)] == ["a", "b"]
        assert stream.arrival_clock == ("kernel" if kernel else "read")
        assert 0 < stream.sent_ns <= stream.headers_ns <= first.arrival_ns <= rest[0].arrival_ns
        if kernel:
            assert first.arrival_ns <= held_until - HELD_NS // 2
        else:
            assert first.arrival_ns >= held_until
    finally:
        fake.close()


def test_the_blocking_client_says_it_stamps_reads() -> None:
    fake = FakeTriton()
    fake.on("POST", STREAM, lambda x: x.stream(sse({"text_output": "a"})))
    try:
        with TritonClient(fake.url) as client, client.generate_stream("hi", max_tokens=1) as stream:
            chunks: list[Any] = list(stream)
        assert [c.text for c in chunks] == ["a"] and stream.arrival_clock == "read"
    finally:
        fake.close()


async def test_tls_connections_fall_back_to_read_stamps(certificate: tuple[str, str]) -> None:
    fake = FakeTriton(tls=certificate)
    fake.on("POST", STREAM, lambda x: x.stream(sse({"text_output": "a"})))
    try:
        async with (
            AsyncTritonClient(fake.url, verify=certificate[0]) as client,
            client.generate_stream("hi", max_tokens=1) as stream,
        ):
            chunks = [chunk async for chunk in stream]
        assert [c.text for c in chunks] == ["a"] and stream.arrival_clock == "read"
    finally:
        fake.close()
