"""The I/O-free core: URLs, bodies, input-name mapping, parsing, streamed text, kinds, retries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from trtclient import errors
from trtclient.errors import ERROR_KINDS, error_kind
from trtclient.inputs import ModelInputs, build_body, encode_body, make_request
from trtclient.options import Timeout, check_headers, safe_headers
from trtclient.responses import error_message, parse_generate_body, parse_retry_after, status_error
from trtclient.retry import RetryPolicy, retry_delay, should_retry
from trtclient.schema import GenerateRequest
from trtclient.sse import SSEEvent
from trtclient.streaming import StreamState, text_mode_from_config
from trtclient.urls import metrics_url_for, model_path, move_credentials, normalize_url, redact_url


def metadata(*names: str, datatypes: dict[str, str] | None = None) -> dict[str, Any]:
    types = datatypes or {}
    return {
        "name": "ensemble",
        "platform": "ensemble",
        "inputs": [{"name": n, "datatype": types.get(n, "INT32"), "shape": [-1, 1]} for n in names],
        "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
    }


NEW = ModelInputs.from_metadata(
    metadata(
        "text_input",
        "max_tokens",
        "min_tokens",
        "seed",
        "stream",
        "stop_words",
        "temperature",
        "flag",
        datatypes={
            "text_input": "BYTES",
            "stop_words": "BYTES",
            "seed": "UINT64",
            "stream": "BOOL",
            "temperature": "FP32",
            "flag": "BOOL",
        },
    )
)
OLD = ModelInputs.from_metadata(
    metadata(
        "text_input",
        "max_tokens",
        "min_length",
        "random_seed",
        datatypes={"text_input": "BYTES", "random_seed": "UINT64"},
    )
)


# --- URLs and options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://triton.example/prefix/", "https://triton.example/prefix"),
        ("  HTTP://host:1  ", "http://host:1"),
    ],
)
def test_http_urls_are_normalized(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:8001", "127.0.0.1:8001"),
        ("grpc://127.0.0.1:9001", "127.0.0.1:9001"),
        ("http://host", "host:8001"),
        ("grpcs://host:443", "grpcs://host:443"),
        ("https://host:9443", "grpcs://host:9443"),
    ],
)
def test_grpc_targets_are_normalized(url: str, expected: str) -> None:
    assert normalize_url(url, transport="grpc") == expected


@pytest.mark.parametrize("url", ["", "ftp://host:1", "http://:8000", "http://host:port"])
def test_bad_urls_are_one_readable_error(url: str) -> None:
    with pytest.raises(errors.RequestValidationError):
        normalize_url(url)


def test_credentials_in_urls_never_reach_messages() -> None:
    assert redact_url("https://user:s3cret@host:8000/x") == "https://host:8000/x"
    with pytest.raises(errors.RequestValidationError) as info:
        normalize_url("ftp://user:s3cret@host:1")
    assert "s3cret" not in str(info.value)


def test_url_credentials_become_a_basic_authorization_header() -> None:
    url, headers = move_credentials("http://alice:p%40ss@127.0.0.1:8000/x", {"X-Key": "k"})
    assert url == "http://127.0.0.1:8000/x"
    assert headers == {"X-Key": "k", "Authorization": "Basic YWxpY2U6cEBzcw=="}  # alice:p@ss
    bare, _ = move_credentials("alice:pw@host:8001", {})
    assert bare == "host:8001"
    assert move_credentials("http://host:1", {"A": "b"}) == ("http://host:1", {"A": "b"})
    with pytest.raises(errors.RequestValidationError, match="Authorization") as info:
        move_credentials("http://alice:pw@host:1", {"authorization": "Bearer t"})
    assert info.value.field == "headers"
    assert "pw" not in str(info.value)


def test_model_path_escapes_names_and_checks_versions() -> None:
    assert model_path("ensemble") == "/v2/models/ensemble"
    assert model_path("a b/c", 2) == "/v2/models/a%20b%2Fc/versions/2"
    with pytest.raises(errors.RequestValidationError):
        model_path("ensemble", "latest")
    with pytest.raises(errors.RequestValidationError):
        model_path("")


def test_metrics_url_defaults_to_port_8002() -> None:
    assert metrics_url_for("http://10.0.0.5:8000") == "http://10.0.0.5:8002/metrics"
    assert metrics_url_for("127.0.0.1:8001") == "http://127.0.0.1:8002/metrics"


def test_timeout_from_numbers_none_and_objects() -> None:
    assert Timeout.of(3) == Timeout(connect=3.0, read=3.0, total=None)
    assert Timeout.of(None) == Timeout(connect=None, read=None, total=None)
    given = Timeout(connect=1, read=2, total=3)
    assert Timeout.of(given) is given
    with pytest.raises(errors.RequestValidationError):
        Timeout(read=0)
    with pytest.raises(errors.RequestValidationError):
        Timeout.of("5")  # type: ignore[arg-type]


def test_user_headers_must_be_strings_and_values_stay_hidden() -> None:
    assert check_headers({"X-Key": "v"}) == {"X-Key": "v"}
    with pytest.raises(errors.RequestValidationError) as info:
        check_headers({"X-Key": "line\nbreak-s3cret"})
    assert "s3cret" not in str(info.value)
    with pytest.raises(errors.RequestValidationError):
        check_headers({"X-Key": 5})  # type: ignore[dict-item]


def test_response_headers_lose_credentials() -> None:
    safe = safe_headers({"Set-Cookie": "session=abc", "Content-Type": "text/event-stream"})
    assert safe == {"set-cookie": "[redacted]", "content-type": "text/event-stream"}


# --- requests -----------------------------------------------------------------------------------


def test_make_request_from_prompt_or_request_with_overrides() -> None:
    request = make_request("hi", {"max_tokens": 5, "temperature": None})
    assert request.input_values() == {"text_input": "hi", "max_tokens": 5}
    merged = make_request(request, {"top_k": 3})
    assert merged.input_values() == {"text_input": "hi", "max_tokens": 5, "top_k": 3}
    assert make_request(request, {}) is request


def test_make_request_errors_name_the_field() -> None:
    with pytest.raises(errors.RequestValidationError) as info:
        make_request("hi", {"max_tokens": 0})
    assert info.value.field == "max_tokens"
    assert "max_tokens" in str(info.value) and "got 0" in str(info.value)
    with pytest.raises(errors.RequestValidationError) as nested:
        make_request("hi", {"nested": {"a": 1}})
    assert nested.value.field == "nested"
    with pytest.raises(errors.RequestValidationError) as empty:
        make_request("hi", {"bad_words": []})
    assert empty.value.field == "bad_words"
    with pytest.raises(errors.RequestValidationError) as union:
        make_request("hi", {"stop_words": 5})
    assert union.value.field == "stop_words"
    assert "valid string or Input should be a valid list" in str(union.value)
    with pytest.raises(errors.RequestValidationError) as bad_prompt:
        make_request(42, {})  # type: ignore[arg-type]
    assert bad_prompt.value.field == "text_input"


def test_model_inputs_is_a_mapping_that_knows_both_spellings() -> None:
    assert OLD["random_seed"] == "UINT64"
    assert "min_tokens" not in OLD
    assert OLD.supports("min_tokens") and OLD.resolve("min_tokens") == "min_length"
    assert NEW.resolve("min_length") == "min_tokens"
    assert NEW.resolve("random_seed") == "seed"
    assert not NEW.supports("return_num_output_tokens")
    assert list(OLD) == sorted(OLD)
    assert len(NEW) == 8
    assert NEW.shapes["max_tokens"] == (-1, 1)


def test_body_uses_the_names_each_server_accepts() -> None:
    request = GenerateRequest(text_input="hi", max_tokens=4, min_tokens=2, seed=7)
    assert build_body(request, OLD) == {
        "text_input": "hi",
        "max_tokens": 4,
        "min_length": 2,
        "random_seed": 7,
    }
    assert build_body(request, NEW) == {
        "text_input": "hi",
        "max_tokens": 4,
        "min_tokens": 2,
        "seed": 7,
    }


def test_an_input_the_model_lacks_is_refused_with_a_suggestion() -> None:
    request = make_request("hi", {"max_token": 4})
    with pytest.raises(errors.UnsupportedInputError) as info:
        build_body(request, NEW)
    assert info.value.field == "max_token"
    assert "Did you mean 'max_tokens'" in str(info.value)
    assert "silently ignore" in str(info.value)
    newer = make_request("hi", {"return_num_output_tokens": True})
    with pytest.raises(errors.UnsupportedInputError):
        build_body(newer, OLD)


def test_an_input_given_under_both_spellings_is_refused() -> None:
    request = GenerateRequest.model_validate({"text_input": "hi", "min_tokens": 1, "min_length": 2})
    with pytest.raises(errors.RequestValidationError, match="given twice"):
        build_body(request, OLD)


@pytest.mark.parametrize(
    ("name", "value"), [("flag", "yes"), ("max_tokens_extra", 1.5), ("temperature_x", True)]
)
def test_extra_values_must_fit_the_model_datatype(name: str, value: Any) -> None:
    inputs = ModelInputs.from_metadata(
        metadata("text_input", "max_tokens", "flag", "max_tokens_extra", "temperature_x",
                 datatypes={"text_input": "BYTES", "flag": "BOOL", "temperature_x": "FP32"})
    )  # fmt: skip
    request = make_request("hi", {name: value})
    with pytest.raises(errors.RequestValidationError, match=name):
        build_body(request, inputs)


def test_stream_flag_is_filled_only_when_unset_and_supported() -> None:
    request = GenerateRequest(text_input="hi")
    assert build_body(request, NEW, stream=True)["stream"] is True
    assert "stream" not in build_body(request, OLD, stream=True)
    explicit = GenerateRequest(text_input="hi", stream=False)
    assert build_body(explicit, NEW, stream=True)["stream"] is False


def test_without_metadata_names_are_sent_as_given() -> None:
    request = make_request("hi", {"max_token": 3})
    body = build_body(request, None, stream=True)
    assert body == {"text_input": "hi", "max_tokens": 16, "max_token": 3, "stream": True}


def test_id_and_parameters_go_to_their_own_keys() -> None:
    request = GenerateRequest(text_input="hi", id="r1", parameters={"priority": 1})
    body = build_body(request, NEW)
    assert body["id"] == "r1" and body["parameters"] == {"priority": 1}
    clash = GenerateRequest(text_input="hi", parameters={"max_tokens": 1})
    with pytest.raises(errors.RequestValidationError, match="both an input and a request parameter"):
        build_body(clash, NEW)


def test_body_encoding_is_compact_utf8() -> None:
    assert encode_body({"text_input": "café", "n": 1}) == '{"text_input":"café","n":1}'.encode()


@pytest.mark.parametrize(
    ("config", "mode"),
    [
        ({"parameters": {"accumulate_tokens": {"string_value": "true"}}}, "cumulative"),
        ({"parameters": {"accumulate_tokens": {"string_value": "True"}}}, "cumulative"),
        ({"parameters": {"accumulate_tokens": {"string_value": "false"}}}, "delta"),
        ({"parameters": {"accumulate_tokens": {"string_value": "${accumulate_tokens}"}}}, "delta"),
        ({"platform": "ensemble"}, "delta"),
    ],
)
def test_text_mode_comes_from_the_bls_config(config: dict[str, Any], mode: str) -> None:
    assert text_mode_from_config(config) == mode


# --- responses and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error":"missing required input(s) [\'max_tokens\']"}',
            "missing required input(s) ['max_tokens']",
        ),
        (b'data: {"error":"in ensemble \'ensemble\', Failed"}\n\n', "in ensemble 'ensemble', Failed"),
        (b"Not Found", "Not Found"),
        (b"", "(empty body)"),
    ],
)
def test_error_message_from_json_sse_or_plain_bodies(body: bytes, message: str) -> None:
    assert error_message(body) == message


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AccessDeniedError),
        (403, errors.AccessDeniedError),
        (404, errors.NotFoundError),
        (500, errors.InternalServerError),
        (501, errors.NotSupportedError),
        (503, errors.ServiceUnavailableError),
        (418, errors.TritonStatusError),
    ],
)
def test_status_codes_map_to_classes(status: int, cls: type[errors.TritonStatusError]) -> None:
    error = status_error(status, "boom", url="http://u:p@host/x")
    assert type(error) is cls
    assert error.status_code == status
    assert error.message.startswith("boom")
    assert "u:p" not in str(error)
    assert error_kind(error) == f"http_{status}"


def test_generate_body_success_and_error_shapes() -> None:
    ok = parse_generate_body(b'{"model_name":"ensemble","model_version":"1","text_output":"hi"}')
    assert ok.text == "hi"
    with pytest.raises(errors.ErrorBodyError) as info:
        parse_generate_body(b'{"error":"generate expects model to produce exactly 1 response, ..."}')
    assert "generate_stream()" in str(info.value)
    with pytest.raises(errors.InvalidJSONError):
        parse_generate_body(b"{not json")
    with pytest.raises(errors.InvalidJSONError):
        parse_generate_body(b"[1, 2]")
    with pytest.raises(errors.InvalidJSONError):
        parse_generate_body(b"  ")


def event(data: dict[str, Any] | bytes, at: int = 0) -> SSEEvent:
    return SSEEvent(data if isinstance(data, bytes) else json.dumps(data).encode(), at)


def test_delta_stream_text_accumulates() -> None:
    state = StreamState("delta")
    chunks = [state.chunk_from_event(event({"text_output": t}, i)) for i, t in enumerate(["A", "B", "C"])]
    assert [c.text for c in chunks] == ["A", "B", "C"]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [c.arrival_ns for c in chunks] == [0, 1, 2]
    assert state.text() == "ABC"
    state.finish()


def test_cumulative_stream_becomes_deltas_with_the_same_full_text() -> None:
    state = StreamState("cumulative")
    texts = [
        state.chunk_from_event(event({"text_output": t})).text for t in ["Mach", "Machine", "Machine is"]
    ]
    assert texts == ["Mach", "ine", " is"]
    assert state.text() == "Machine is"


def test_cumulative_text_that_rewrites_its_tail_keeps_the_last_full_text() -> None:
    state = StreamState("cumulative")
    state.chunk_from_event(event({"text_output": "caf\ufffd"}))
    delta = state.chunk_from_event(event({"text_output": "café!"})).text
    assert delta == "é!"
    assert state.text() == "café!"


def test_sequences_are_tracked_apart() -> None:
    state = StreamState("delta")
    for seq, text in [(0, "a"), (1, "x"), (0, "b"), (1, "y")]:
        state.chunk_from_event(event({"text_output": text, "sequence_index": seq}))
    assert state.text(0) == "ab" and state.text(1) == "xy"
    assert state.sequences() == [0, 1]


def test_beam_lists_use_the_first_beam() -> None:
    state = StreamState("delta")
    assert state.chunk_from_event(event({"text_output": ["best", "other"]})).text == "best"


def test_error_event_after_tokens_is_a_stream_error() -> None:
    state = StreamState("delta", url="http://host/x")
    state.chunk_from_event(event({"text_output": "a"}))
    with pytest.raises(errors.TritonStreamError) as info:
        state.chunk_from_event(event({"error": "Executor failed"}))
    assert info.value.events_received == 1
    assert info.value.message == "Executor failed"
    assert error_kind(info.value) == "stream_error"


@pytest.mark.parametrize("raw", [b"{broken", b"[1]", b'"text"'])
def test_events_that_are_not_json_objects(raw: bytes) -> None:
    with pytest.raises(errors.InvalidJSONError) as info:
        StreamState().chunk_from_event(event(raw))
    assert error_kind(info.value) == "invalid_json"


def test_an_empty_200_stream_is_not_a_success() -> None:
    with pytest.raises(errors.EmptyStreamError) as info:
        StreamState().finish()
    assert "required input" in str(info.value)
    assert error_kind(info.value) == "empty_stream"


def test_a_stream_cut_inside_an_event_is_malformed() -> None:
    state = StreamState()
    state.chunk_from_event(event({"text_output": "a"}))
    with pytest.raises(errors.MalformedStreamError) as info:
        state.finish(b'data: {"text_out')
    assert error_kind(info.value) == "malformed_sse"


# --- kinds and retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (errors.TritonConnectionError("x"), "connect"),
        (errors.TritonDisconnectedError("x"), "disconnect"),
        (errors.ConnectTimeoutError("x"), "timeout_connect"),
        (errors.ReadTimeoutError("x"), "timeout_read"),
        (errors.TotalTimeoutError("x"), "timeout_total"),
        (errors.TritonTransportError("x"), "transport"),
        (errors.RequestValidationError("x"), "invalid_request"),
        (errors.UnsupportedInputError("a", "m", ["b"]), "unsupported_input"),
        (errors.ErrorBodyError("x"), "error_body"),
        (errors.BadRequestError("x", status_code=400, grpc_code="INVALID_ARGUMENT"), "grpc_invalid_argument"),
        (errors.SetupError("x"), "launcher"),
        (asyncio.CancelledError(), "cancelled"),
        (KeyboardInterrupt(), "cancelled"),
        (TimeoutError(), "timeout_total"),
        (ValueError("x"), "other"),
    ],
)
def test_error_kinds(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


def test_every_kind_is_documented() -> None:
    kinds = {
        "connect",
        "disconnect",
        "stream_error",
        "empty_stream",
        "invalid_json",
        "malformed_sse",
        "cancelled",
    }
    assert kinds <= set(ERROR_KINDS)
    assert {"timeout_connect", "timeout_read", "timeout_total", "http_<status>"} <= set(ERROR_KINDS)


def test_retry_delay_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(max_retries=10, initial_delay=0.5, max_delay=4.0, jitter=0.25)
    assert [retry_delay(n, policy, rand=0.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert retry_delay(1, policy, rand=0.999) == pytest.approx(1.0 * (1 - 0.25 * 0.999))
    assert retry_delay(0, policy, rand=0.5, retry_after=3.0) == 3.0
    assert retry_delay(0, policy, rand=0.5, retry_after=60.0) == 4.0


def test_only_connection_failures_and_503_before_any_event_are_retried() -> None:
    assert should_retry(errors.TritonConnectionError("x"))
    assert should_retry(errors.ConnectTimeoutError("x"))
    assert should_retry(errors.ServiceUnavailableError("x", status_code=503))
    assert not should_retry(errors.ServiceUnavailableError("x", status_code=503), events_received=1)
    assert not should_retry(errors.ServiceUnavailableError("x", status_code=503, grpc_code="UNAVAILABLE"))
    assert not should_retry(errors.ReadTimeoutError("x"))
    assert not should_retry(errors.TritonDisconnectedError("x"))
    assert not should_retry(errors.InternalServerError("x", status_code=500))
    assert not should_retry(errors.TritonStreamError("x"))


def test_retry_policy_validates_its_count() -> None:
    with pytest.raises(errors.RequestValidationError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(errors.RequestValidationError):
        RetryPolicy(max_retries=True)


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None), ("-1", None)]
)
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds
