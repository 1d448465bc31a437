"""Triton's HTTP/REST API over one ``httpx.Client``: blocking, safe to share between threads and
greenlets. Streamed bodies are read as they arrive, stamped after each read and decoded by the I/O-free
:mod:`trtclient.sse` into the caller's :class:`~trtclient.streaming.StreamState`.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from trtclient import errors
from trtclient.constants import USER_AGENT
from trtclient.inputs import ModelInputs, encode_body
from trtclient.options import JSON_HEADERS, safe_headers, ssl_option
from trtclient.responses import json_object, parse_generate_body, parse_json, repository_list, response_error
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.sse import SSEDecoder
from trtclient.streaming import StreamHead, StreamState, chunks_from_events
from trtclient.timing import now_ns
from trtclient.transports.base import ChunkSource, Endpoint
from trtclient.urls import model_path, redact_url, stats_path

__all__ = ["HTTPTransport", "make_httpx", "map_error"]


def make_httpx(endpoint: Endpoint, *, connections: int) -> httpx.Client:
    timeout = endpoint.timeout
    read = timeout.read
    if timeout.total is not None:
        read = timeout.total if read is None else min(read, timeout.total)
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, **endpoint.headers},
        timeout=httpx.Timeout(connect=timeout.connect, read=read, write=read, pool=None),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        verify=ssl_option(endpoint.verify, endpoint.cert),
        trust_env=False,
    )


def map_error(exc: BaseException, url: str, *, timed_out_total: bool = False) -> errors.TritonError:
    """Translate an httpx failure into the trtclient exception tree."""
    shown = redact_url(url)
    if timed_out_total:
        return errors.TotalTimeoutError(f"request to {shown} exceeded the total timeout", url=shown)
    if isinstance(exc, httpx.ConnectTimeout):
        return errors.ConnectTimeoutError(f"connecting to {shown} timed out", url=shown)
    if isinstance(exc, httpx.TimeoutException):
        return errors.ReadTimeoutError(f"no data from {shown} within the read timeout", url=shown)
    if isinstance(exc, httpx.ConnectError):
        return errors.TritonConnectionError(f"cannot connect to {shown}: {exc}", url=shown)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return errors.TritonDisconnectedError(f"connection to {shown} dropped: {exc}", url=shown)
    return errors.TritonTransportError(f"request to {shown} failed: {exc!r}", url=shown)


class HTTPTransport:
    """Triton's HTTP/REST API over one ``httpx.Client``."""

    def __init__(self, endpoint: Endpoint, *, connections: int) -> None:
        self.url = endpoint.url
        self.total = endpoint.timeout.total
        self.http = make_httpx(endpoint, connections=connections)

    def close(self) -> None:
        self.http.close()

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        url = self.url + path
        deadline = None if self.total is None else time.monotonic() + self.total
        try:
            response = self.http.request(method, url, content=body, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            late = deadline is not None and time.monotonic() >= deadline
            raise map_error(exc, url, timed_out_total=late) from exc
        if response.status_code not in ok:
            raise response_error(
                response.status_code,
                response.content,
                url=url,
                retry_after=response.headers.get("Retry-After"),
            )
        return response

    def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        response = self._request(method, path, body)
        return parse_json(response.content, url=self.url + path)

    def _object(self, path: str) -> dict[str, Any]:
        return json_object(self._json("GET", path), url=self.url)

    def _probe(self, path: str) -> bool:
        return self._request("GET", path, ok=(200, 400, 404, 503)).status_code == 200

    def server_live(self) -> bool:
        return self._probe("/v2/health/live")

    def server_ready(self) -> bool:
        return self._probe("/v2/health/ready")

    def model_ready(self, model: str, version: str | None) -> bool:
        return self._probe(model_path(model, version) + "/ready")

    def server_metadata(self) -> dict[str, Any]:
        return self._object("/v2")

    def model_metadata(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(model_path(model, version))

    def model_config(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(model_path(model, version) + "/config")

    def repository_index(self, ready: bool) -> list[dict[str, Any]]:
        body = encode_body({"ready": ready})
        return repository_list(self._json("POST", "/v2/repository/index", body), url=self.url)

    def model_statistics(self, model: str, version: str | None) -> dict[str, Any]:
        return self._object(stats_path(model, version))

    def generate(self, model: str, body: dict[str, Any], inputs: ModelInputs | None) -> GenerateResponse:
        path = model_path(model) + "/generate"
        response = self._request("POST", path, encode_body(body))
        return parse_generate_body(response.content, url=self.url + path)

    def open_stream(
        self,
        model: str,
        body: dict[str, Any],
        inputs: ModelInputs | None,
        head: StreamHead,
        state: StreamState,
    ) -> ChunkSource:
        url = head.url = state.url = self.url + model_path(model) + "/generate_stream"
        deadline = None if self.total is None else time.monotonic() + self.total
        # The trace hook must not refer to the stream: httpx keeps it alive with the connection, and
        # the stream has to be collectable for a consumer's early ``break`` to close that connection.
        sent = [0]

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "http11.send_request_headers.started":
                sent[0] = now_ns()

        request = self.http.build_request(
            "POST",
            url,
            content=encode_body(body),
            headers=JSON_HEADERS,
            extensions={"trace": trace},
        )
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            head.sent_ns = sent[0]
            late = deadline is not None and time.monotonic() >= deadline
            raise map_error(exc, url, timed_out_total=late) from exc
        head.headers_ns = now_ns()
        head.sent_ns = sent[0]
        head.status_code = response.status_code
        head.headers = safe_headers(response.headers)
        if response.status_code != 200:
            try:
                payload = response.read()
            except httpx.HTTPError as exc:
                raise map_error(exc, url) from exc
            finally:
                response.close()
            raise response_error(
                response.status_code, payload, url=url, retry_after=response.headers.get("Retry-After")
            )
        return _HttpxSource(response, state, url, deadline)


class _HttpxSource:
    """Reads one SSE body as it arrives: stamp each read, decode events, parse chunks."""

    def __init__(
        self, response: httpx.Response, state: StreamState, url: str, deadline: float | None
    ) -> None:
        self.response = response
        self.reads = response.iter_raw()
        self.decoder = SSEDecoder()
        self.state = state
        self.url = url
        self.deadline = deadline
        self._pending: errors.TritonError | None = None
        self._closed = False

    def read(self) -> list[StreamChunk] | None:
        if self._pending is not None:
            raise self._pending
        try:
            data = next(self.reads, b"")
        except httpx.HTTPError as exc:
            self.close()
            late = self.deadline is not None and time.monotonic() >= self.deadline
            raise map_error(exc, self.url, timed_out_total=late) from exc
        arrival = now_ns()
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.close()
            raise errors.TotalTimeoutError(f"request to {self.url} exceeded the total timeout", url=self.url)
        if not data:
            self.state.finish(self.decoder.finish())
            self.close()
            return None
        try:
            chunks, self._pending = chunks_from_events(self.state, self.decoder.feed(data, arrival))
        except errors.TritonError:
            self.close()
            raise
        return chunks

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()
