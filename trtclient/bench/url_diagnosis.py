"""Why a ``--url`` does not answer as Triton's HTTP API, in words: the usual wrong-URL mistakes.

* an API path pasted into the URL (``.../v2/models/ensemble/generate_stream``): :func:`split_api_path`
  takes it off before anything is sent;
* ``https://`` against a plain-HTTP server ("does not speak TLS");
* the metrics port (8002) or the gRPC port (8001) given where the HTTP port (8000) belongs.

The last three are told apart after the model could not be read, by one short probe of the address
with a plain socket (:func:`diagnose`): what the port answers to ``GET /metrics HTTP/1.1``.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

from trtclient.constants import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

__all__ = ["PROBE_TIMEOUT_S", "diagnose", "split_api_path"]

PROBE_TIMEOUT_S = 2.0
#: An HTTP/2 frame header whose type byte is SETTINGS: what a gRPC server sends first.
_HTTP2_SETTINGS = 0x04


def split_api_path(url: str) -> tuple[str, str | None]:
    """``(server URL, API path taken off or None)``: ``http://h:8000/v2/models/x`` -> ``http://h:8000``."""
    parts = urlsplit(url)
    index = (parts.path + "/").find("/v2/")
    if index < 0:
        return url, None
    base = urlunsplit((parts.scheme, parts.netloc, parts.path[:index], "", ""))
    return base, parts.path[index:]


def _exchange(host: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.sendall(request)
        chunks = b""
        while len(chunks) < 4096:
            data = sock.recv(4096)
            if not data:
                break
            chunks += data
            if b"\r\n\r\n" in chunks and b"nv_" in chunks:
                break
        return chunks


def diagnose(url: str) -> str | None:
    """One sentence saying what the address is instead of Triton's HTTP API, or None when it cannot tell."""
    parts = urlsplit(url)
    host, tls = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    request = f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        answer = _exchange(host, port, request)
    except OSError:
        return None
    plain = f"http://{parts.netloc.rsplit('@', 1)[-1]}"
    if answer.startswith(b"HTTP/"):
        if tls:
            return f"the server at {host}:{port} does not speak TLS; use {plain}"
        status = answer.split(b" ", 2)[1:2]
        if status == [b"200"] and b"nv_" in answer:
            return (
                f"{host}:{port} serves Triton's metrics, not its HTTP API; give the HTTP port "
                f"(Triton's default is {DEFAULT_HTTP_PORT}, metrics {DEFAULT_METRICS_PORT})"
            )
        return None
    if len(answer) >= 9 and answer[3] == _HTTP2_SETTINGS:
        return (
            f"{host}:{port} speaks HTTP/2 only, like Triton's gRPC port; give the HTTP port (Triton's "
            f"default is {DEFAULT_HTTP_PORT}, gRPC {DEFAULT_GRPC_PORT}) or use --transport grpc"
        )
    return None
