"""The transport contract: the same bytes on the wire give the same chunks, head and error kind,
whichever HTTP transport reads them (aiohttp, the async client's raw streams, httpx, the Locust socket).

Each case is a byte script that a tiny loopback server (a fake, on purpose: a real Triton does not drop
a connection mid-event or stall on request) plays to every transport. gRPC is not in the table: its
wire is HTTP/2 frames carrying protobuf messages, so these HTTP/1.1 scripts have no gRPC meaning; its
decoding and error mapping are covered by ``test_grpc_codec.py`` and ``test_faults_grpc.py``, and its
head by the integration tests against the real server.

Kernel receive stamps are off here so that every transport reports ``arrival_clock == "read"``; the
kernel path has its own tests (``test_rxstamp.py``, ``test_socket_stream.py``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from http_scripts import CASES, MODEL, PATH, PATIENCE_S, Case, ScriptServer

from trtclient import errors
from trtclient.errors import error_kind
from trtclient.inputs import encode_body
from trtclient.options import Timeout
from trtclient.streaming import StreamHead, StreamState
from trtclient.transports.aiohttp_http import AsyncHTTPTransport
from trtclient.transports.base import Endpoint
from trtclient.transports.httpx_http import HTTPTransport
from trtclient.transports.socket_stream import Connection

BODY = {"text_input": "hi", "max_tokens": 2, "stream": True}


@dataclass
class Outcome:
    """What a transport made of one script."""

    texts: list[str]
    head: StreamHead
    error: errors.TritonError | None


def _via_aiohttp(url: str, timeout: Timeout, *, raw_streams: bool = False) -> Outcome:
    async def go() -> Outcome:
        transport = AsyncHTTPTransport(
            Endpoint(url, timeout, {}, True, None), connections=1, raw_streams=raw_streams
        )
        assert (transport.raw is not None) == raw_streams
        head, state = StreamHead(), StreamState()
        texts: list[str] = []
        try:
            source = await transport.open_stream(MODEL, BODY, None, head, state)
            try:
                while (batch := await source.read()) is not None:
                    texts.extend(chunk.text for chunk in batch)
            finally:
                source.close()
        except errors.TritonError as exc:
            return Outcome(texts, head, exc)
        finally:
            await transport.aclose()
        return Outcome(texts, head, None)

    return asyncio.run(go())


def _via_httpx(url: str, timeout: Timeout) -> Outcome:
    transport = HTTPTransport(Endpoint(url, timeout, {}, True, None), connections=1)
    head, state = StreamHead(), StreamState()
    texts: list[str] = []
    try:
        source = transport.open_stream(MODEL, BODY, None, head, state)
        try:
            while (batch := source.read()) is not None:
                texts.extend(chunk.text for chunk in batch)
        finally:
            source.close()
    except errors.TritonError as exc:
        return Outcome(texts, head, exc)
    finally:
        transport.close()
    return Outcome(texts, head, None)


def _via_socket(url: str, timeout: Timeout) -> Outcome:
    connection = Connection(url, timeout, kernel_stamps=False)
    head, state = StreamHead(), StreamState()
    texts: list[str] = []
    try:
        connection.stream(PATH, encode_body(BODY), head, state, lambda chunk: texts.append(chunk.text))
    except errors.TritonError as exc:
        return Outcome(texts, head, exc)
    finally:
        connection.close()
    return Outcome(texts, head, None)


def _via_raw(url: str, timeout: Timeout) -> Outcome:
    return _via_aiohttp(url, timeout, raw_streams=True)


TRANSPORTS: dict[str, Callable[[str, Timeout], Outcome]] = {
    "aiohttp": _via_aiohttp,
    "raw": _via_raw,
    "httpx": _via_httpx,
    "socket": _via_socket,
}


@pytest.fixture(autouse=True)
def _no_kernel_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiohttp's transport stamps with the kernel's receive time where it can; the socket one is told
    # not to in _via_socket. With both off, every transport's arrival clock is "read".
    monkeypatch.setattr("trtclient.rxstamp.keep_enabled", lambda: False)


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[tuple[Case, ScriptServer]]:
    chosen = CASES[request.param]
    server = ScriptServer(chosen.script)
    yield chosen, server
    server.close()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_every_transport_reads_a_script_the_same_way(case: tuple[Case, ScriptServer], transport: str) -> None:
    chosen, server = case
    timeout = Timeout(connect=PATIENCE_S, read=chosen.read_s, total=None)
    outcome = TRANSPORTS[transport](server.url, timeout)

    assert outcome.texts == chosen.texts
    assert (error_kind(outcome.error) if outcome.error is not None else None) == chosen.kind
    head = outcome.head
    assert head.url == server.url + PATH
    assert head.status_code == chosen.status
    # The request went out before the answer's head came, and both are stamped even when the call failed.
    assert 0 < head.sent_ns <= head.headers_ns
    assert head.arrival_clock == "read"
    expected_type = "text/event-stream" if chosen.status == 200 else "application/json"
    assert head.headers.get("content-type", "").startswith(expected_type)
    assert len(server.requests) == 1 and server.requests[0].startswith(b"POST " + PATH.encode())


def test_the_table_covers_the_contracts_cases() -> None:
    # The cases the contract promises; a transport added to TRANSPORTS runs through all of them.
    assert set(CASES) == {
        "ok",
        "error-before-first-event",
        "error-event-after-tokens",
        "empty-200",
        "truncated-event",
        "dropped-connection",
        "stall",
    }


def test_a_request_that_never_reached_a_server_has_no_sent_stamp() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()  # nothing listens there now: connecting is refused
    timeout = Timeout(connect=PATIENCE_S, read=PATIENCE_S, total=None)
    for name, via in TRANSPORTS.items():
        outcome = via(url, timeout)
        assert outcome.error is not None and error_kind(outcome.error) == "connect", name
        assert (outcome.head.sent_ns, outcome.head.headers_ns, outcome.head.status_code) == (0, 0, 0), name
