"""A loopback stand-in for Triton's HTTP API, run in a thread by the tests that need it.

It answers the metadata endpoints like Triton 2.51 does for the TRT-LLM ensemble, and lets a test
script ``/generate`` and ``/generate_stream`` byte by byte: error bodies, error events after tokens,
empty 200 streams, truncated events, dropped connections, stalls. These are the cases a real server
produces only under conditions a unit test cannot arrange on demand.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NEW_INPUTS: dict[str, str] = {
    "text_input": "BYTES",
    "max_tokens": "INT32",
    "min_tokens": "INT32",
    "seed": "UINT64",
    "stream": "BOOL",
    "temperature": "FP32",
    "top_k": "INT32",
    "stop_words": "BYTES",
    "return_num_output_tokens": "BOOL",
}
OLD_INPUTS: dict[str, str] = {
    "text_input": "BYTES",
    "max_tokens": "INT32",
    "min_length": "INT32",
    "random_seed": "UINT64",
    "stream": "BOOL",
}


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Exchange:
    """The reply side of one request, for route handlers."""

    def __init__(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        self.handler = handler
        self.request = request

    def send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.handler.send_header(name.replace("_", "-"), value)
        self.handler.end_headers()
        self.handler.wfile.write(body)

    def json(self, status: int, data: Any, **headers: str) -> None:
        self.send(status, json.dumps(data).encode(), **headers)

    def start_stream(self, status: int = 200) -> None:
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.end_headers()
        self.handler.wfile.flush()

    def chunk(self, data: bytes) -> bool:
        """Send one HTTP chunk; False once the client is gone."""
        try:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()
        except OSError:
            return False
        return True

    def end(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection without ending the chunked body."""
        self.handler.wfile.flush()
        self.handler.close_connection = True
        self.handler.connection.shutdown(socket.SHUT_RDWR)

    def stream(self, pieces: Iterable[bytes], status: int = 200, end: bool = True) -> None:
        self.start_stream(status)
        for piece in pieces:
            self.chunk(piece)
        if end:
            self.end()


Route = Callable[[Exchange], None]


def sse(*payloads: dict[str, Any] | bytes) -> list[bytes]:
    """Each payload as one ``data: ...\\n\\n`` event."""
    return [b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n" for p in payloads]


class FakeTriton:
    """The fake server: ``url``, ``routes`` keyed by (method, path), ``requests`` received."""

    def __init__(
        self,
        inputs: dict[str, str] | None = None,
        models: tuple[str, ...] = ("ensemble",),
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.inputs = dict(NEW_INPUTS if inputs is None else inputs)
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Route] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.release = threading.Event()
        for model in models:
            self._model_routes(model)
        self.routes[("GET", "/v2/health/live")] = lambda x: x.send(200, b"")
        self.routes[("GET", "/v2/health/ready")] = lambda x: x.send(200, b"")
        self.routes[("GET", "/v2")] = lambda x: x.json(
            200, {"name": "triton", "version": "2.51.0", "extensions": []}
        )
        self.routes[("POST", "/v2/repository/index")] = lambda x: x.json(
            200, [{"name": m, "version": "1", "state": "READY"} for m in models]
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)
        return f"{self.scheme}://{host}:{port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    def on(self, method: str, path: str, route: Route) -> None:
        self.routes[(method, path)] = route

    def _model_routes(self, model: str) -> None:
        base = f"/v2/models/{model}"
        self.configs[model] = {"name": model, "platform": "ensemble", "max_batch_size": 64, "parameters": {}}

        def metadata(x: Exchange) -> None:
            inputs = [{"name": n, "datatype": d, "shape": [-1, 1]} for n, d in self.inputs.items()]
            outputs = [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}]
            x.json(
                200,
                {
                    "name": model,
                    "versions": ["1"],
                    "platform": "ensemble",
                    "inputs": inputs,
                    "outputs": outputs,
                },
            )

        self.routes[("GET", base)] = metadata
        self.routes[("GET", base + "/config")] = lambda x: x.json(200, self.configs[model])
        self.routes[("GET", base + "/ready")] = lambda x: x.send(200, b"")
        self.routes[("GET", base + "/stats")] = lambda x: x.json(
            200,
            {
                "model_stats": [
                    {
                        "name": model,
                        "version": "1",
                        "inference_count": 7,
                        "execution_count": 7,
                        "inference_stats": {"success": {"count": 7, "ns": 7000}},
                    }
                ]
            },
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                fake.requests.append(request)
                route = fake.routes.get((self.command, self.path))
                exchange = Exchange(self, request)
                if route is None:
                    exchange.json(404, {"error": "Not Found"})
                    return
                route(exchange)

            do_GET = _dispatch
            do_POST = _dispatch

        return Handler
