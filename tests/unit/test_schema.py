"""Request validation and response parsing of the pydantic models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trtclient.constants import DEFAULT_MAX_TOKENS
from trtclient.schema import GenerateRequest, GenerateResponse, ModelMetadata, StreamChunk


def test_only_text_input_is_required_and_unset_inputs_are_not_sent() -> None:
    request = GenerateRequest(text_input="What is machine learning?")
    assert request.input_values() == {
        "text_input": "What is machine learning?",
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    with pytest.raises(ValidationError) as info:
        GenerateRequest.model_validate({"max_tokens": 3})
    assert info.value.errors()[0]["loc"] == ("text_input",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 0),
        ("max_tokens", 2**31),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("temperature", -0.1),
        ("top_k", -1),
        ("beam_width", 0),
        ("num_return_sequences", 0),
        ("repetition_penalty", 0.0),
        ("min_tokens", -1),
        ("seed", -1),
        ("seed", 2**64),
        ("max_tokens", "20"),
        ("max_tokens", 5.5),
        ("stream", "yes"),
        ("temperature", True),
        ("stop_words", ("a", "b")),
        ("bad_words", []),
    ],
)
def test_out_of_bounds_or_mistyped_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        GenerateRequest.model_validate({"text_input": "hi", field: value})
    message = str(info.value)
    assert field in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_p", 1.0),
        ("temperature", 0),
        ("top_k", 0),
        ("seed", 2**64 - 1),
        ("min_tokens", 0),
        ("top_p", 1e-6),
    ],
)
def test_bounds_are_inclusive_where_the_backend_allows(field: str, value: Any) -> None:
    request = GenerateRequest.model_validate({"text_input": "hi", field: value})
    assert request.input_values()[field] == value


def test_old_spellings_are_accepted_as_aliases() -> None:
    request = GenerateRequest.model_validate({"text_input": "hi", "min_length": 4, "random_seed": 9})
    assert request.min_tokens == 4
    assert request.seed == 9
    assert "min_length" not in request.input_values()


def test_extra_inputs_pass_through_and_must_be_tensor_values() -> None:
    request = GenerateRequest.model_validate({"text_input": "hi", "my_flag": True, "ids": [1, 2, 3]})
    assert request.input_values()["my_flag"] is True
    assert request.input_values()["ids"] == [1, 2, 3]
    with pytest.raises(ValidationError, match="extra input 'nested'"):
        GenerateRequest.model_validate({"text_input": "hi", "nested": {"a": 1}})


def test_word_lists_accept_a_string_or_a_list() -> None:
    one = GenerateRequest(text_input="hi", stop_words="end")
    many = GenerateRequest(text_input="hi", stop_words=["end", "stop"])
    assert one.input_values()["stop_words"] == "end"
    assert many.input_values()["stop_words"] == ["end", "stop"]


def test_id_and_parameters_are_kept_apart_from_inputs() -> None:
    request = GenerateRequest(text_input="hi", id="req-1", parameters={"priority": 2})
    values = request.input_values()
    assert "id" not in values and "parameters" not in values
    assert request.id == "req-1"
    assert request.parameters == {"priority": 2}


def test_requests_are_immutable() -> None:
    request = GenerateRequest(text_input="hi")
    with pytest.raises(ValidationError):
        request.max_tokens = 5  # type: ignore[misc]


def test_response_keeps_unknown_fields_and_coerces_the_version() -> None:
    response = GenerateResponse.model_validate(
        {"model_name": "ensemble", "model_version": 1, "text_output": "hi", "finish_reason": "length"}
    )
    assert response.model_version == "1"
    assert response.model_extra == {"finish_reason": "length"}
    assert response.text == "hi"


@pytest.mark.parametrize(
    ("value", "text", "texts"),
    [
        ("abc", "abc", ["abc"]),
        (["beam0", "beam1"], "beam0", ["beam0", "beam1"]),
        (None, "", []),
        ([], "", []),
    ],
)
def test_text_of_scalar_list_and_missing_outputs(value: Any, text: str, texts: list[str]) -> None:
    response = GenerateResponse.model_validate({"text_output": value})
    assert response.text == text
    assert response.texts == texts


def test_response_typed_fields() -> None:
    response = GenerateResponse.model_validate(
        {
            "text_output": "x",
            "first_token_time_ns": 1_700_000_000_000_000_000,
            "num_output_tokens": 3,
            "output_log_probs": [-0.5, -1.0],
            "sequence_index": 1,
            "kv_cache_reused_blocks": 2,
        }
    )
    assert response.first_token_time_ns == 1_700_000_000_000_000_000
    assert response.num_output_tokens == 3
    assert response.output_log_probs == [-0.5, -1.0]
    assert response.sequence_index == 1
    assert response.kv_cache_reused_blocks == 2


def test_stream_chunk_builds_its_response_once_and_lazily() -> None:
    data = {"text_output": " hi", "model_name": "ensemble", "model_version": "1", "sequence_index": 2}
    chunk = StreamChunk(" hi", data, b'{"text_output":" hi"}', 123, 0)
    assert chunk._response is None
    first = chunk.response
    assert first is chunk.response
    assert first.model_name == "ensemble"
    assert chunk.sequence_index == 2
    assert chunk.raw == b'{"text_output":" hi"}'


def test_stream_chunk_without_raw_bytes_reencodes_its_data() -> None:
    chunk = StreamChunk("a", {"text_output": "a", "num_output_tokens": 1}, None, 0, 0)
    assert chunk.raw == b'{"text_output":"a","num_output_tokens":1}'


def test_model_metadata_parses_triton_shape() -> None:
    metadata = ModelMetadata.model_validate(
        {
            "name": "ensemble",
            "versions": ["1"],
            "platform": "ensemble",
            "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]}],
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
        }
    )
    assert metadata.inputs[0].shape == [-1, 1]
    assert metadata.outputs[0].name == "text_output"
