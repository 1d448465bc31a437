"""Client CPU time per streamed event: AsyncTritonClient against bare aiohttp and bare httpx loops.

Every variant reads the same streams from the fast loopback source (``benchmarks.sse_source``, run in
its own process so only the client's CPU is counted) with the same concurrency, and does the same
per-event work: split the SSE body into events, parse each event's JSON, look for an ``error`` key,
collect ``text_output``. CPU time is ``time.process_time()`` of this process over the measured waves;
variants run in interleaved rounds and the median round is reported, so drifting background load
hits all of them alike. Figures are ratios to bare aiohttp measured side by side in one run.

Variants:
- ``trtclient``: ``AsyncTritonClient.generate_stream`` (aiohttp underneath, incremental decoder,
  kernel receive timestamps).
- ``trtclient-read``: the same with ``kernel_stamps = False`` (stamps taken when reading), to show what
  the kernel timestamps cost.
- ``trtclient-raw``: the same with ``raw_streams = True`` (the client's own HTTP/1.1 connections, what
  ``trtclient bench`` uses), taken whole with ``consume`` as the bench does.
- ``aiohttp``: a bare aiohttp loop iterating lines of the body.
- ``httpx``: a bare ``httpx.AsyncClient`` (default transport) loop over ``aiter_lines()``.
- ``httpx-raw``: the same client reading ``aiter_raw()`` into trtclient's SSE decoder, to show how
  much of httpx's cost is its line iteration rather than its transport.
- ``httpx+aiohttp``: httpx's API and ``aiter_lines()`` over a minimal httpx transport that sends
  through aiohttp, to show how much of httpx's cost is its default transport (httpcore + anyio).

Two scenarios: ``burst`` (the source writes each stream's tokens back to back, so one read often
carries several events) and ``paced`` (a pause between tokens, about one event per read, where
per-read costs dominate). Environment knobs: ``CLIENT_CPU_CONCURRENCY`` (256), ``CLIENT_CPU_TOKENS``
(64), ``CLIENT_CPU_WAVES`` (2), ``CLIENT_CPU_ROUNDS`` (3), ``CLIENT_CPU_PACED_DELAY_MS`` (20).

Target (issue 3): trtclient within 1.25x of bare aiohttp's CPU per event, clearly ahead of httpx.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from benchmarks.common import Row
from benchmarks.sse_source import SSESource
from trtclient import AsyncTritonClient
from trtclient.sse import SSEDecoder
from trtclient.timing import now_ns

__all__ = ["Measurement", "run"]

NAME = "client_cpu"
CONCURRENCY = int(os.environ.get("CLIENT_CPU_CONCURRENCY", "256"))
TOKENS = int(os.environ.get("CLIENT_CPU_TOKENS", "64"))
WAVES = int(os.environ.get("CLIENT_CPU_WAVES", "2"))
ROUNDS = int(os.environ.get("CLIENT_CPU_ROUNDS", "3"))
PACED_DELAY_MS = float(os.environ.get("CLIENT_CPU_PACED_DELAY_MS", "20"))
BODY: dict[str, Any] = {"text_input": "What is machine learning?", "max_tokens": TOKENS, "stream": True}
TARGET_RATIO = 1.25


@dataclass(frozen=True)
class Measurement:
    """One variant's measured waves: events received, CPU seconds and wall seconds."""

    events: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else float("nan")

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else float("nan")


StreamOnce = Callable[[], Awaitable[int]]


def _parse_event(payload: bytes | str, texts: list[str]) -> None:
    data = json.loads(payload)
    if "error" in data:
        raise RuntimeError(data["error"])
    texts.append(data.get("text_output", ""))


async def _measure(stream_once: StreamOnce) -> Measurement:
    """Run WAVES waves of CONCURRENCY concurrent streams; count events and CPU."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    events = 0
    for _ in range(WAVES):
        counts = await asyncio.gather(*(stream_once() for _ in range(CONCURRENCY)))
        events += sum(counts)
    return Measurement(events, time.process_time() - cpu0, time.perf_counter() - wall0)


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp response body as an httpx byte stream."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self.response.content.iter_any():
            yield data

    async def aclose(self) -> None:
        self.response.release()


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """The smallest httpx transport that sends through an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.session.request(
            request.method, str(request.url), headers=dict(request.headers), data=await request.aread()
        )
        return httpx.Response(
            response.status, headers=list(response.headers.items()), stream=_AiohttpStream(response)
        )


class _Variants:
    """The clients, each with one stream_once coroutine function."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stream_url = f"{url}/v2/models/ensemble/generate_stream"
        self.body = json.dumps(BODY).encode()
        self.trt = AsyncTritonClient(url)
        self.trt_read = AsyncTritonClient(url)
        self.trt_read.kernel_stamps = False
        self.trt_raw = AsyncTritonClient(url)
        self.trt_raw.raw_streams = True
        self.aio = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.hx = httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False)
        self.hx_aio = httpx.AsyncClient(transport=_AiohttpTransport(self.aio), timeout=60.0, trust_env=False)

    async def close(self) -> None:
        await self.trt.aclose()
        await self.trt_read.aclose()
        await self.trt_raw.aclose()
        await self.hx_aio.aclose()
        await self.aio.close()
        await self.hx.aclose()

    async def trtclient(self, client: AsyncTritonClient | None = None) -> int:
        count = 0
        parts: list[str] = []
        trt = client or self.trt
        async with trt.generate_stream(BODY["text_input"], max_tokens=TOKENS) as stream:
            async for chunk in stream:
                parts.append(chunk.text)
                count += 1
        return count

    async def trtclient_raw(self) -> int:
        parts: list[str] = []
        stream = self.trt_raw.generate_stream(BODY["text_input"], max_tokens=TOKENS)
        await stream.consume(lambda chunk: parts.append(chunk.text))
        return len(parts)

    async def aiohttp(self) -> int:
        texts: list[str] = []
        headers = {"Content-Type": "application/json"}
        async with self.aio.post(self.stream_url, data=self.body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(response.status)
            async for line in response.content:
                if line.startswith(b"data:"):
                    now_ns()
                    _parse_event(line[5:], texts)
        return len(texts)

    async def httpx(self, client: httpx.AsyncClient | None = None) -> int:
        texts: list[str] = []
        headers = {"Content-Type": "application/json"}
        http = client or self.hx
        async with http.stream("POST", self.stream_url, content=self.body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(response.status_code)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    now_ns()
                    _parse_event(line[5:], texts)
        return len(texts)

    async def httpx_raw(self) -> int:
        texts: list[str] = []
        decoder = SSEDecoder()
        headers = {"Content-Type": "application/json"}
        async with self.hx.stream("POST", self.stream_url, content=self.body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(response.status_code)
            async for data in response.aiter_raw():
                for event in decoder.feed(data, now_ns()):
                    _parse_event(event.data, texts)
        return len(texts)


async def _run_all(url: str) -> dict[str, list[Measurement]]:
    variants = _Variants(url)
    table: dict[str, StreamOnce] = {
        "trtclient": variants.trtclient,
        "trtclient-read": lambda: variants.trtclient(variants.trt_read),
        "trtclient-raw": variants.trtclient_raw,
        "aiohttp": variants.aiohttp,
        "httpx": variants.httpx,
        "httpx-raw": variants.httpx_raw,
        "httpx+aiohttp": lambda: variants.httpx(variants.hx_aio),
    }
    results: dict[str, list[Measurement]] = {name: [] for name in table}
    try:
        for stream_once in table.values():  # warm-up: open the connections, fill caches
            await asyncio.gather(*(stream_once() for _ in range(CONCURRENCY)))
        for round_index in range(ROUNDS):
            order = list(table.items())
            if round_index % 2:
                order.reverse()
            for name, stream_once in order:
                results[name].append(await _measure(stream_once))
    finally:
        await variants.close()
    return results


def _median(values: list[Measurement]) -> Measurement:
    ranked = sorted(values, key=lambda m: m.cpu_us_per_event)
    return ranked[len(ranked) // 2]


def _scenario(title: str, delay_s: float) -> dict[str, Measurement]:
    """Run every variant against a source with this per-token delay; print and return the medians."""
    print(f"\n{title}")
    with SSESource(tokens=TOKENS, delay_s=delay_s) as source:
        results = asyncio.run(_run_all(source.url))
    medians = {name: _median(values) for name, values in results.items()}
    base = medians["aiohttp"].cpu_us_per_event
    print(f"{'client':<14} {'CPU us/event':>12} {'spread':>15} {'x aiohttp':>9} {'events/s':>9}")
    for name, median in medians.items():
        per_event = [m.cpu_us_per_event for m in results[name]]
        spread = f"{min(per_event):.1f}-{max(per_event):.1f}"
        ratio, rate = median.cpu_us_per_event / base, median.events_per_s
        print(f"{name:<14} {median.cpu_us_per_event:>12.1f} {spread:>15} {ratio:>9.2f} {rate:>9.0f}")
    return medians


def run() -> list[Row]:
    """Measure and print CPU per streamed event of each client; return the summary rows."""
    print(
        f"{CONCURRENCY} concurrent streams x {TOKENS} events, {WAVES} waves per measurement, "
        f"{ROUNDS} interleaved rounds, median round shown; source in a separate process"
    )
    rows: list[Row] = []
    scenarios = (
        ("burst", "burst: tokens sent back to back (several events per read)", 0.0),
        (
            "paced",
            f"paced: {PACED_DELAY_MS:g} ms between tokens (about one event per read)",
            PACED_DELAY_MS / 1000,
        ),
    )
    for key, title, delay_s in scenarios:
        medians = _scenario(title, delay_s)
        base = medians["aiohttp"].cpu_us_per_event
        ours = medians["trtclient"].cpu_us_per_event
        for name, median in medians.items():
            ratio = median.cpu_us_per_event / base
            rows.append(
                Row(NAME, f"{key}: {name} CPU/event", median.cpu_us_per_event, "us", f"{ratio:.2f}x aiohttp")
            )
        verdict = "meets" if ours / base <= TARGET_RATIO else "MISSES"
        httpx_ratio = medians["httpx"].cpu_us_per_event / ours
        print(
            f"trtclient = {ours / base:.2f}x bare aiohttp ({verdict} the {TARGET_RATIO}x target); "
            f"bare httpx = {httpx_ratio:.2f}x trtclient"
        )
        rows.append(
            Row(NAME, f"{key}: trtclient / aiohttp", ours / base, "ratio", f"target <= {TARGET_RATIO}")
        )
        rows.append(Row(NAME, f"{key}: httpx / trtclient", httpx_ratio, "ratio", "> 1: trtclient leaner"))
    return rows


if __name__ == "__main__":
    run()
