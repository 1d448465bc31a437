"""``sent_ns`` over aiohttp is when the request's bytes were handed to the socket, not when the headers
were buffered: the body's first chunk sets it, the headers' report is only the fallback.

The trace callbacks are called directly here; the ordering against a real server (sent before headers
arrive) is checked by the integration tests of every transport."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from trtclient.transports.aiohttp_session import SentStamp, on_body_sent, on_headers_sent


async def test_the_body_write_sets_the_stamp_and_a_later_headers_report_does_not_move_it() -> None:
    stamp = SentStamp()
    context = SimpleNamespace(trace_request_ctx=stamp)
    session: Any = None
    await on_headers_sent(session, context, None)  # type: ignore[arg-type]
    headers_ns = stamp.ns
    await on_body_sent(session, context, None)  # type: ignore[arg-type]
    assert stamp.ns >= headers_ns and stamp.body
    body_ns = stamp.ns
    await on_body_sent(session, context, None)  # type: ignore[arg-type]
    await on_headers_sent(session, context, None)  # type: ignore[arg-type]
    assert stamp.ns == body_ns  # later chunks and reports keep the first hand-over


async def test_without_a_body_write_the_headers_report_is_the_stamp() -> None:
    stamp = SentStamp()
    await on_headers_sent(None, SimpleNamespace(trace_request_ctx=stamp), None)  # type: ignore[arg-type]
    assert stamp.ns > 0 and not stamp.body
