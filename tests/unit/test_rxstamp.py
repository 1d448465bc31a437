"""Kernel receive timestamps: the byte bookkeeping of ``RxClock``, the transport hook on real loopback
sockets, and the async client's stamps when its event loop is held up (``trtclient.rxstamp``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
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


class Connection:
    """The protocol side of a connection: which body its parser fills, and one read at a time."""

    def __init__(self) -> None:
        self.body: Body | None = None
        self.clock = RxClock(lambda: self.body)

    def read(self, kernel_ns: int, data: bytes = b"", *, new: Body | None = None, rest: bytes = b"") -> None:
        """One read: ``data`` for the current body; with ``new``, a response whose headers this read
        completed, and ``rest`` its first bytes."""
        self.clock.before_read()
        if self.body is not None:
            self.body.feed(data)
        if new is not None:
            self.body = new
            new.feed(rest)
        self.clock.on_read(kernel_ns)


# --- bookkeeping -------------------------------------------------------------------------------------


def test_pieces_follow_the_reads_that_delivered_them() -> None:
    conn, body = Connection(), Body()
    conn.read(8_000_000, new=body)  # the headers
    timed = conn.clock.attach(body)
    assert timed.headers_kernel_ns == 8_000_000
    wall, read = 10_000_000, 50_000_000
    for data, kernel in ((b"aaaa", 9_000_000), (b"bb", 9_500_000), (b"ccc", 9_900_000)):
        conn.read(kernel, data)
    # One take of everything buffered: three pieces, each stamped read - (wall - kernel).
    pieces = timed.segments(b"aaaabbccc", read, wall)
    assert pieces == [(b"aaaa", read - 1_000_000), (b"bb", read - 500_000), (b"ccc", read - 100_000)]
    assert conn.clock.reads == 4


def test_a_take_may_end_inside_a_read_and_the_rest_keeps_its_stamp() -> None:
    conn, body = Connection(), Body()
    conn.read(800, new=body)
    timed = conn.clock.attach(body)
    conn.read(900, b"abcdef")
    assert timed.segments(b"abcd", 5_000, 1_000) == [(b"abcd", 4_900)]
    assert timed.segments(b"ef", 5_010, 1_010) == [(b"ef", 4_900)]


def test_a_late_reader_still_gets_each_read_s_own_stamp() -> None:
    """The reader attaches only after two more reads came in (its task was busy): the first event
    keeps the stamp of the read that brought it, not the latest one's."""
    conn, body = Connection(), Body()
    conn.read(700, new=body, rest=b"first")  # the headers and a first event
    conn.read(800, b"second")
    timed = conn.clock.attach(body)
    assert timed.headers_kernel_ns == 700
    assert timed.segments(b"firstsecond", 1_000, 1_000) == [(b"first", 700), (b"second", 800)]


def test_a_body_the_clock_never_saw_gets_the_latest_read() -> None:
    conn = Connection()
    conn.read(700)
    body = Body()
    body.feed(b"data")  # fed out of the clock's sight
    conn.read(800)
    timed = conn.clock.attach(body)
    assert timed.headers_kernel_ns == 800
    assert timed.segments(b"data", 1_000, 1_000) == [(b"data", 800)]


def test_unstamped_reads_and_unmarked_bytes_keep_the_read_time() -> None:
    conn, body = Connection(), Body()
    conn.read(0, new=body)
    timed = conn.clock.attach(body)
    conn.read(0, b"xy")
    body.feed(b"z")  # fed without a read callback (a path the hook does not see)
    assert timed.segments(b"xyz", 5_000, 9_000) == [(b"xy", 5_000), (b"z", 5_000)]
    assert conn.clock.reads == 0 and timed.missed == 2
    assert conn.clock.attach(Body()).missed == 0  # counted per response


def test_a_reused_connection_keeps_each_body_to_its_own_reads() -> None:
    """aiohttp frees a connection once the last byte of a body is parsed, so the next request can go
    out on it, and its headers and first event arrive, before the first reader has taken its last
    bytes, let go, or the second reader has attached: nobody disturbs anybody's stamps."""
    conn, first, second = Connection(), Body(), Body()
    conn.read(50, new=first)
    before = conn.clock.attach(first)
    conn.read(100, b"last")  # the first body's last bytes and its end; the connection is free again
    conn.read(200, new=second)  # the second response's headers
    conn.read(300, b"token")
    assert before.segments(b"last", 1_000, 1_000) == [(b"last", 100)]  # the first reader, late
    conn.clock.detach(before)  # ... and its late goodbye
    conn.read(400, b"next")
    after = conn.clock.attach(second)  # the second reader, late too
    assert after.headers_kernel_ns == 200
    assert after.segments(b"tokennext", 1_000, 1_000) == [(b"token", 300), (b"next", 400)]
    assert before.missed == after.missed == 0


def test_the_clock_keeps_only_a_few_bodies_nobody_attached() -> None:
    conn = Connection()
    bodies = [Body() for _ in range(10)]
    for n, body in enumerate(bodies):
        conn.read(n + 1, new=body, rest=b"x")
    assert conn.clock.attach(bodies[-1]).segments(b"x", 100, 100) == [(b"x", 10)]
    assert conn.clock.attach(bodies[0]).segments(b"x", 100, 100) == [(b"x", 10)]  # forgotten: latest
    assert len(conn.clock._recent) == RxClock.KEEP


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
    body: Body | None = None
    clock = rxstamp.install(transport, lambda: body)
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
    timed = clock.attach(body)
    held_from = await ping(HELD_NS)
    read_ns, wall_ns = now_ns(), time.time_ns()
    assert received[0] >= held_from + HELD_NS
    ((piece, stamp),) = timed.segments(proto.data[-4:], read_ns, wall_ns)
    assert piece == b"pong" and timed.missed == 0
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

    assert rxstamp.install(Other(), lambda: None) is None


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


@pytest.mark.parametrize("raw", [False, True], ids=["aiohttp", "raw-streams"])
@pytest.mark.parametrize("kernel", [True, False])
async def test_client_stamps_events_when_they_arrived_even_if_the_loop_was_busy(
    kernel: bool, raw: bool
) -> None:
    fake = FakeTriton()
    written = threading.Event()
    _held_stream(fake, written)
    try:
        client = AsyncTritonClient(fake.url, max_retries=0)
        client.kernel_stamps = kernel
        client.raw_streams = raw
        async with client:
            assert (getattr(client._impl(), "raw", None) is not None) == raw
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


async def test_a_connection_reused_before_the_last_reader_let_go_keeps_kernel_stamps() -> None:
    """aiohttp frees a connection as soon as a body's end is parsed. With one connection, the next
    request goes out on it while the first stream is still open; the first stream's close must not
    take the kernel stamps of the second, whose token arrives after it."""
    fake = FakeTriton()
    gate = threading.Event()
    ports: list[int] = []

    def route(x: Exchange) -> None:
        ports.append(x.handler.client_address[1])
        if x.request.json()["max_tokens"] == 1:
            x.stream(sse({"text_output": "w"}))  # the event and the end at once
            return
        x.start_stream()
        assert gate.wait(10)
        x.chunk(sse({"text_output": "b"})[0])
        x.end()

    fake.on("POST", STREAM, route)
    try:
        async with AsyncTritonClient(fake.url, max_retries=0, connections=1) as client:
            for _ in range(200):  # Linux switches receive timestamping on lazily
                async with client.generate_stream("hi", max_tokens=1) as warm:
                    assert [c.text async for c in warm] == ["w"]
                if warm.arrival_clock == "kernel":
                    break
            first_cm = client.generate_stream("hi", max_tokens=1)
            first = await first_cm.__aenter__()
            assert (await first.__anext__()).text == "w"  # its last event, not yet its end
            second_cm = client.generate_stream("hi", max_tokens=2)
            second = await second_cm.__aenter__()
            await first_cm.__aexit__(None, None, None)  # the first reader lets go only now
            gate.set()
            chunks = [c async for c in second]
            await second_cm.__aexit__(None, None, None)
    finally:
        fake.close()
    assert [c.text for c in chunks] == ["b"]
    assert ports[-1] == ports[-2]  # the same connection
    assert (first.arrival_clock, second.arrival_clock) == ("kernel", "kernel")


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


_FRESH_CONNECTIONS = """
import socket, sys, threading
from trtclient import rxstamp

if sys.argv[1] == "keep":
    assert rxstamp.keep_enabled() and rxstamp.keep_enabled()  # idempotent

listener = socket.create_server(("127.0.0.1", 0))

def serve():
    while True:
        conn, _ = listener.accept()
        with conn:
            while conn.recv(1):
                conn.sendall(b"x")

threading.Thread(target=serve, daemon=True).start()

def first_read_stamped():
    with socket.create_connection(listener.getsockname()) as sock:
        assert rxstamp.enable(sock)
        reader = rxstamp.StampingSocket(sock)
        sock.sendall(b"q")
        assert reader.recv(1) == b"x"
        return reader.stamped

# Wait until stamping is on at all (it follows the first request a moment later).
for _ in range(500):
    if first_read_stamped():
        break
else:
    raise SystemExit("no stamped read")
print(sum(first_read_stamped() for _ in range(40)))
"""


def test_keeping_stamps_enabled_stamps_the_first_read_of_every_new_connection() -> None:
    """Each connection here is the process's only stamping socket and closes before the next opens:
    without the keeper Linux turns stamping off and on between them, and some first reads go unstamped.
    (In a fresh process: the test process's own sockets must not keep stamping on.)"""
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_CONNECTIONS, "keep"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["40"]


def test_keep_enabled_returns_once_the_kernel_stamps_what_arrives() -> None:
    """The keeper's self-addressed datagram came back stamped: the switch is live, not just asked for."""
    assert rxstamp.keep_enabled()
    keeper = rxstamp._keeper
    assert keeper is not None
    assert rxstamp._wait_until_stamping(keeper)
