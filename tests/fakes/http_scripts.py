"""Byte scripts of streamed answers and a tiny loopback server that plays them, one per connection.

A fake on purpose: a real Triton does not drop a connection mid-event or stall on request. Used by the
transport contract test and the record-path tests, so every wire and every load-test path reads the
same bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

MODEL = "ensemble"
PATH = f"/v2/models/{MODEL}/generate_stream"
#: Upper bound on any wait; nothing waits this long unless something is broken.
PATIENCE_S = 10.0
#: The read timeout of the stall case: short, since the case waits for it to pass.
STALL_READ_S = 0.4

Script = Callable[[socket.socket], None]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(text: str) -> bytes:
    return b'data: {"model_name":"ensemble","text_output":"%s"}\n\n' % text.encode()


_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)
_END = b"0\r\n\r\n"


def _ok(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + chunk(event("a")) + chunk(event("b")) + _END)


def _error_before_first_event(conn: socket.socket, stop: threading.Event) -> None:
    body = b'{"error":"Model ensemble: no such input"}'
    conn.sendall(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def _error_event_after_tokens(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + chunk(event("a")) + chunk(b'data: {"error":"engine failed"}\n\n') + _END)


def _empty_200(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + _END)


def _truncated_event(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + chunk(event("a")) + chunk(b'data: {"text_out') + _END)


def _dropped_connection(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + chunk(event("a")))
    conn.shutdown(socket.SHUT_RDWR)  # no last chunk: the body breaks off


def _stall(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(_SSE_HEAD + chunk(event("a")))
    stop.wait(PATIENCE_S)  # silent until the client gives up (or the test ends)


@dataclass(frozen=True)
class Case:
    script: Callable[[socket.socket, threading.Event], None]
    texts: list[str]
    status: int
    kind: str | None
    read_s: float = PATIENCE_S


CASES: dict[str, Case] = {
    "ok": Case(_ok, ["a", "b"], 200, None),
    "error-before-first-event": Case(_error_before_first_event, [], 400, "http_400"),
    "error-event-after-tokens": Case(_error_event_after_tokens, ["a"], 200, "stream_error"),
    "empty-200": Case(_empty_200, [], 200, "empty_stream"),
    "truncated-event": Case(_truncated_event, ["a"], 200, "malformed_sse"),
    "dropped-connection": Case(_dropped_connection, ["a"], 200, "disconnect"),
    "stall": Case(_stall, ["a"], 200, "timeout_read", read_s=STALL_READ_S),
}


class ScriptServer:
    """Accepts connections on 127.0.0.1; for each, reads one request and plays the script."""

    def __init__(self, script: Callable[[socket.socket, threading.Event], None]) -> None:
        self.script = script
        self.stop = threading.Event()
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = read_request(conn)
                if not request:
                    continue
                self.requests.append(request)
                with contextlib.suppress(OSError):  # the client closed first: fine for the script
                    self.script(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(PATIENCE_S)
        assert not self.thread.is_alive()


def read_request(conn: socket.socket) -> bytes:
    """One HTTP request (head and Content-Length body); b"" when the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body
