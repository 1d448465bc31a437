"""The client against the real embedded Triton: every method, both transports, sync and async.

One table of variants (HTTP/gRPC x async/sync) runs every call; streaming-specific checks (early
stop, cumulative BLS text, a thousand concurrent streams) follow.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
from collections.abc import Callable, Generator
from typing import Any, Literal

import psutil
import pytest

from trtclient import AsyncTritonClient, Timeout, TritonClient, errors
from trtclient.errors import error_kind
from trtclient.schema import StreamChunk
from trtclient.server.launcher import EmbeddedTriton, ServerHandle
from trtclient.timing import to_epoch_ns

pytestmark = pytest.mark.integration

PROMPT = "What is machine learning?"
VARIANTS = [("http", "async"), ("http", "sync"), ("grpc", "async"), ("grpc", "sync")]
MODELS = {"ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"}


class Variant:
    """Blocking calls through one transport and one client flavour (a fresh client per call)."""

    def __init__(self, server: ServerHandle, transport: str, flavour: str, **options: Any) -> None:
        self.transport = transport
        self.flavour = flavour
        self.url = server.url if transport == "http" else server.grpc_url
        self.options = {"transport": transport, "metrics_url": server.metrics_url, **options}

    def run(
        self, sync_fn: Callable[[TritonClient], Any], async_fn: Callable[[AsyncTritonClient], Any]
    ) -> Any:
        if self.flavour == "sync":
            with TritonClient(self.url, **self.options) as client:
                return sync_fn(client)

        async def main() -> Any:
            async with AsyncTritonClient(self.url, **self.options) as client:
                return await async_fn(client)

        return asyncio.run(main())

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def async_fn(client: AsyncTritonClient) -> Any:
            return await getattr(client, method)(*args, **kwargs)

        return self.run(lambda c: getattr(c, method)(*args, **kwargs), async_fn)

    def stream(self, prompt: str = PROMPT, **inputs: Any) -> tuple[list[StreamChunk], Any]:
        def sync_fn(client: TritonClient) -> tuple[list[StreamChunk], Any]:
            with client.generate_stream(prompt, **inputs) as stream:
                return list(stream), stream

        async def async_fn(client: AsyncTritonClient) -> tuple[list[StreamChunk], Any]:
            async with client.generate_stream(prompt, **inputs) as stream:
                return [chunk async for chunk in stream], stream

        return self.run(sync_fn, async_fn)  # type: ignore[no-any-return]


@pytest.fixture(params=VARIANTS, ids=[f"{t}-{f}" for t, f in VARIANTS])
def variant(request: pytest.FixtureRequest, triton_server: ServerHandle) -> Variant:
    transport, flavour = request.param
    return Variant(triton_server, transport, flavour)


def test_health_and_metadata(variant: Variant) -> None:
    assert variant.call("is_server_live") is True
    assert variant.call("is_server_ready") is True
    assert variant.call("is_model_ready") is True
    assert variant.call("is_model_ready", "tensorrt_llm_bls", 1) is True
    assert variant.call("is_model_ready", "no_such_model") is False
    assert variant.call("server_metadata").version.startswith("2.")
    metadata = variant.call("model_metadata")
    assert metadata.platform == "ensemble"
    assert {"text_input", "max_tokens", "min_tokens", "seed"} <= {t.name for t in metadata.inputs}
    assert "text_output" in {t.name for t in metadata.outputs}
    config = variant.call("model_config")
    assert config["name"] == "ensemble"
    assert int(config["max_batch_size"]) > 0
    index = variant.call("repository_index")
    assert {m.name for m in index} >= MODELS
    assert all(m.state == "READY" for m in index if m.name in MODELS)
    inputs = variant.call("model_inputs")
    assert inputs.supports("min_tokens") and inputs.supports("return_num_output_tokens")
    assert inputs.resolve("random_seed") == "seed"


def test_statistics_count_requests(variant: Variant) -> None:
    # The ensemble's own counters stay at zero on 2.51; its composing python models count every call.
    before = variant.call("model_statistics", "preprocessing")[0].inference_count
    variant.call("generate", PROMPT, max_tokens=2)
    stats = variant.call("model_statistics", "preprocessing")
    assert stats[0].name == "preprocessing"
    assert stats[0].inference_count >= before + 1
    assert stats[0].inference_stats["success"].count >= 1
    everything = variant.call("model_statistics", "")
    assert {s.name for s in everything} >= MODELS


def test_metrics_are_parsed(variant: Variant) -> None:
    samples = variant.call("metrics")
    success = [
        s for s in samples if s.name == "nv_inference_request_success" and s.labels.get("model") == "ensemble"
    ]
    assert success and success[0].value >= 0


def test_generate_and_stream_agree(variant: Variant) -> None:
    inputs = {"max_tokens": 12, "seed": 7, "exclude_input_in_output": True}
    whole = variant.call("generate", PROMPT, **inputs)
    assert whole.model_name == "ensemble" and whole.model_version == "1"
    chunks, stream = variant.stream(PROMPT, return_num_output_tokens=True, **inputs)
    assert len(chunks) == 12
    assert "".join(c.text for c in chunks) == whole.text == stream.text
    assert all(c.response.num_output_tokens == 1 for c in chunks)
    assert [c.index for c in chunks] == list(range(12))
    assert stream.status_code == 200
    assert 0 < stream.start_ns <= stream.sent_ns <= stream.headers_ns <= chunks[0].arrival_ns
    assert [c.arrival_ns for c in chunks] == sorted(c.arrival_ns for c in chunks)


def test_engine_timestamps_precede_arrival(variant: Variant) -> None:
    chunks, _ = variant.stream(PROMPT, max_tokens=4, return_perf_metrics=True)
    first = chunks[0].response
    assert first.first_token_time_ns is not None and first.arrival_time_ns is not None
    assert first.arrival_time_ns <= first.first_token_time_ns
    # The client's arrival stamp, on the epoch scale, comes after the engine produced the token
    # (1 ms of slack for the offset measured between the two clocks).
    assert to_epoch_ns(chunks[0].arrival_ns) >= first.first_token_time_ns - 1_000_000


def test_logical_names_reach_the_server(variant: Variant) -> None:
    chunks, _ = variant.stream(
        PROMPT, max_tokens=6, min_tokens=6, seed=3, temperature=0.7, top_k=5, top_p=0.9
    )
    assert len(chunks) == 6


def test_failures_from_the_real_server(variant: Variant) -> None:
    with pytest.raises(errors.ErrorBodyError, match="exactly 1 response"):
        variant.call("generate", PROMPT, max_tokens=3, stream=True)
    with pytest.raises(errors.NotFoundError):
        variant.call("generate", PROMPT, model="no_such_model")
    with pytest.raises(errors.UnsupportedInputError, match="Did you mean 'max_tokens'"):
        variant.call("generate", PROMPT, max_token=3)


def test_kinds_of_real_failures(triton_server: ServerHandle) -> None:
    http = Variant(triton_server, "http", "async")
    grpc = Variant(triton_server, "grpc", "async")
    for variant, kind in ((http, "http_404"), (grpc, "grpc_not_found")):
        with pytest.raises(errors.NotFoundError) as info:
            variant.call("generate", PROMPT, model="no_such_model")
        assert error_kind(info.value) == kind


# --- cumulative text (BLS with accumulate_tokens) -------------------------------------------------


@pytest.fixture(scope="module")
def accumulating_server() -> Generator[ServerHandle, None, None]:
    with EmbeddedTriton(profile="instant", accumulate_tokens=True) as server:
        yield server.handle


@pytest.mark.parametrize(("transport", "flavour"), VARIANTS, ids=[f"{t}-{f}" for t, f in VARIANTS])
def test_cumulative_bls_stream_yields_deltas(
    accumulating_server: ServerHandle, transport: str, flavour: str
) -> None:
    bls = Variant(accumulating_server, transport, flavour, model="tensorrt_llm_bls")
    ensemble = Variant(accumulating_server, transport, flavour)
    assert bls.call("model_inputs").text_mode == "cumulative"
    inputs = {"max_tokens": 10, "seed": 5}
    chunks, stream = bls.stream(PROMPT, **inputs)
    reference, _ = ensemble.stream(PROMPT, **inputs)
    full = "".join(c.text for c in reference)
    assert stream.text == full
    assert "".join(c.text for c in chunks) == full
    assert chunks[-1].data["text_output"] == full
    assert len(chunks) > 2 and chunks[1].data["text_output"].startswith(chunks[0].data["text_output"])


# --- stopping early and scale ---------------------------------------------------------------------


def connections_to(port: int) -> int:
    return sum(
        1
        for c in psutil.Process(os.getpid()).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.parametrize("flavour", ["async", "sync"])
@pytest.mark.parametrize("style", ["context-manager", "bare-break"])
def test_stopping_early_closes_the_connection(triton_server: ServerHandle, flavour: str, style: str) -> None:
    port = int(triton_server.url.rsplit(":", 1)[1])
    variant = Variant(triton_server, "http", flavour)

    def sync_fn(client: TritonClient) -> tuple[int, int]:
        if style == "context-manager":
            with client.generate_stream(PROMPT, max_tokens=100) as stream:
                next(stream)
                during = connections_to(port)
        else:
            for _ in client.generate_stream(PROMPT, max_tokens=100):
                during = connections_to(port)
                break
            gc.collect()
        return during, connections_to(port)

    async def async_fn(client: AsyncTritonClient) -> tuple[int, int]:
        if style == "context-manager":
            async with client.generate_stream(PROMPT, max_tokens=100) as stream:
                await stream.__anext__()
                during = connections_to(port)
        else:
            async for _ in client.generate_stream(PROMPT, max_tokens=100):
                during = connections_to(port)
                break
            gc.collect()
        await asyncio.sleep(0)  # let the event loop run the transport's close callback
        return during, connections_to(port)

    during, after = variant.run(sync_fn, async_fn)
    assert during == 1
    assert after == 0
    assert variant.call("generate", PROMPT, max_tokens=2).text


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_grpc_sent_is_stamped_when_grpc_takes_the_request_between_the_call_and_the_first_response(
    triton_server: ServerHandle, flavour: str
) -> None:
    """``sent_ns`` is stamped as gRPC's writer takes the serialised request, so it lies after the call
    began (and after the request was built) and before the first response arrived."""
    chunks, stream = Variant(triton_server, "grpc", flavour).stream(max_tokens=4)
    assert chunks
    assert stream.start_ns < stream.sent_ns < stream.first_arrival_ns
    assert stream.sent_ns <= stream.last_arrival_ns


@pytest.mark.parametrize("flavour", ["async", "sync"])
def test_stopping_a_grpc_stream_early_leaves_the_client_usable(
    triton_server: ServerHandle, flavour: str
) -> None:
    variant = Variant(triton_server, "grpc", flavour)

    def sync_fn(client: TritonClient) -> tuple[bool, str]:
        with client.generate_stream(PROMPT, max_tokens=100) as stream:
            next(stream)
        return stream.closed, client.generate(PROMPT, max_tokens=2).text

    async def async_fn(client: AsyncTritonClient) -> tuple[bool, str]:
        async with client.generate_stream(PROMPT, max_tokens=100) as stream:
            await stream.__anext__()
        return stream.closed, (await client.generate(PROMPT, max_tokens=2)).text

    closed, text = variant.run(sync_fn, async_fn)
    assert closed and text


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_a_thousand_concurrent_streams_through_one_client(
    triton_server: ServerHandle, transport: Literal["http", "grpc"]
) -> None:
    url = triton_server.url if transport == "http" else triton_server.grpc_url
    peak = 0

    async with AsyncTritonClient(url, transport=transport, timeout=Timeout(connect=30, read=60)) as client:
        await client.model_inputs()
        port = int(url.rsplit(":", 1)[1])

        async def one() -> list[str]:
            nonlocal peak
            async with client.generate_stream(PROMPT, max_tokens=4) as stream:
                texts = []
                async for chunk in stream:
                    texts.append(chunk.text)
                    if transport == "http" and len(texts) == 1 and peak < 150:
                        peak = max(peak, connections_to(port))
                return texts

        results = await asyncio.gather(*(one() for _ in range(1000)), return_exceptions=True)
    failures = collections.Counter(error_kind(r) for r in results if isinstance(r, BaseException))
    assert failures == {}
    assert [len(r) for r in results] == [4] * 1000  # type: ignore[arg-type]
    if transport == "http":
        assert peak > 100  # more connections in flight than aiohttp's or httpx's default pool
