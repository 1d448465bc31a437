"""A minimal, fast loopback server shaped like Triton's generate API, for client-capacity benchmarks.

Triton on two shared cores delivers a few thousand streamed events per second (``embedded-triton.md``),
far less than a good client can take, so client-side figures need a faster source. This one is a raw
asyncio HTTP/1.1 server (keep-alive, chunked responses) run in its own process:

- ``POST /v2/models/{m}/generate_stream``: one ``data: {...}\\n\\n`` event per token, the body ends
  after the last one (no ``[DONE]``), like Triton. Tokens per stream: ``tokens`` if set, else the
  request's ``max_tokens``. Each event carries ``text_output``; with ``return_perf_metrics`` also the
  engine-style ``arrival_time_ns``/``first_token_time_ns``/``last_token_time_ns`` (ns since the
  epoch), with ``return_num_output_tokens``/``return_num_input_tokens`` the counts.
- ``POST /v2/models/{m}/generate``: the same tokens as one JSON object.
- ``GET /v2/models/{m}`` (newest ensemble input names), ``GET /v2/models/{m}/config``, ``GET /v2``,
  ``GET /v2/health/ready`` and ``/live``, ``POST /v2/repository/index``.

Python API: ``with SSESource(tokens=64) as source: source.url``. CLI:
``python -m benchmarks.sse_source --port 8000 --tokens 64 --delay-ms 0 --text-bytes 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["SSESource", "SourceConfig", "main", "start_server"]

ROOT = Path(__file__).resolve().parents[1]

#: Newest TRT-LLM ensemble inputs (name, datatype, shape incl. the batch dimension).
ENSEMBLE_INPUTS: tuple[tuple[str, str, list[int]], ...] = (
    ("text_input", "BYTES", [-1, 1]),
    ("decoder_text_input", "BYTES", [-1, 1]),
    ("max_tokens", "INT32", [-1, 1]),
    ("num_return_sequences", "INT32", [-1, 1]),
    ("bad_words", "BYTES", [-1, -1]),
    ("stop_words", "BYTES", [-1, -1]),
    ("exclude_input_in_output", "BOOL", [-1, 1]),
    ("end_id", "INT32", [-1, 1]),
    ("pad_id", "INT32", [-1, 1]),
    ("top_k", "INT32", [-1, 1]),
    ("top_p", "FP32", [-1, 1]),
    ("temperature", "FP32", [-1, 1]),
    ("length_penalty", "FP32", [-1, 1]),
    ("repetition_penalty", "FP32", [-1, 1]),
    ("min_tokens", "INT32", [-1, 1]),
    ("presence_penalty", "FP32", [-1, 1]),
    ("frequency_penalty", "FP32", [-1, 1]),
    ("seed", "UINT64", [-1, 1]),
    ("return_log_probs", "BOOL", [-1, 1]),
    ("return_context_logits", "BOOL", [-1, 1]),
    ("return_generation_logits", "BOOL", [-1, 1]),
    ("return_perf_metrics", "BOOL", [-1, 1]),
    ("return_num_input_tokens", "BOOL", [-1, 1]),
    ("return_num_output_tokens", "BOOL", [-1, 1]),
    ("beam_width", "INT32", [-1, 1]),
    ("stream", "BOOL", [-1, 1]),
)


@dataclass(frozen=True)
class SourceConfig:
    """What the source sends: tokens per stream (None: the request's max_tokens), pause before each
    token, and the length of each token's text."""

    tokens: int | None = None
    delay_s: float = 0.0
    text_bytes: int = 5

    def token_text(self) -> str:
        """The text of one token: a space and letters, ``text_bytes`` characters long."""
        return (" " + "w" * max(self.text_bytes - 1, 0))[: max(self.text_bytes, 1)]


def _metadata(model: str) -> bytes:
    return json.dumps(
        {
            "name": model,
            "versions": ["1"],
            "platform": "ensemble",
            "inputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in ENSEMBLE_INPUTS],
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
        }
    ).encode()


def _reason(status: int) -> str:
    return {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are handled one after another."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.token = json.dumps(config.token_text())[1:-1]
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            self._close()
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        keep_alive = headers.get("connection", "").lower() != "close"
        self.task = asyncio.get_running_loop().create_task(self._handle(method, target, body, keep_alive))

    async def _handle(self, method: str, target: str, body: bytes, keep_alive: bool) -> None:
        try:
            await self._route(method, target.split("?", 1)[0], body)
        except asyncio.CancelledError:
            return
        self.task = None
        if not keep_alive:
            self._close()
        elif self.buffer:
            self._next_request()

    async def _route(self, method: str, path: str, body: bytes) -> None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["v2", "health"] and method == "GET":
            self._reply(200, b"")
        elif parts == ["v2"] and method == "GET":
            self._reply(200, b'{"name":"sse_source","version":"0","extensions":[]}')
        elif parts == ["v2", "repository", "index"] and method == "POST":
            self._reply(200, b"[]")
        elif len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            model, rest = parts[2], parts[3:]
            if rest and rest[0] == "versions":
                rest = rest[2:]
            if not rest and method == "GET":
                self._reply(200, _metadata(model))
            elif rest == ["config"] and method == "GET":
                config = {"name": model, "platform": "ensemble", "max_batch_size": 64, "parameters": {}}
                self._reply(200, json.dumps(config).encode())
            elif rest == ["ready"] and method == "GET":
                self._reply(200, b"")
            elif rest == ["generate_stream"] and method == "POST":
                await self._stream(model, body)
            elif rest == ["generate"] and method == "POST":
                await self._generate(model, body)
            else:
                self._reply(404, b'{"error":"Not Found"}')
        else:
            self._reply(404, b'{"error":"Not Found"}')

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        if self.transport is None or self.closed:
            return
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.transport.write(head.encode() + body)

    def _request_fields(self, body: bytes) -> dict[str, Any] | None:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            self._reply(400, b'{"error":"failed to parse the request JSON buffer"}')
            return None
        if not isinstance(request, dict) or "text_input" not in request:
            self._reply(400, b'{"error":"missing required input(s) [\'text_input\']"}')
            return None
        return request

    def _count(self, request: dict[str, Any]) -> int:
        if self.config.tokens is not None:
            return self.config.tokens
        value = request.get("max_tokens", 16)
        return value if isinstance(value, int) and value > 0 else 16

    async def _stream(self, model: str, body: bytes) -> None:
        request = self._request_fields(body)
        if request is None or self.transport is None:
            return
        arrival = time.time_ns()
        count = self._count(request)
        perf = request.get("return_perf_metrics") is True
        n_out = request.get("return_num_output_tokens") is True
        n_in = request.get("return_num_input_tokens") is True
        prompt_tokens = len(str(request.get("text_input", "")).split())
        prefix = f'{{"model_name":"{model}","model_version":"1","sequence_end":false,"sequence_id":0,'
        prefix += f'"sequence_start":false,"text_output":"{self.token}"'
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        delay = self.config.delay_s
        if delay > 0:
            # Paced: the process's one ticker writes every stream's due tokens, one wake-up per tick.
            done = asyncio.get_running_loop().create_future()
            _ticker(delay).add(
                _PacedStream(self, prefix, perf, n_out, n_in, arrival, prompt_tokens, count, done)
            )
            await done
            return
        write = self.transport.write
        first_token_ns = 0
        for index in range(count):
            if index:
                await asyncio.sleep(0)
            if not self.writable.is_set():
                await self.writable.wait()
            if self.closed:
                return
            first_token_ns = first_token_ns or time.time_ns()
            write(_event(prefix, perf, n_out, n_in, arrival, prompt_tokens, first_token_ns))
        write(b"0\r\n\r\n")

    async def _generate(self, model: str, body: bytes) -> None:
        request = self._request_fields(body)
        if request is None:
            return
        count = self._count(request)
        if self.config.delay_s > 0:
            await asyncio.sleep(self.config.delay_s * count)
        response = {
            "model_name": model,
            "model_version": "1",
            "sequence_end": False,
            "sequence_id": 0,
            "sequence_start": False,
            "text_output": self.config.token_text() * count,
        }
        if request.get("return_num_output_tokens") is True:
            response["num_output_tokens"] = count
        self._reply(200, json.dumps(response).encode())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _event(
    prefix: str, perf: bool, n_out: bool, n_in: bool, arrival: int, prompt_tokens: int, first_token_ns: int
) -> bytes:
    """One token's event as an HTTP chunk; the engine stamps say "now" for the last token."""
    extra = ""
    if perf:
        now = time.time_ns()
        extra += (
            f',"arrival_time_ns":{arrival},"first_scheduled_time_ns":{arrival},'
            f'"first_token_time_ns":{first_token_ns or now},"last_token_time_ns":{now}'
        )
    if n_out:
        extra += ',"num_output_tokens":1'
    if n_in:
        extra += f',"num_input_tokens":{prompt_tokens}'
    event = f"data: {prefix}{extra}}}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(event), event)


class _PacedStream:
    """One paced response in progress: what its events say and how many are left."""

    __slots__ = (
        "arrival",
        "connection",
        "count",
        "done",
        "first_token_ns",
        "n_in",
        "n_out",
        "perf",
        "prefix",
        "prompt_tokens",
        "sent",
    )

    def __init__(
        self,
        connection: _Connection,
        prefix: str,
        perf: bool,
        n_out: bool,
        n_in: bool,
        arrival: int,
        prompt_tokens: int,
        count: int,
        done: asyncio.Future[None],
    ) -> None:
        self.connection, self.prefix, self.perf, self.n_out, self.n_in = connection, prefix, perf, n_out, n_in
        self.arrival, self.prompt_tokens, self.count, self.done = arrival, prompt_tokens, count, done
        self.first_token_ns = 0
        self.sent = 0

    def write_next(self) -> bool:
        """Write the next token (or wait while the peer is not reading); False once the stream ended."""
        connection = self.connection
        transport = connection.transport
        if connection.closed or transport is None:
            self._end()
            return False
        if not connection.writable.is_set():
            return True  # the peer's buffers are full: this token waits for the next tick
        if self.sent < self.count:
            if self.perf and not self.first_token_ns:
                self.first_token_ns = time.time_ns()
            transport.write(
                _event(
                    self.prefix,
                    self.perf,
                    self.n_out,
                    self.n_in,
                    self.arrival,
                    self.prompt_tokens,
                    self.first_token_ns,
                )
            )
            self.sent += 1
        if self.sent < self.count:
            return True
        transport.write(b"0\r\n\r\n")
        self._end()
        return False

    def _end(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Ticker:
    """Every paced stream of the process on one timer: each wake-up writes all the tokens due by
    then, so thousands of streams cost one wake-up per tick instead of one per token."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.loop = asyncio.get_running_loop()
        self.heap: list[tuple[float, int, _PacedStream]] = []
        self.seq = 0
        self.timer: asyncio.TimerHandle | None = None

    def add(self, stream: _PacedStream) -> None:
        self._push(self.loop.time() + self.delay_s, stream)

    def _push(self, due: float, stream: _PacedStream) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, stream))
        if self.timer is None or due < self.timer.when():
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self.timer = None
        heap = self.heap
        now = self.loop.time()
        due_again: list[tuple[float, _PacedStream]] = []
        while heap and heap[0][0] <= now:
            due, _, stream = heapq.heappop(heap)
            if stream.write_next():
                # A token held back by a full peer keeps its slot; the next one stays on the grid.
                sent_now = stream.connection.writable.is_set()
                due_again.append((due + self.delay_s if sent_now else now + 0.001, stream))
        for due, stream in due_again:
            self.seq += 1
            heapq.heappush(heap, (due, self.seq, stream))
        if heap:
            self.timer = self.loop.call_at(heap[0][0], self._tick)


_TICKERS: dict[float, _Ticker] = {}


def _ticker(delay_s: float) -> _Ticker:
    ticker = _TICKERS.get(delay_s)
    if ticker is None:
        ticker = _TICKERS[delay_s] = _Ticker(delay_s)
    return ticker


async def start_server(
    config: SourceConfig, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
) -> asyncio.Server:
    """Start the source in the running event loop (for use inside a process of its own). With
    ``reuse_port``, several processes listen on one port and the kernel shares connections out."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Connection(config),
        host,
        port,
        backlog=4096,
        reuse_address=True,
        reuse_port=reuse_port or None,
    )


async def _serve(config: SourceConfig, host: str, port: int, reuse_port: bool = False) -> None:
    server = await start_server(config, host, port, reuse_port=reuse_port)
    bound = server.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def _cpu_set(spec: str) -> set[int]:
    """CPUs from a list such as ``0-3,8`` (the form ``taskset -c`` takes)."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


class SSESource:
    """The source in subprocesses: ``start()`` (or ``with``), ``url``, ``stop()``.

    ``processes`` > 1 starts that many source processes on one port (``SO_REUSEPORT``), for clients
    that one Python process could not feed. ``cpus`` (default: ``$SSE_SOURCE_CPUS``, e.g. ``0-3``)
    pins them, so that on a machine with many cores the source and the client under test do not
    share cores."""

    def __init__(
        self,
        *,
        tokens: int | None = None,
        delay_s: float = 0.0,
        text_bytes: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 15.0,
        processes: int = 1,
        cpus: str | None = None,
    ) -> None:
        self.config = SourceConfig(tokens=tokens, delay_s=delay_s, text_bytes=text_bytes)
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.processes = max(1, processes)
        spec = os.environ.get("SSE_SOURCE_CPUS", "") if cpus is None else cpus
        self.cpus = _cpu_set(spec) if spec else None
        self.process: subprocess.Popen[str] | None = None
        self.extra: list[subprocess.Popen[str]] = []
        self._url = ""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if not self._url:
            raise RuntimeError("the source is not running; call start() first")
        return self._url

    def start(self) -> SSESource:
        """Start the subprocesses and wait until each listens."""
        try:
            self.process = self._spawn(self.port)
            self._url = self._listening(self.process)
            port = int(self._url.rsplit(":", 1)[1])
            for _ in range(self.processes - 1):
                process = self._spawn(port)
                self.extra.append(process)
                self._listening(process)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, port: int) -> subprocess.Popen[str]:
        args = [sys.executable, "-m", "benchmarks.sse_source", "--host", self.host, "--port", str(port)]
        args += ["--delay-ms", str(self.config.delay_s * 1000), "--text-bytes", str(self.config.text_bytes)]
        if self.config.tokens is not None:
            args += ["--tokens", str(self.config.tokens)]
        if self.processes > 1:
            args.append("--reuse-port")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        cpus = self.cpus
        pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=pin)

    def _listening(self, process: subprocess.Popen[str]) -> str:
        """The URL a just-started process printed once it listens."""
        line: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not line or not line[0].startswith("listening on "):
            raise RuntimeError(f"the SSE source did not start within {self.startup_timeout} s")
        return line[0].split("listening on ", 1)[1].strip()

    @property
    def pids(self) -> list[int]:
        """The source processes' ids."""
        return [p.pid for p in ([self.process] if self.process else []) + self.extra]

    def stop(self) -> None:
        """Stop the subprocesses (SIGTERM, then SIGKILL after 5 s)."""
        for extra in self.extra:
            self._stop(extra)
        self.extra = []
        first, self.process = self.process, None
        self._url = ""
        if first is not None:
            self._stop(first)

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SSESource:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.sse_source``: serve until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sse_source", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one, printed at start)")
    parser.add_argument("--tokens", type=int, default=None, help="events per stream (default: max_tokens)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="pause before each token, ms")
    parser.add_argument("--text-bytes", type=int, default=5, help="characters of text per token")
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other sources")
    args = parser.parse_args(argv)
    config = SourceConfig(tokens=args.tokens, delay_s=args.delay_ms / 1000.0, text_bytes=args.text_bytes)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, args.host, args.port, args.reuse_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
