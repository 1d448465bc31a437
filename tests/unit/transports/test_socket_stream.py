"""The socket transport (``trtclient/transports/socket_stream.py``, the Locust user's wire) against scripted
loopback servers.

Each test starts a tiny TCP server on 127.0.0.1 that answers with exact bytes, including answers a
real Triton rarely gives (a body cut off mid-stream, a connection closed while idle, silence), and
checks that failures come out as trtclient's exceptions with trtclient's error kinds. The module
imports no locust, so it runs here on plain blocking sockets; it is loaded by path.
"""

from __future__ import annotations

import os
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_scripts import read_request

from trtclient import errors
from trtclient.errors import error_kind
from trtclient.options import Timeout
from trtclient.schema import StreamChunk
from trtclient.streaming import StreamHead, StreamState
from trtclient.timing import now_ns
from trtclient.transports import socket_stream as sc

ROOT = Path(__file__).resolve().parents[2]
PATH = "/v2/models/ensemble/generate_stream"
BODY = b'{"text_input":"hi","max_tokens":2,"stream":true}'
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
)
#: Upper bound on any wait in these tests; they never wait this long unless something is broken.
PATIENCE_S = 10.0


Script = Callable[[socket.socket, int], None]


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and runs ``script(connection, number)`` for each, in order."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                try:
                    self.script(conn, self.accepted)
                except OSError:
                    pass
                except BaseException as exc:  # reported by close()
                    self.errors.append(exc)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(PATIENCE_S)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


@pytest.fixture()
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(text: str) -> bytes:
    return b'data: {"model_name":"ensemble","text_output":"%s"}\n\n' % text.encode()


END = b"0\r\n\r\n"


def run(url: str, timeout: Timeout | None = None) -> list[StreamChunk]:
    """One request through a fresh connection (closed afterwards): the chunks."""
    connection = sc.Connection(url, timeout or Timeout(connect=2.0, read=PATIENCE_S))
    chunks: list[StreamChunk] = []
    try:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), chunks.append)
    finally:
        connection.close()
    return chunks


def test_each_event_is_handed_on_before_the_next_one_is_even_written(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """The server writes the second event only after the client has the first: a reader that waited
    for a fuller buffer (as a block-sized read does) would stall here until the read timeout."""
    first_received = threading.Event()
    requests: list[bytes] = []

    def script(conn: socket.socket, _: int) -> None:
        requests.append(read_request(conn))
        conn.sendall(SSE_HEAD + chunk(event("Hel")))
        assert first_received.wait(PATIENCE_S)
        conn.sendall(chunk(event("lo")) + END)
        read_request(conn)  # keep the connection until the client closes it

    server = serve(script)
    released: list[int] = []

    def on_chunk(c: StreamChunk) -> None:
        chunks.append(c)
        if len(chunks) == 1:
            released.append(now_ns())
            first_received.set()

    chunks: list[StreamChunk] = []
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    head = StreamHead()
    connection.stream(PATH, BODY, head, StreamState(), on_chunk)
    connection.close()
    assert [c.text for c in chunks] == ["Hel", "lo"]
    assert chunks[0].arrival_ns <= released[0] < chunks[1].arrival_ns
    assert head.sent_ns and head.headers_ns
    assert head.sent_ns <= head.headers_ns <= chunks[0].arrival_ns
    assert head.status_code == 200
    assert requests[0].startswith(b"POST /v2/models/ensemble/generate_stream HTTP/1.1\r\n")
    assert requests[0].endswith(b"\r\n\r\n" + BODY)


def test_events_split_anywhere_across_chunks_and_writes(serve: Callable[[Script], ScriptedServer]) -> None:
    whole = event("a") + event("b") + event("c")
    pieces = [whole[:7], whole[7:40], whole[40:41], whole[41:]]

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD)
        for piece in pieces:
            conn.sendall(chunk(piece))
        conn.sendall(END)

    chunks = run(serve(script).url)
    assert [c.text for c in chunks] == ["a", "b", "c"]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_events_that_arrived_together_are_taken_in_one_read(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three events in one write (two HTTP chunks) cost one socket read, and each is stamped once with
    it; an event split over two writes keeps the stamp of the read that brought its first byte."""
    second_written = threading.Event()

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD + chunk(event("a") + event("b")) + chunk(event("c") + event("d")[:9]))
        assert second_written.wait(PATIENCE_S)
        conn.sendall(chunk(event("d")[9:]) + END)

    reads: list[int] = []
    real_recv = socket.socket.recv

    def counting_recv(sock: socket.socket, size: int, *args: int) -> bytes:
        data = real_recv(sock, size, *args)
        reads.append(len(data))
        return data

    chunks: list[StreamChunk] = []

    def on_chunk(c: StreamChunk) -> None:
        chunks.append(c)
        if len(chunks) == 3:
            second_written.set()

    server = serve(script)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S), kernel_stamps=False)
    monkeypatch.setattr(socket.socket, "recv", counting_recv)
    try:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), on_chunk)
    finally:
        monkeypatch.undo()
        connection.close()
    assert [c.text for c in chunks] == ["a", "b", "c", "d"]
    assert chunks[0].arrival_ns == chunks[1].arrival_ns == chunks[2].arrival_ns == chunks[3].arrival_ns
    # The head and the first three events and a half came in one read (loopback delivers one write
    # at once), the rest in a second: one read per burst, not one per line.
    assert len(reads) <= 3, reads


def test_keeps_the_connection_for_the_next_request(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        while read_request(conn):
            conn.sendall(SSE_HEAD + chunk(event("x")) + END)

    server = serve(script)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    for _ in range(3):
        got: list[StreamChunk] = []
        connection.stream(PATH, BODY, StreamHead(), StreamState(), got.append)
        assert [c.text for c in got] == ["x"]
    connection.close()
    assert server.accepted == 1


def test_a_kept_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    closed = threading.Event()

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD + chunk(event("x")) + END)  # keep-alive by HTTP/1.1 default...
        conn.close()  # ...and yet gone before the next request
        closed.set()

    server = serve(script)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    for _ in range(2):
        got: list[StreamChunk] = []
        connection.stream(PATH, BODY, StreamHead(), StreamState(), got.append)
        assert [c.text for c in got] == ["x"]
        assert closed.wait(PATIENCE_S)
        closed.clear()
    connection.close()
    assert server.accepted == 2


def test_a_reset_after_the_request_arrived_is_a_failure_never_a_second_send(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    received: list[bytes] = []

    def script(conn: socket.socket, _: int) -> None:
        received.append(read_request(conn))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    server = serve(script)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    connection.connect()  # as a Locust user does when it starts
    with pytest.raises(errors.TritonDisconnectedError) as caught:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
    assert error_kind(caught.value) == "disconnect"
    assert server.accepted == 1 and len(received) == 1


def test_an_error_status_raises_with_tritons_message(serve: Callable[[Script], ScriptedServer]) -> None:
    body = b'{"error":"in ensemble \'ensemble\', unexpected input"}'

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    connection = sc.Connection(serve(script).url, Timeout(connect=2.0, read=PATIENCE_S))
    head = StreamHead()
    with pytest.raises(errors.BadRequestError) as caught:
        connection.stream(PATH, BODY, head, StreamState(), lambda c: None)
    assert "unexpected input" in str(caught.value)
    assert error_kind(caught.value) == "http_400"
    assert head.status_code == 400


def test_an_error_event_inside_a_200_stream_fails_after_the_tokens_before_it(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD + chunk(event("ok") + b'data: {"error":"engine failed"}\n\n') + END)

    got: list[StreamChunk] = []
    connection = sc.Connection(serve(script).url, Timeout(connect=2.0, read=PATIENCE_S))
    with pytest.raises(errors.TritonStreamError) as caught:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), got.append)
    assert [c.text for c in got] == ["ok"]
    assert error_kind(caught.value) == "stream_error"
    assert "engine failed" in str(caught.value)


def test_a_200_stream_without_events_is_an_error(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD + END)

    with pytest.raises(errors.EmptyStreamError) as caught:
        run(serve(script).url)
    assert error_kind(caught.value) == "empty_stream"


def test_a_body_cut_off_mid_stream_is_a_disconnect(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(SSE_HEAD + chunk(event("a")) + b"40\r\ndata: {")  # then the server goes away

    got: list[StreamChunk] = []
    connection = sc.Connection(serve(script).url, Timeout(connect=2.0, read=PATIENCE_S))
    with pytest.raises(errors.TritonDisconnectedError) as caught:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), got.append)
    assert [c.text for c in got] == ["a"]
    assert error_kind(caught.value) == "disconnect"
    assert connection.sock is None  # a half-read connection is never reused


def test_nobody_listening_is_a_connect_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(errors.TritonConnectionError) as caught:
        run(f"http://127.0.0.1:{port}")
    assert error_kind(caught.value) == "connect"


def test_silence_longer_than_the_read_timeout(serve: Callable[[Script], ScriptedServer]) -> None:
    done = threading.Event()

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        done.wait(PATIENCE_S)  # never answers

    server = serve(script)
    try:
        with pytest.raises(errors.ReadTimeoutError) as caught:
            run(server.url, Timeout(connect=2.0, read=0.2))
    finally:
        done.set()
    assert error_kind(caught.value) == "timeout_read"


HELD_NS = 100_000_000


@pytest.mark.parametrize("kernel", [True, False])
def test_events_are_stamped_when_they_arrived_even_if_the_user_was_busy(
    serve: Callable[[Script], ScriptedServer], kernel: bool
) -> None:
    """The second event reaches the socket while the user is still busy with the first (held 100 ms on
    purpose, as a loaded process would be): with kernel stamps it keeps its arrival time, with read
    stamps it gets the time it was read."""
    hold = threading.Event()
    release = threading.Event()
    written = threading.Event()
    written_ns: list[int] = []

    def script(conn: socket.socket, _: int) -> None:
        while read_request(conn):
            if not hold.is_set():
                conn.sendall(SSE_HEAD + chunk(event("w")) + END)
                continue
            conn.sendall(SSE_HEAD + chunk(event("a")))
            assert release.wait(PATIENCE_S)
            written_ns.append(now_ns())
            conn.sendall(chunk(event("b")) + END)
            written.set()

    connection = sc.Connection(serve(script).url, Timeout(connect=2.0, read=PATIENCE_S), kernel_stamps=kernel)
    try:
        # Linux switches receive timestamping on lazily: until then reads come without stamps.
        for _ in range(200):
            warm = StreamHead()
            connection.stream(PATH, BODY, warm, StreamState(), lambda _c: None)
            if warm.arrival_clock == "kernel" or not kernel:
                break
        assert warm.arrival_clock == ("kernel" if kernel else "read")

        chunks: list[StreamChunk] = []
        held_until: list[int] = []

        def on_chunk(c: StreamChunk) -> None:
            chunks.append(c)
            if len(chunks) == 1:
                release.set()
                assert written.wait(PATIENCE_S)
                time.sleep(HELD_NS / 1e9)  # the second event waits in the socket while the user is busy
                held_until.append(now_ns())

        hold.set()
        head = StreamHead()
        connection.stream(PATH, BODY, head, StreamState(), on_chunk)
    finally:
        connection.close()
    assert [c.text for c in chunks] == ["a", "b"]
    assert head.arrival_clock == ("kernel" if kernel else "read")
    assert head.sent_ns and head.headers_ns
    assert head.sent_ns <= head.headers_ns <= chunks[0].arrival_ns <= chunks[1].arrival_ns
    if kernel:
        assert written_ns[0] - 1_000_000 <= chunks[1].arrival_ns <= held_until[0] - HELD_NS // 2
    else:
        assert chunks[1].arrival_ns >= held_until[0]


def test_tls_connections_keep_read_stamps(certificate: tuple[str, str]) -> None:
    """recvmsg does not exist on a TLS socket: the connection stamps reads and says so."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            read_request(tls)
            tls.sendall(SSE_HEAD + chunk(event("t")) + END)
            read_request(tls)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{port}"
    connection = sc.Connection(url, Timeout(connect=2.0, read=PATIENCE_S), verify=cert)
    try:
        head = StreamHead()
        chunks: list[StreamChunk] = []
        connection.stream(PATH, BODY, head, StreamState(), chunks.append)
    finally:
        connection.close()
        thread.join(PATIENCE_S)
        listener.close()
    assert [c.text for c in chunks] == ["t"]
    assert connection.stamper is None and head.arrival_clock == "read"


def test_an_idle_connection_is_checked_whatever_its_descriptor_number() -> None:
    """A worker with a thousand connections has descriptors from 1024 up, which select() refuses; the
    idle check before reusing a kept connection must work there too (it failed every request)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = 1500
    if hard != resource.RLIM_INFINITY and hard <= high:
        pytest.skip(f"the descriptor limit ({hard}) does not reach {high}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, high + 1), hard))
    a, b = socket.socketpair()
    try:
        os.dup2(a.fileno(), high)
        kept = socket.socket(fileno=high)
        try:
            assert not sc._readable(kept)  # idle: nothing to read
            b.close()  # the peer closes: readable (end of stream)
            assert sc._readable(kept)
        finally:
            kept.close()
    finally:
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_prepare_replaces_a_kept_connection_the_server_closed_before_the_request_is_due(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    """A Locust user gets its connection ready shortly before an arrival's time, so the send is only the
    write: a connection the server closed while idle is replaced then, and the request goes on the new one."""
    closed, second = threading.Event(), threading.Event()
    requests: list[int] = []

    def script(conn: socket.socket, number: int) -> None:
        if number == 2:
            second.set()
        read_request(conn)
        requests.append(number)
        conn.sendall(SSE_HEAD + chunk(event("x")) + END)
        if number == 1:
            conn.close()
            closed.set()
        else:
            while read_request(conn):
                conn.sendall(SSE_HEAD + chunk(event("y")) + END)

    server = serve(script)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    try:
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
        assert closed.wait(PATIENCE_S)
        connection.prepare()
        assert second.wait(PATIENCE_S)  # the new connection is open before the request
        got: list[StreamChunk] = []
        connection.stream(PATH, BODY, StreamHead(), StreamState(), got.append)
        assert [c.text for c in got] == ["x"] and requests == [1, 2]
    finally:
        connection.close()
    assert server.accepted == 2


def test_prepare_opens_a_connection_and_the_send_after_it_skips_the_idle_check(
    serve: Callable[[Script], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def script(conn: socket.socket, _: int) -> None:
        while read_request(conn):
            conn.sendall(SSE_HEAD + chunk(event("x")) + END)

    server = serve(script)
    checks: list[socket.socket] = []
    readable = sc._readable

    def counting(sock: socket.socket) -> bool:
        checks.append(sock)
        return readable(sock)

    monkeypatch.setattr(sc, "_readable", counting)
    connection = sc.Connection(server.url, Timeout(connect=2.0, read=PATIENCE_S))
    connection.check_fresh_ns = round(PATIENCE_S * 1e9)  # a slow test machine keeps the check fresh
    try:
        connection.prepare()  # none yet: opened, nothing to check
        assert connection.sock is not None and checks == []
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
        assert checks == []  # just opened: the send is the write only
        connection.prepare()
        assert len(checks) == 1
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
        assert len(checks) == 1  # checked by prepare: not again
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
        assert len(checks) == 2  # without prepare: checked before the send, as always
        connection.prepare()
        connection.check_fresh_ns = -1  # a check too long ago: made again before the send
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
        assert len(checks) == 4
    finally:
        connection.close()
    assert server.accepted == 1


def test_prepare_leaves_a_connect_failure_for_the_request() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    connection = sc.Connection(f"http://127.0.0.1:{port}", Timeout(connect=2.0, read=PATIENCE_S))
    connection.prepare()
    assert connection.sock is None and connection.checked_ns is None
    with pytest.raises(errors.TritonConnectionError):
        connection.stream(PATH, BODY, StreamHead(), StreamState(), lambda c: None)
