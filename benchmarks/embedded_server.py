"""The embedded server's ceilings: cold set-up, warm start to all-READY, and ensemble capacity.

* cold set-up: building the toolchain (model environment), tokenizer and engine in an empty cache;
* warm start: launch until ``/v2/health/ready`` is 200 and all five models are READY (median of 3);
* capacity: SSE events per second delivered end to end through the ensemble with the ``instant``
  profile, 64 tokens per stream, at 1, 32 and 256 concurrent streams, measured with a bare aiohttp
  client (the same set-up as the reference figures: ~3.3k / ~4.1k / ~4.5k events/s on 2 cores).

Run: ``python -m benchmarks embedded_server``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time

import aiohttp

from benchmarks.common import Row
from trtclient.server.launcher import EmbeddedTriton

TOKENS_PER_STREAM = 64
STREAM_COUNTS = (1, 32, 256)
WINDOW_S = 6.0


def cold_setup_seconds() -> float:
    """Prepare toolchain + tokenizer in an empty cache directory and time it."""
    from trtclient.server.tokenizer import default_tokenizer_dir
    from trtclient.server.toolchain import prepare

    previous = os.environ.get("TRTCLIENT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="trtclient-cold-") as empty:
        os.environ["TRTCLIENT_CACHE_DIR"] = empty
        try:
            started = time.perf_counter()
            prepare()
            default_tokenizer_dir()
            return time.perf_counter() - started
        finally:
            if previous is None:
                os.environ.pop("TRTCLIENT_CACHE_DIR", None)
            else:
                os.environ["TRTCLIENT_CACHE_DIR"] = previous


def warm_start_seconds(runs: int = 3) -> list[float]:
    """Launch-to-all-READY times with a prepared cache."""
    times = []
    for _ in range(runs):
        server = EmbeddedTriton(profile="instant")
        started = time.perf_counter()
        server.start()
        times.append(time.perf_counter() - started)
        server.stop()
    return times


async def _capacity(url: str, streams: int, window: float) -> tuple[float, int]:
    """Events/s over ``window`` seconds with ``streams`` closed-loop streaming clients."""
    body = {"text_input": "What is machine learning?", "max_tokens": TOKENS_PER_STREAM, "stream": True}
    target = f"{url}/v2/models/ensemble/generate_stream"
    counted = 0
    errors = 0
    measuring = False
    stop_at = 0.0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal counted, errors
            while time.perf_counter() < stop_at:
                async with session.post(target, json=body) as response:
                    if response.status != 200:
                        errors += 1
                        await response.read()
                        continue
                    async for line in response.content:
                        if line.startswith(b"data: "):
                            if b'"error"' in line:
                                errors += 1
                            elif measuring:
                                counted += 1

        stop_at = time.perf_counter() + 1.0 + window + 2.0
        tasks = [asyncio.create_task(loop()) for _ in range(streams)]
        await asyncio.sleep(1.0)  # warm-up: connections open, batch filled
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(window)
        measuring = False
        elapsed = time.perf_counter() - started
        await asyncio.gather(*tasks)
    return counted / elapsed, errors


def run() -> list[Row]:
    """Print and return the embedded server's set-up times and capacity."""
    rows: list[Row] = []
    cold = cold_setup_seconds()
    print(f"cold set-up (empty cache: model environment, tokenizer): {cold:.1f} s")
    rows.append(Row("embedded_server", "cold set-up", cold, "s", "empty cache"))
    warm = warm_start_seconds()
    print(f"warm start to all models READY: {', '.join(f'{t:.2f}' for t in warm)} s")
    rows.append(Row("embedded_server", "warm start to all READY (median of 3)", statistics.median(warm), "s"))
    with EmbeddedTriton(profile="instant", max_batch_size=256) as server:
        for streams in STREAM_COUNTS:
            rate, errors = asyncio.run(_capacity(server.url, streams, WINDOW_S))
            print(f"ensemble capacity, {streams:>3} streams: {rate:7.0f} events/s ({errors} errors)")
            rows.append(
                Row(
                    "embedded_server",
                    f"ensemble events/s, {streams} streams",
                    rate,
                    "events/s",
                    f"{errors} errors",
                )
            )
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run()))
