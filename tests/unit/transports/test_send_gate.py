"""The async HTTP transport (aiohttp's connections, or the raw streams') writes a streamed request
only once its send gate has opened: everything before the write (body, connection, aiohttp's request)
is done while it waits, and ``sent_ns`` is the write that follows the gate."""

from __future__ import annotations

import asyncio

import pytest
from triton_fake import FakeTriton, sse

from trtclient import AsyncTritonClient
from trtclient.timing import now_ns

STREAM = "/v2/models/ensemble/generate_stream"


@pytest.mark.parametrize("raw", [False, True], ids=["aiohttp", "raw-streams"])
async def test_the_request_goes_out_after_the_gate_opens_and_is_stamped_then(raw: bool) -> None:
    fake = FakeTriton()
    fake.on("POST", STREAM, lambda x: x.stream(sse({"model_name": "ensemble", "text_output": "ok"})))
    entered, release = asyncio.Event(), asyncio.Event()
    opened: list[int] = []

    async def gate() -> None:
        entered.set()
        await release.wait()
        opened.append(now_ns())

    try:
        client = AsyncTritonClient(fake.url, max_retries=0)
        client.raw_streams = raw
        async with client:
            await client.model_inputs()
            stream = client.generate_stream("hi", max_tokens=1)
            stream.send_gate = gate
            texts: list[str] = []
            task = asyncio.create_task(stream.consume(lambda c: texts.append(c.text)))
            await entered.wait()
            assert stream.sent_ns == 0  # ready to go, not written
            release.set()
            await task
        assert texts == ["ok"]
        assert len(opened) == 1 and stream.sent_ns >= opened[0]
        assert fake.count("POST", STREAM) == 1
    finally:
        fake.close()
