"""A loopback server shaped like Triton's generate API that misbehaves on request, byte by byte.

A real Triton produces most failures only under conditions a test cannot arrange on demand (a reset in
the middle of a stream, a stall, a truncated event, a proxy's HTML page). This server answers the
metadata endpoints like Triton 2.51 does for the TRT-LLM ensemble and plays one fault per request, chosen
by the prompt: ``text_input`` of ``"fault:<name>"`` plays ``<name>`` from :data:`FAULTS`; any other prompt
plays the next fault of the server's ``plan`` (in turn, in the order requests arrive), or its
``default_fault``. So a load test whose dataset names a fault in each line knows, for every record, what
the server did to that request; a load test with one fixed prompt (Locust) knows how many of each.

It is a raw asyncio HTTP/1.1 server (keep-alive, chunked streams) run on its own event loop in a daemon
thread, which gives control of every byte, of resets (``SO_LINGER`` 0) and of silences.

Wire shapes of real failures are taken from ``embedded-triton.md`` (error shapes table) and from runs of
the embedded server: a full queue through the ensemble answers 400 with an SSE error body
("Exceeds maximum queue size"), the same model called directly answers 503 with a JSON body.

Use: ``with FaultyTriton() as server: server.url``; ``server.served`` counts the faults played and
``server.requests`` keeps each generate request's headers and body. Run alone:
``python tests/fakes/faulty_triton.py --port 8000 --fault ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import socket
import ssl
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

__all__ = ["FAULTS", "Fault", "FaultyTriton", "GenerateCall", "fault_prompt"]


@dataclass(frozen=True)
class Fault:
    """One thing the server can do to a streamed request, and what a correct client reports for it."""

    name: str
    does: str
    """What the server sends (for the fault table)."""
    kind: str | None
    """``trtclient.errors.error_kind`` of the failure a correct client reports; None: a success."""


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("ok", "200, one SSE event per token, then the body ends", None),
        Fault("huge_event", "200, one token event whose text is several megabytes, then the tokens", None),
        Fault("stall_headers", "reads the request and never answers", "timeout_read"),
        Fault("stall_body", "200 and one token, then silence with the connection open", "timeout_read"),
        Fault(
            "error_mid_stream",
            'two tokens, then `data: {"error": ...}` inside the 200 stream',
            "stream_error",
        ),
        Fault("empty_200", "200 `text/event-stream` with no event at all", "empty_stream"),
        Fault(
            "error_400_sse", '400 `text/event-stream`, body `data: {"error": "... queue size"}`', "queue_full"
        ),
        Fault("error_500_json", '500 JSON `{"error": "Unable to parse \'data\' ..."}`', "http_500"),
        Fault("error_503", '503 JSON `{"error": "Exceeds maximum queue size"}`', "queue_full"),
        Fault("bad_gateway_html", "502 with a proxy's HTML page", "http_502"),
        Fault("reset_before_headers", "reads the request, then resets the connection (RST)", "disconnect"),
        Fault("reset_mid_stream", "two tokens, then resets the connection (RST)", "disconnect"),
        Fault("close_mid_stream", "two tokens, then closes without ending the chunked body", "disconnect"),
        Fault("partial_event", "two tokens, then half an event, then a clean end of body", "malformed_sse"),
        Fault("missing_final_blank_line", "the last event lacks its closing blank line", "malformed_sse"),
        Fault(
            "missing_blank_line", "two events glued together without the blank line between", "invalid_json"
        ),
        Fault("invalid_json", "one token, then `data: {not json}`", "invalid_json"),
        Fault("json_instead_of_sse", "200 with a JSON object instead of an event stream", "malformed_sse"),
    )
}

FAULT_PREFIX = "fault:"

ENSEMBLE_INPUTS: tuple[tuple[str, str], ...] = (
    ("text_input", "BYTES"),
    ("max_tokens", "INT32"),
    ("stream", "BOOL"),
    ("min_tokens", "INT32"),
    ("end_id", "INT32"),
    ("pad_id", "INT32"),
    ("temperature", "FP32"),
    ("bad_words", "BYTES"),
    ("stop_words", "BYTES"),
)

QUEUE_FULL = "in ensemble 'ensemble', [request id: <id_unknown>] Exceeds maximum queue size"
PARSE_ERROR = "Unable to parse 'data': Shape does not match true shape of 'data' field"
STREAM_ERROR = "in ensemble 'ensemble', Failed to process the request(s) for model 'postprocessing'"


def fault_prompt(name: str) -> str:
    """The prompt that makes the server play fault ``name``."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    return FAULT_PREFIX + name


@dataclass(frozen=True)
class GenerateCall:
    """One generate request as the server received it."""

    path: str
    headers: dict[str, str]
    body: bytes
    fault: str


class _Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


def _token_event(text: str) -> bytes:
    data = {
        "model_name": "ensemble",
        "model_version": "1",
        "sequence_end": False,
        "sequence_id": 0,
        "sequence_start": False,
        "text_output": text,
    }
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_LAST_CHUNK = b"0\r\n\r\n"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _head(status: int, content_type: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {content_type}"]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class FaultyTriton:
    """The misbehaving server; see the module docstring.

    ``plan``: faults played in turn for prompts that name none (else ``default_fault``).
    ``token_delay_s``: pause before each token.
    ``huge_bytes``: size of the text of ``huge_event``. ``ssl_context``: serve HTTPS with it.
    """

    def __init__(
        self,
        *,
        default_fault: str = "ok",
        plan: Sequence[str] = (),
        token_delay_s: float = 0.0,
        huge_bytes: int = 4 << 20,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        unknown = [name for name in (default_fault, *plan) if name not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
        self.default_fault = default_fault
        self.plan = tuple(plan)
        self._turn = 0
        self.token_delay_s = token_delay_s
        self.huge_bytes = huge_bytes
        self.ssl_context = ssl_context
        self.port = port
        self.served: collections.Counter[str] = collections.Counter()
        self.requests: list[GenerateCall] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> FaultyTriton:
        """Listen on loopback (a free port unless one was given) and serve in a background thread."""
        self._thread = threading.Thread(target=self._run, name="faulty-triton", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        thread.join(10)
        self._loop = None
        self._thread = None

    def refuse_connections(self) -> None:
        """Stop listening and drop every open connection: new connections are refused."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)

    def accept_connections(self) -> None:
        """Listen again on the same port."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def __enter__(self) -> FaultyTriton:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", self.port, ssl=self.ssl_context, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _shutdown(self) -> None:
        await self._close_all()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    # ------------------------------------------------------------------ HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None or not await self._dispatch(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            _reset(writer)
        finally:
            self._handlers.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _dispatch(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must not be reused."""
        path = request.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")
        if request.method == "GET" and path in ("/v2/health/ready", "/v2/health/live"):
            return await _send(writer, 200, "text/plain", b"")
        if request.method == "GET" and path == "/metrics":
            return await _send(writer, 200, "text/plain; version=0.0.4", b"")
        if request.method == "GET" and path == "/v2":
            body = {"name": "triton", "version": "2.51.0", "extensions": ["generate"]}
            return await _send(writer, 200, "application/json", json.dumps(body).encode())
        if len(parts) >= 4 and parts[1:3] == ["v2", "models"]:
            model, rest = parts[3], parts[4:]
            if model != "ensemble":
                message = f"Request for unknown model: '{model}' is not found"
                return await _send(writer, 400, "application/json", json.dumps({"error": message}).encode())
            if request.method == "GET" and not rest:
                return await _send(writer, 200, "application/json", _metadata())
            if request.method == "GET" and rest == ["config"]:
                config = {"name": "ensemble", "platform": "ensemble", "parameters": {}}
                return await _send(writer, 200, "application/json", json.dumps(config).encode())
            if request.method == "GET" and rest == ["ready"]:
                return await _send(writer, 200, "text/plain", b"")
            if request.method == "POST" and rest in (["generate_stream"], ["generate"]):
                return await self._generate(request, rest[0] == "generate_stream", reader, writer)
        return await _send(writer, 404, "application/json", b'{"error":"Not Found"}')

    async def _generate(
        self, request: _Request, streamed: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            body = json.loads(request.body)
            prompt = str(body.get("text_input", ""))
            tokens = int(body.get("max_tokens", 5))
        except (ValueError, AttributeError, TypeError):
            message = json.dumps({"error": "failed to parse the request JSON buffer"}).encode()
            return await _send(writer, 500, "application/json", message)
        with self._lock:
            if prompt.startswith(FAULT_PREFIX):
                fault = prompt[len(FAULT_PREFIX) :]
            elif self.plan:
                fault = self.plan[self._turn % len(self.plan)]
                self._turn += 1
            else:
                fault = self.default_fault
            if fault not in FAULTS:
                fault = "ok"
            self.served[fault] += 1
            self.requests.append(GenerateCall(request.path, dict(request.headers), request.body, fault))
        if not streamed:
            return await self._generate_once(fault, tokens, reader, writer)
        return await self._stream(fault, max(tokens, 1), reader, writer)

    async def _generate_once(
        self, fault: str, tokens: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """``/generate``: the faults that make sense for one JSON answer; the others answer normally."""
        if fault in ("stall_headers", "stall_body"):
            await reader.read(1)  # until the client gives up
            return False
        if fault in ("reset_before_headers", "reset_mid_stream"):
            _reset(writer)
            return False
        status_faults = {
            "error_400_sse": (400, QUEUE_FULL),
            "error_500_json": (500, PARSE_ERROR),
            "error_503": (503, QUEUE_FULL),
        }
        if fault in status_faults:
            status, message = status_faults[fault]
            return await _send(writer, status, "application/json", json.dumps({"error": message}).encode())
        if fault == "error_mid_stream":
            message = "generate expects model to produce exactly 1 response, use generate stream instead"
            return await _send(writer, 200, "application/json", json.dumps({"error": message}).encode())
        if fault == "empty_200":
            return await _send(writer, 200, "application/json", b"")
        if fault in ("invalid_json", "partial_event", "missing_blank_line", "missing_final_blank_line"):
            return await _send(writer, 200, "application/json", b'{"text_output": "unfinished')
        if fault == "bad_gateway_html":
            return await _send(writer, 502, "text/html", _HTML_502)
        text = "".join(f" w{i}" for i in range(tokens))
        answer = {"model_name": "ensemble", "model_version": "1", "text_output": text}
        return await _send(writer, 200, "application/json", json.dumps(answer).encode())

    async def _stream(
        self, fault: str, tokens: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if fault == "stall_headers":
            await reader.read(1)
            return False
        if fault == "reset_before_headers":
            _reset(writer)
            return False
        if fault == "error_400_sse":
            payload = b"data: " + json.dumps({"error": QUEUE_FULL}).encode() + b"\n\n"
            return await _send(writer, 400, "text/event-stream; charset=utf-8", payload)
        if fault == "error_500_json":
            return await _send(writer, 500, "application/json", json.dumps({"error": PARSE_ERROR}).encode())
        if fault == "error_503":
            message = json.dumps({"error": "[request id: <id_unknown>] Exceeds maximum queue size"}).encode()
            return await _send(writer, 503, "application/json", message)
        if fault == "bad_gateway_html":
            return await _send(writer, 502, "text/html", _HTML_502)
        if fault == "json_instead_of_sse":
            answer = json.dumps({"model_name": "ensemble", "text_output": " w0"}).encode()
            return await _send(writer, 200, "application/json", answer)

        writer.write(_head(200, "text/event-stream; charset=utf-8"))
        if fault == "empty_200":
            writer.write(_LAST_CHUNK)
            await writer.drain()
            return True
        before_fault = {"stall_body": 1, "invalid_json": 1}.get(fault, 2)
        if fault == "huge_event":
            await self._pause()
            writer.write(_chunk(_token_event(" " + "x" * (self.huge_bytes - 1))))
        plain = fault in ("ok", "huge_event")
        for i in range(tokens if plain else min(before_fault, tokens)):
            await self._pause()
            writer.write(_chunk(_token_event(f" w{i}")))
            await writer.drain()
        if plain:
            writer.write(_LAST_CHUNK)
            await writer.drain()
            return True
        if fault == "stall_body":
            await reader.read(1)
            return False
        if fault in ("reset_mid_stream", "close_mid_stream"):
            if fault == "reset_mid_stream":
                _reset(writer)
            else:
                writer.close()
            return False
        tails = {
            "error_mid_stream": b"data: " + json.dumps({"error": STREAM_ERROR}).encode() + b"\n\n",
            "partial_event": b'data: {"model_name":"ensemble","text_output":" unfini',
            "missing_final_blank_line": _token_event(" last")[:-1],
            "missing_blank_line": _token_event(" glued")[:-1] + _token_event(" together"),
            "invalid_json": b"data: {not json}\n\n",
        }
        writer.write(_chunk(tails[fault]) + _LAST_CHUNK)
        await writer.drain()
        return True

    async def _pause(self) -> None:
        if self.token_delay_s > 0:
            await asyncio.sleep(self.token_delay_s)


_HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"


def _metadata() -> bytes:
    return json.dumps(
        {
            "name": "ensemble",
            "versions": ["1"],
            "platform": "ensemble",
            "inputs": [{"name": n, "datatype": d, "shape": [-1, 1]} for n, d in ENSEMBLE_INPUTS],
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
        }
    ).encode()


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ", 2)
    if len(request_line) != 3:
        return None  # not HTTP/1.1 (e.g. an HTTP/2 preface): drop the connection
    method, target, _ = request_line
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target, headers, body)


async def _send(writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes) -> bool:
    writer.write(_head(status, content_type, len(body)) + body)
    await writer.drain()
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    transport.abort()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Triton-shaped server that misbehaves on request.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", default="ok", choices=sorted(FAULTS), help="fault of prompts naming none")
    parser.add_argument("--plan", nargs="*", default=[], choices=sorted(FAULTS), help="faults played in turn")
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FaultyTriton(
        default_fault=args.fault, plan=args.plan, token_delay_s=args.token_delay_ms / 1000, port=args.port
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
