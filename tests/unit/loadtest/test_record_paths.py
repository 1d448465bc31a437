"""One record, one meaning: the bench runner (aiohttp) and the Locust user (socket transport) write the
same fields for the same bytes on the wire, through the one record writer.

The answers come from the byte scripts of ``http_scripts`` (a loopback fake: the failures a real server
produces only by accident). Each path runs the code it runs in production: the bench ``Runner`` with an
``AsyncTritonClient``, and the Locust kit's ``exchange`` with the socket ``Connection``. gRPC has no
byte script (its wire is HTTP/2 + protobuf); it goes through the same runner and recorder, filling the
same head (``transports/grpc.py``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from http_scripts import CASES, PATH, PATIENCE_S, ScriptServer
from trtlocust._exchange import exchange

from trtclient.bench.runner import RunConfig, Runner
from trtclient.client import AsyncTritonClient
from trtclient.inputs import build_body, encode_body
from trtclient.loadtest.recorder import RecordBuilder
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.request_options import RequestOptions
from trtclient.loadtest.schedule import Burst, Stop
from trtclient.loadtest.workload import FixedPrompt
from trtclient.options import Timeout
from trtclient.timing import now_ns
from trtclient.transports.socket_stream import Connection

PROMPT = FixedPrompt("hi", 2)


@pytest.fixture(autouse=True)
def _read_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both paths would stamp with the kernel's receive time on Linux; with it off both say "read".
    monkeypatch.setattr("trtclient.rxstamp.keep_enabled", lambda: False)


def bench_record(url: str, read_s: float) -> RequestRecord:
    """One request sent by ``trtclient bench``'s runner."""

    async def go() -> RequestRecord:
        timeout = Timeout(connect=PATIENCE_S, read=read_s, total=None)
        async with AsyncTritonClient(url, timeout=timeout, check_inputs=False) as client:
            result = await Runner(client, PROMPT, RunConfig(Burst(1), Stop(requests=1))).run()
        (record,) = result.records
        return record

    return asyncio.run(go())


def locust_record(url: str, read_s: float) -> RequestRecord:
    """One request sent the way a Locust user sends it."""
    prompt = next(PROMPT.prompts())
    record = RequestRecord(index=0, intended_ns=now_ns(), prompt_id=prompt.id)
    live = RecordBuilder(record, prompt)
    body = encode_body(build_body(RequestOptions().build(prompt), None, stream=True))
    connection = Connection(url, Timeout(connect=PATIENCE_S, read=read_s, total=None))
    live.dispatched()
    try:
        exchange(connection, PATH, body, "delta", live)
    except Exception:
        pass  # recorded: the record says how it failed
    finally:
        connection.close()
    live.finish(None)
    return record


def meaning(record: RequestRecord) -> dict[str, Any]:
    """What a record says, without the stamps' values (which differ from run to run)."""
    stamps = [record.dispatched_ns, record.sent_ns, record.headers_ns, *record.event_ns[:1], record.end_ns]
    known = [stamp for stamp in stamps if stamp is not None]
    return {
        "status": record.status,
        "error_kind": record.error_kind,
        "http_status": record.http_status,
        "sent": record.sent_ns is not None,
        "headers": record.headers_ns is not None,
        "events": len(record.event_ns),
        "other_events": len(record.other_event_ns),
        "arrival_clock": record.arrival_clock,
        "output_tokens": record.output_tokens,
        "in_order": known == sorted(known),
    }


@pytest.fixture(params=["ok", "error-before-first-event", "error-event-after-tokens", "dropped-connection"])
def scripted(request: pytest.FixtureRequest) -> Iterator[tuple[str, ScriptServer]]:
    server = ScriptServer(CASES[request.param].script)
    yield request.param, server
    server.close()


def test_bench_and_locust_write_the_same_record_for_the_same_answer(
    scripted: tuple[str, ScriptServer],
) -> None:
    name, server = scripted
    case = CASES[name]
    bench = bench_record(server.url, case.read_s)
    locust = locust_record(server.url, case.read_s)
    assert meaning(bench) == meaning(locust)
    expected_status = "ok" if case.kind is None else "failed"
    assert (bench.status, bench.error_kind, bench.http_status) == (expected_status, case.kind, case.status)
    assert len(bench.event_ns) == len(case.texts)
    assert meaning(bench)["in_order"]


@pytest.mark.parametrize("path", ["bench", "locust"])
def test_a_request_that_fails_after_it_was_sent_keeps_its_sent_stamp(path: str) -> None:
    server = ScriptServer(CASES["dropped-connection"].script)
    try:
        record = (bench_record if path == "bench" else locust_record)(server.url, PATIENCE_S)
    finally:
        server.close()
    assert (record.status, record.error_kind) == ("failed", "disconnect")
    assert record.sent_ns is not None and record.headers_ns is not None and record.end_ns is not None
    assert record.dispatched_ns is not None
    assert record.dispatched_ns <= record.sent_ns <= record.headers_ns <= record.event_ns[0] <= record.end_ns
    assert (record.http_status, record.arrival_clock) == (200, "read")


@pytest.mark.parametrize("path", ["bench", "locust"])
def test_a_request_that_was_never_sent_has_no_sent_stamp(path: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()  # refused from now on
    record = (bench_record if path == "bench" else locust_record)(url, PATIENCE_S)
    assert (record.status, record.error_kind) == ("failed", "connect")
    assert (record.sent_ns, record.headers_ns, record.http_status, record.arrival_clock) == (
        None,
        None,
        None,
        None,
    )
    assert record.dispatched_ns is not None and record.end_ns is not None
