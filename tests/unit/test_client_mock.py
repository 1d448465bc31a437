"""Both HTTP clients against a loopback fake of Triton (``triton_fake.py``), from one table.

Every case runs through ``AsyncTritonClient`` (aiohttp) and ``TritonClient`` (httpx): the fake
produces on demand the error shapes of ``embedded-triton.md`` that a real server only shows under
particular conditions (error events after tokens, empty 200 streams, truncated bodies, stalls).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from triton_fake import OLD_INPUTS, Exchange, FakeTriton, sse

from trtclient import AsyncTritonClient, TritonClient, errors
from trtclient.errors import error_kind
from trtclient.options import Timeout
from trtclient.retry import RetryPolicy
from trtclient.schema import GenerateResponse, StreamChunk
from trtclient.transports.aiohttp_http import map_error as map_aiohttp_error
from trtclient.transports.httpx_http import map_error as map_httpx_error

#: "async-consume": the async client taking streams with ``consume`` (as bench does), not ``async for``.
MODES = ["async", "sync", "async-consume"]
STREAM = "/v2/models/ensemble/generate_stream"
GENERATE = "/v2/models/ensemble/generate"
FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)


@dataclass
class Collected:
    chunks: list[StreamChunk]
    stream: Any
    error: errors.TritonError | None


class Facade:
    """The same blocking calls whichever client is underneath; one fresh client per call."""

    def __init__(self, mode: str, url: str, **options: Any) -> None:
        self.mode = mode
        self.url = url
        self.options = options

    def _run(
        self, sync_fn: Callable[[TritonClient], Any], async_fn: Callable[[AsyncTritonClient], Any]
    ) -> Any:
        if self.mode == "sync":
            with TritonClient(self.url, **self.options) as client:
                return sync_fn(client)

        async def main() -> Any:
            async with AsyncTritonClient(self.url, **self.options) as client:
                return await async_fn(client)

        return asyncio.run(main())

    def generate(self, prompt: str = "hi", **inputs: Any) -> GenerateResponse:
        return self._run(lambda c: c.generate(prompt, **inputs), lambda c: c.generate(prompt, **inputs))  # type: ignore[no-any-return]

    def collect(self, prompt: str = "hi", **inputs: Any) -> Collected:
        def sync_fn(client: TritonClient) -> Collected:
            chunks: list[StreamChunk] = []
            stream = client.generate_stream(prompt, **inputs)
            try:
                with stream:
                    chunks.extend(stream)
            except errors.TritonError as exc:
                return Collected(chunks, stream, exc)
            return Collected(chunks, stream, None)

        async def async_fn(client: AsyncTritonClient) -> Collected:
            chunks: list[StreamChunk] = []
            stream = client.generate_stream(prompt, **inputs)
            try:
                async with stream:
                    if self.mode == "async-consume":
                        await stream.consume(chunks.append)
                    else:
                        async for chunk in stream:
                            chunks.append(chunk)
            except errors.TritonError as exc:
                return Collected(chunks, stream, exc)
            return Collected(chunks, stream, None)

        return self._run(sync_fn, async_fn)  # type: ignore[no-any-return]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def async_fn(client: AsyncTritonClient) -> Any:
            return await getattr(client, method)(*args, **kwargs)

        return self._run(lambda c: getattr(c, method)(*args, **kwargs), async_fn)


@pytest.fixture
def fake() -> Generator[FakeTriton, None, None]:
    server = FakeTriton()
    yield server
    server.close()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def tokens(*texts: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"model_name": "ensemble", "model_version": "1", "text_output": t, **extra} for t in texts]


# --- the happy paths ----------------------------------------------------------------------------


def test_generate_sends_the_ensemble_body_and_parses_the_answer(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", GENERATE, lambda x: x.json(200, {**tokens("ML is")[0], "num_output_tokens": 2}))
    response = Facade(mode, fake.url).generate("What is ML?", max_tokens=2, temperature=0.5, id="r-1")
    assert response.text == "ML is"
    assert response.num_output_tokens == 2
    sent = [r for r in fake.requests if r.path == GENERATE][0]
    assert sent.json() == {"text_input": "What is ML?", "max_tokens": 2, "temperature": 0.5, "id": "r-1"}
    assert sent.headers["content-type"] == "application/json"


def test_stream_split_anywhere_with_crlf_gives_chunks_and_stamps(fake: FakeTriton, mode: str) -> None:
    body = b"".join(sse(*tokens(" Machine", " learning", " is"))).replace(b"\n", b"\r\n")
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    fake.on("POST", STREAM, lambda x: x.stream(pieces))
    result = Facade(mode, fake.url).collect("What is ML?", max_tokens=3)
    assert result.error is None
    assert [c.text for c in result.chunks] == [" Machine", " learning", " is"]
    assert [c.index for c in result.chunks] == [0, 1, 2]
    stream = result.stream
    assert stream.text == " Machine learning is"
    assert stream.status_code == 200
    assert stream.response_headers["content-type"].startswith("text/event-stream")
    assert 0 < stream.start_ns <= stream.sent_ns <= stream.headers_ns <= result.chunks[0].arrival_ns
    arrivals = [c.arrival_ns for c in result.chunks]
    assert arrivals == sorted(arrivals)
    assert result.chunks[1].response.text_output == " learning"
    sent = [r for r in fake.requests if r.path == STREAM][0].json()
    assert sent["stream"] is True


def test_cumulative_bls_text_becomes_deltas(mode: str) -> None:
    fake = FakeTriton(models=("tensorrt_llm_bls",))
    try:
        fake.configs["tensorrt_llm_bls"]["parameters"] = {"accumulate_tokens": {"string_value": "true"}}
        events = sse(*tokens(" Machine", " Machine learning", " Machine learning is"))
        fake.on("POST", "/v2/models/tensorrt_llm_bls/generate_stream", lambda x: x.stream(events))
        result = Facade(mode, fake.url, model="tensorrt_llm_bls").collect("What is ML?")
        assert result.error is None
        assert [c.text for c in result.chunks] == [" Machine", " learning", " is"]
        assert result.stream.text == " Machine learning is"
    finally:
        fake.close()


def test_old_servers_get_old_input_names(mode: str) -> None:
    fake = FakeTriton(inputs=OLD_INPUTS)
    try:
        fake.on("POST", GENERATE, lambda x: x.json(200, tokens("ok")[0]))
        Facade(mode, fake.url).generate("hi", max_tokens=4, min_tokens=4, seed=11)
        sent = [r for r in fake.requests if r.path == GENERATE][0].json()
        assert sent == {"text_input": "hi", "max_tokens": 4, "min_length": 4, "random_seed": 11}
    finally:
        fake.close()


def test_metadata_is_read_once_per_model(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", GENERATE, lambda x: x.json(200, tokens("ok")[0]))
    fake.on("POST", STREAM, lambda x: x.stream(sse(*tokens("a"))))

    def sync_fn(client: TritonClient) -> None:
        for _ in range(3):
            client.generate("hi")
            list(client.generate_stream("hi"))

    async def async_fn(client: AsyncTritonClient) -> None:
        async def one() -> None:
            await client.generate("hi")
            async with client.generate_stream("hi") as stream:
                async for _ in stream:
                    pass

        await asyncio.gather(*(one() for _ in range(10)))

    Facade(mode, fake.url)._run(sync_fn, async_fn)
    assert fake.count("GET", "/v2/models/ensemble") == 1
    assert fake.count("GET", "/v2/models/ensemble/config") == 1


def test_without_input_checks_no_metadata_is_read(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", GENERATE, lambda x: x.json(200, tokens("ok")[0]))
    Facade(mode, fake.url, check_inputs=False).generate("hi", custom_input=3)
    assert fake.count("GET", "/v2/models/ensemble") == 0
    assert [r for r in fake.requests if r.path == GENERATE][0].json()["custom_input"] == 3


# --- nothing is sent when the request is wrong --------------------------------------------------


def test_invalid_values_fail_before_any_request(fake: FakeTriton, mode: str) -> None:
    with pytest.raises(errors.RequestValidationError) as info:
        Facade(mode, fake.url).generate("hi", max_tokens=0)
    assert info.value.field == "max_tokens"
    assert fake.requests == []


def test_unknown_inputs_fail_before_the_generate_call(fake: FakeTriton, mode: str) -> None:
    result = Facade(mode, fake.url).collect("hi", max_token=3)
    assert isinstance(result.error, errors.UnsupportedInputError)
    assert fake.count("POST", STREAM) == 0


# --- every failure shape, one table ---------------------------------------------------------------


def stall(x: Exchange) -> None:
    x.start_stream()
    x.chunk(sse(*tokens("a"))[0])
    x.handler.server.fake_release.wait(10)  # type: ignore[attr-defined]


def silent(x: Exchange) -> None:
    x.handler.server.fake_release.wait(10)  # type: ignore[attr-defined]


def drip(x: Exchange) -> None:
    x.start_stream()
    while x.chunk(sse(*tokens("a"))[0]) and not x.handler.server.fake_release.wait(0.02):  # type: ignore[attr-defined]
        pass


def reply(status: int, message: str) -> Callable[[Exchange], None]:
    return lambda x: x.json(status, {"error": message})


RESTRICTED = "This API is restricted, expecting header 'x-key'"
ONE_TOKEN = sse(*tokens("a"))
TWO_TOKENS = sse(*tokens("a", "b"))


# (id, path, server behaviour, exception, kind, chunks delivered before the error)
def dropped_after_one_token(x: Exchange) -> None:
    x.stream(ONE_TOKEN, end=False)
    x.drop()


ERROR_CASES: list[tuple[str, str, Callable[[Exchange], None], type[errors.TritonError], str, int]] = [
    ("generate-400", GENERATE, reply(400, "missing required input(s) ['max_tokens']"), errors.BadRequestError,
     "http_400", 0),
    ("generate-500-bad-json-type", GENERATE, reply(500, "Unable to parse 'data': not a string"),
     errors.InternalServerError, "http_500", 0),
    ("generate-503-queue-full", GENERATE, reply(503, "Exceeds maximum queue size"),
     errors.ServiceUnavailableError, "queue_full", 0),
    ("generate-503-other", GENERATE, reply(503, "Request for unknown model: 'x' version 3 is not ready"),
     errors.ServiceUnavailableError, "http_503", 0),
    ("generate-403", GENERATE, reply(403, RESTRICTED), errors.AccessDeniedError, "http_403", 0),
    ("generate-200-error-body", GENERATE, reply(200, "generate expects model to produce exactly 1 response"),
     errors.ErrorBodyError, "error_body", 0),
    ("generate-200-not-json", GENERATE, lambda x: x.send(200, b"<html>"), errors.InvalidJSONError,
     "invalid_json", 0),
    ("stream-400-first-event-error", STREAM,
     lambda x: x.stream(sse({"error": "in ensemble 'ensemble', Failed to process"}), status=400),
     errors.BadRequestError, "http_400", 0),
    ("stream-200-error-after-tokens", STREAM,
     lambda x: x.stream([*TWO_TOKENS, *sse({"error": "Executor failed process requestId 3"})]),
     errors.TritonStreamError, "stream_error", 2),
    ("stream-200-empty", STREAM, lambda x: x.stream([]), errors.EmptyStreamError, "empty_stream", 0),
    ("stream-200-invalid-json", STREAM, lambda x: x.stream([*ONE_TOKEN, b"data: {oops\n\n"]),
     errors.InvalidJSONError, "invalid_json", 1),
    ("stream-200-truncated-event", STREAM, lambda x: x.stream([*ONE_TOKEN, b'data: {"text_output":"b"']),
     errors.MalformedStreamError, "malformed_sse", 1),
    ("stream-200-dropped", STREAM, dropped_after_one_token,
     errors.TritonDisconnectedError, "disconnect", 1),
    ("stream-stall-read-timeout", STREAM, stall, errors.ReadTimeoutError, "timeout_read", 1),
    ("stream-silent-before-headers", STREAM, silent, errors.ReadTimeoutError, "timeout_read", 0),
    ("generate-silent", GENERATE, silent, errors.ReadTimeoutError, "timeout_read", 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "behaviour", "exc_type", "kind", "delivered"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_failure_shapes(
    fake: FakeTriton,
    mode: str,
    path: str,
    behaviour: Callable[[Exchange], None],
    exc_type: type[errors.TritonError],
    kind: str,
    delivered: int,
) -> None:
    fake.server.fake_release = fake.release  # type: ignore[attr-defined]
    fake.on("POST", path, behaviour)
    facade = Facade(mode, fake.url, timeout=Timeout(connect=5, read=0.3))
    if path == GENERATE:
        with pytest.raises(exc_type) as info:
            facade.generate("hi")
        error: BaseException = info.value
    else:
        result = facade.collect("hi")
        assert result.error is not None
        error = result.error
        assert [c.text for c in result.chunks] == ["a", "b"][:delivered]
        assert result.stream.closed
    assert type(error) is exc_type
    assert error_kind(error) == kind
    if isinstance(error, errors.TritonStatusError):
        assert error.message.split(" (")[0] in str(error)
        assert not error.message.startswith("data:")


def test_total_timeout_ends_a_stream_that_never_stops(fake: FakeTriton, mode: str) -> None:
    fake.server.fake_release = fake.release  # type: ignore[attr-defined]
    fake.on("POST", STREAM, drip)
    result = Facade(mode, fake.url, timeout=Timeout(connect=5, read=5, total=0.3)).collect("hi")
    assert type(result.error) is errors.TotalTimeoutError
    assert error_kind(result.error) == "timeout_total"
    assert len(result.chunks) >= 1


def test_refused_connection(mode: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.TritonConnectionError) as info:
        Facade(mode, f"http://127.0.0.1:{port}").generate("hi")
    assert error_kind(info.value) == "connect"


# --- retries ----------------------------------------------------------------------------------------


def busy_then(answer: Callable[[Exchange], None], failures: int) -> Callable[[Exchange], None]:
    calls = {"n": 0}

    def route(x: Exchange) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            x.json(503, {"error": "Exceeds maximum queue size"})
        else:
            answer(x)

    return route


def test_503_is_retried_only_when_asked(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", GENERATE, busy_then(lambda x: x.json(200, tokens("ok")[0]), failures=2))
    with pytest.raises(errors.ServiceUnavailableError):
        Facade(mode, fake.url).generate("hi")
    assert fake.count("POST", GENERATE) == 1
    assert Facade(mode, fake.url, max_retries=FAST_RETRY).generate("hi").text == "ok"
    assert fake.count("POST", GENERATE) == 3


def test_stream_retries_count_attempts(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", STREAM, busy_then(lambda x: x.stream(sse(*tokens("a", "b"))), failures=2))
    result = Facade(mode, fake.url, max_retries=FAST_RETRY).collect("hi")
    assert result.error is None
    assert result.stream.attempts == 3
    assert result.stream.text == "ab"


def test_errors_after_events_and_500s_are_never_retried(fake: FakeTriton, mode: str) -> None:
    fake.on("POST", STREAM, lambda x: x.stream(sse(*tokens("a"), {"error": "boom"})))
    fake.on("POST", GENERATE, lambda x: x.json(500, {"error": "boom"}))
    facade = Facade(mode, fake.url, max_retries=FAST_RETRY)
    assert isinstance(facade.collect("hi").error, errors.TritonStreamError)
    with pytest.raises(errors.InternalServerError):
        facade.generate("hi")
    assert fake.count("POST", STREAM) == 1
    assert fake.count("POST", GENERATE) == 1


# --- early stop -----------------------------------------------------------------------------------


class Endless:
    """A stream route that writes events until the client goes away, and records when it did."""

    def __init__(self) -> None:
        self.gone = threading.Event()
        self.sent = 0

    def __call__(self, x: Exchange) -> None:
        x.start_stream()
        event = sse(*tokens("tok"))[0]
        while self.sent < 1_000_000:
            if not x.chunk(event):
                self.gone.set()
                return
            self.sent += 1


@pytest.mark.parametrize("style", ["context-manager", "bare-break"])
def test_stopping_early_closes_the_connection(fake: FakeTriton, mode: str, style: str) -> None:
    route = Endless()
    fake.on("POST", STREAM, route)

    def sync_fn(client: TritonClient) -> bool:
        if style == "context-manager":
            with client.generate_stream("hi") as stream:
                for _ in zip(range(2), stream, strict=False):
                    pass
        else:
            for index, _ in enumerate(client.generate_stream("hi")):
                if index == 1:
                    break
            gc.collect()
        return route.gone.wait(10)

    async def async_fn(client: AsyncTritonClient) -> bool:
        if style == "context-manager":
            async with client.generate_stream("hi") as stream:
                async for chunk in stream:
                    if chunk.index == 1:
                        break
        else:
            async for chunk in client.generate_stream("hi"):
                if chunk.index == 1:
                    break
            gc.collect()
        # The client is still open here: only closing the stream can have ended the connection.
        return await asyncio.to_thread(route.gone.wait, 10)

    assert Facade(mode, fake.url)._run(sync_fn, async_fn) is True
    assert route.sent < 1_000_000


# --- secrets ----------------------------------------------------------------------------------------


def test_header_values_are_sent_but_never_shown(
    fake: FakeTriton, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-value-123"
    fake.on(
        "POST", GENERATE, lambda x: x.json(403, {"error": "This API is restricted, expecting header 'x-key'"})
    )
    facade = Facade(mode, fake.url, headers={"X-Key": secret}, max_retries=FAST_RETRY)
    caplog.set_level(logging.DEBUG, logger="trtclient")
    with pytest.raises(errors.AccessDeniedError) as info:
        facade.generate("hi")
    assert [r.headers.get("x-key") for r in fake.requests if r.path == GENERATE] == [secret]
    client_repr = facade._run(repr, lambda c: asyncio.sleep(0, repr(c)))
    assert "X-Key" in client_repr
    texts = [str(info.value), repr(info.value), client_repr, caplog.text]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = Facade(
        mode, f"http://127.0.0.1:{closed_port}", headers={"X-Key": secret}, max_retries=FAST_RETRY
    )
    with pytest.raises(errors.TritonConnectionError) as connect_error:
        refused.generate("hi")
    texts += [str(connect_error.value), caplog.text]
    assert "retrying" in caplog.text
    assert not any(secret in text for text in texts)


# --- TLS -------------------------------------------------------------------------------------------


def test_https_with_a_ca_bundle_or_without_verification(certificate: tuple[str, str], mode: str) -> None:
    fake = FakeTriton(tls=certificate)
    try:
        fake.on("POST", GENERATE, lambda x: x.json(200, tokens("secure")[0]))
        assert fake.url.startswith("https://")
        assert Facade(mode, fake.url, verify=certificate[0]).generate("hi").text == "secure"
        assert Facade(mode, fake.url, verify=False).generate("hi").text == "secure"
        with pytest.raises(errors.TritonConnectionError) as info:
            Facade(mode, fake.url).generate("hi")
        assert "certificate" in str(info.value).lower()
    finally:
        fake.close()


def test_unreadable_ca_bundle_is_a_readable_error(mode: str, tmp_path: Any) -> None:
    with pytest.raises(errors.RequestValidationError, match="CA bundle"):
        Facade(mode, "https://127.0.0.1:1", verify=str(tmp_path / "missing.pem")).generate("hi")


# --- the rest of the HTTP API ---------------------------------------------------------------------


def test_health_metadata_index_stats_and_metrics(fake: FakeTriton, mode: str) -> None:
    metrics_text = (
        "# TYPE nv_inference_request_success counter\n"
        'nv_inference_request_success{model="ensemble",version="1"} 7\n'
        'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 2\n'
    )
    fake.on("GET", "/metrics", lambda x: x.send(200, metrics_text.encode(), "text/plain; charset=utf-8"))
    facade = Facade(mode, fake.url, metrics_url=fake.url + "/metrics")
    assert facade.call("is_server_live") is True
    assert facade.call("is_server_ready") is True
    assert facade.call("is_model_ready") is True
    assert facade.call("is_model_ready", "missing") is False
    assert facade.call("server_metadata").version == "2.51.0"
    metadata = facade.call("model_metadata")
    assert metadata.platform == "ensemble" and metadata.inputs[0].name == "text_input"
    assert facade.call("model_config")["max_batch_size"] == 64
    assert [m.name for m in facade.call("repository_index")] == ["ensemble"]
    stats = facade.call("model_statistics")
    assert stats[0].inference_count == 7 and stats[0].inference_stats["success"].ns == 7000
    inputs = facade.call("model_inputs")
    assert inputs.supports("min_length") and "text_input" in inputs
    samples = facade.call("metrics")
    assert [(s.name, s.value) for s in samples][0] == ("nv_inference_request_success", 7.0)
    assert samples[1].labels["request_type"] == "active"


def test_not_ready_server_answers_false(fake: FakeTriton, mode: str) -> None:
    fake.on("GET", "/v2/health/ready", lambda x: x.send(400, b""))
    assert Facade(mode, fake.url).call("is_server_ready") is False


def test_invalid_metadata_json_is_reported(fake: FakeTriton, mode: str) -> None:
    fake.on("GET", "/v2/models/ensemble", lambda x: x.send(200, b"not json"))
    with pytest.raises(errors.InvalidJSONError):
        Facade(mode, fake.url).generate("hi")


def test_closed_clients_refuse_work(fake: FakeTriton) -> None:
    sync_client = TritonClient(fake.url)
    sync_client.close()
    with pytest.raises(RuntimeError, match="closed"):
        sync_client.generate("hi")

    async def main() -> None:
        client = AsyncTritonClient(fake.url)
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.generate("hi")

    asyncio.run(main())


@pytest.mark.parametrize("cls", [AsyncTritonClient, TritonClient])
def test_constructor_mistakes_are_readable(cls: type[Any]) -> None:
    with pytest.raises(errors.RequestValidationError, match="transport"):
        cls("http://127.0.0.1:1", transport="websocket")
    with pytest.raises(errors.RequestValidationError, match="connections"):
        cls("http://127.0.0.1:1", connections=0)
    with pytest.raises(errors.RequestValidationError, match="scheme"):
        cls("ftp://127.0.0.1:1")


# --- exception translation for cases loopback cannot produce --------------------------------------


def test_aiohttp_failures_map_to_the_tree() -> None:
    """Connect timeouts and TLS failures cannot be provoked on loopback; the mapping is checked directly."""
    url = "http://user:pw@host:1/x"
    assert (
        type(map_aiohttp_error(aiohttp.ConnectionTimeoutError(), url, sent=False))
        is errors.ConnectTimeoutError
    )
    assert type(map_aiohttp_error(aiohttp.SocketTimeoutError(), url, sent=True)) is errors.ReadTimeoutError
    assert type(map_aiohttp_error(TimeoutError(), url, sent=True)) is errors.TotalTimeoutError
    assert (
        type(map_aiohttp_error(aiohttp.ServerDisconnectedError(), url, sent=True))
        is errors.TritonDisconnectedError
    )
    assert type(map_aiohttp_error(aiohttp.ClientOSError(), url, sent=False)) is errors.TritonConnectionError
    assert "pw" not in str(map_aiohttp_error(aiohttp.ClientError("x"), url, sent=True))


def test_httpx_failures_map_to_the_tree() -> None:
    """As above, for the sync client's httpx exceptions."""
    url = "http://host:1/x"
    assert type(map_httpx_error(httpx.ConnectTimeout("x"), url)) is errors.ConnectTimeoutError
    assert type(map_httpx_error(httpx.ReadTimeout("x"), url)) is errors.ReadTimeoutError
    assert (
        type(map_httpx_error(httpx.ReadTimeout("x"), url, timed_out_total=True)) is errors.TotalTimeoutError
    )
    assert type(map_httpx_error(httpx.ConnectError("x"), url)) is errors.TritonConnectionError
    assert type(map_httpx_error(httpx.RemoteProtocolError("x"), url)) is errors.TritonDisconnectedError
