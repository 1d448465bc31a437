"""Typed shapes of what goes over the wire: the generate request, its responses, streamed chunks and
the metadata documents of Triton's HTTP API.

Input names follow the newest TensorRT-LLM ``ensemble`` (``min_tokens``, ``seed``; see
``triton-protocol.md`` §2.1); the client maps them to what a given server accepts. Older spellings
(``min_length``, ``random_seed``) are accepted as aliases. Inputs not declared here pass through as
extra fields: the client checks them against the model's metadata before sending.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from trtclient.constants import DEFAULT_MAX_TOKENS

__all__ = [
    "GenerateRequest",
    "GenerateResponse",
    "ModelMetadata",
    "ModelStats",
    "RepositoryModel",
    "ServerMetadata",
    "StatDuration",
    "StreamChunk",
    "TensorMetadata",
]

Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
PositiveInt32 = Annotated[int, Field(ge=1, le=2**31 - 1)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=2**31 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
Words = str | list[str]
Scalar = str | int | float | bool
_AsString = BeforeValidator(lambda v: v if v is None or isinstance(v, str) else str(v))

#: Names of the GenerateRequest fields that are not model inputs.
REQUEST_META_FIELDS = frozenset({"id", "parameters"})


class GenerateRequest(BaseModel):
    """One request to ``/generate`` or ``/generate_stream`` (the TRT-LLM ensemble's inputs).

    Only ``text_input`` is required; unset optional inputs are not sent, so the model's defaults
    apply. Any other keyword becomes an extra input, sent under its own name.
    """

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)

    text_input: str = Field(description="The prompt.")
    max_tokens: PositiveInt32 = Field(DEFAULT_MAX_TOKENS, description="Most tokens to generate.")
    decoder_text_input: str | None = Field(None, description="Decoder prompt of encoder-decoder models.")
    num_return_sequences: PositiveInt32 | None = Field(
        None, description="Sequences to return (TRT-LLM ≥ 0.14)."
    )
    bad_words: Words | None = Field(None, description="Words or phrases the model must not produce.")
    stop_words: Words | None = Field(None, description="Words or phrases that end generation.")
    exclude_input_in_output: bool | None = Field(
        None, description="Leave the prompt out of non-streamed output."
    )
    end_id: Int32 | None = Field(None, description="End-of-sequence token id.")
    pad_id: Int32 | None = Field(None, description="Padding token id.")
    top_k: NonNegativeInt32 | None = Field(None, description="Sample from the k most likely tokens (0: off).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling mass, in (0, 1].")
    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature, ≥ 0.")
    length_penalty: float | None = Field(None, description="Beam-search length penalty.")
    repetition_penalty: float | None = Field(None, gt=0.0, description="Penalty on repeated tokens, > 0.")
    min_tokens: NonNegativeInt32 | None = Field(
        None,
        validation_alias=AliasChoices("min_tokens", "min_length"),
        description="Fewest tokens to generate (sent as min_length to servers before TRT-LLM 0.20).",
    )
    presence_penalty: float | None = Field(None, description="Penalty on tokens already present.")
    frequency_penalty: float | None = Field(None, description="Penalty growing with token frequency.")
    seed: UInt64 | None = Field(
        None,
        validation_alias=AliasChoices("seed", "random_seed"),
        description="Sampling seed (sent as random_seed to servers before TRT-LLM 0.20).",
    )
    return_log_probs: bool | None = Field(None, description="Return cum_log_probs and output_log_probs.")
    return_context_logits: bool | None = Field(None, description="Return context_logits.")
    return_generation_logits: bool | None = Field(None, description="Return generation_logits.")
    return_perf_metrics: bool | None = Field(
        None, description="Return *_time_ns and kv-cache stats (≥ 0.19)."
    )
    return_kv_cache_reuse_stats: bool | None = Field(
        None, description="Return kv-cache stats (0.16 to 0.18)."
    )
    return_num_input_tokens: bool | None = Field(None, description="Return num_input_tokens (TRT-LLM ≥ 1.0).")
    return_num_output_tokens: bool | None = Field(
        None, description="Return num_output_tokens (TRT-LLM ≥ 1.0)."
    )
    beam_width: PositiveInt32 | None = Field(None, description="Beam width (1: sampling).")
    stream: bool | None = Field(None, description="Stream tokens (set by generate_stream when unset).")
    prompt_embedding_table: list[float] | None = Field(None, description="Prompt-tuning table, flattened.")
    prompt_table_extra_id: UInt64 | None = Field(None, description="Extra id of the prompt table.")
    prompt_vocab_size: NonNegativeInt32 | None = Field(
        None, description="Vocabulary size of the prompt table."
    )
    embedding_bias_words: Words | None = Field(None, description="Words whose logits get a bias.")
    embedding_bias_weights: list[float] | float | None = Field(None, description="The biases of those words.")
    lora_task_id: UInt64 | None = Field(None, description="LoRA adapter id.")
    lora_weights: list[float] | None = Field(None, description="LoRA weights, flattened.")
    lora_config: list[int] | None = Field(None, description="LoRA config rows, flattened.")
    guided_decoding_guide_type: str | None = Field(
        None, description="json, json_schema, regex or ebnf_grammar."
    )
    guided_decoding_guide: str | None = Field(None, description="The guide itself.")
    id: str | None = Field(None, description="Request id; Triton ≥ 24.08 echoes it in every response.")
    parameters: dict[str, Scalar] | None = Field(
        None, description="Request parameters sent in Triton's nested 'parameters' object, unchecked."
    )

    @model_validator(mode="after")
    def _check_extras(self) -> GenerateRequest:
        for name, value in (self.__pydantic_extra__ or {}).items():
            if not _is_tensor_value(value):
                raise ValueError(
                    f"extra input {name!r} must be a string, number, bool or a flat list of them, "
                    f"not {type(value).__name__}"
                )
        for key in ("bad_words", "stop_words", "embedding_bias_words"):
            value = getattr(self, key)
            if isinstance(value, list) and not value:
                raise ValueError(f"{key} is an empty list: omit it instead (Triton rejects empty tensors)")
        return self

    def input_values(self) -> dict[str, Any]:
        """The inputs to send, under their logical names: set fields and extras, without id/parameters."""
        values = self.model_dump(exclude_none=True, exclude=set(REQUEST_META_FIELDS))
        return values


def _is_tensor_value(value: object) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(isinstance(item, str | int | float | bool) for item in value)
    return False


class GenerateResponse(BaseModel):
    """One response of ``/generate`` (or one streamed event); unknown fields are kept as extras.

    One-element tensors arrive as scalars, longer ones as flat lists (beam search, logits).
    Every field except ``model_name``/``model_version`` is optional: the backend only sends what
    the request asked for.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: str = Field("", description="Model that answered.")
    model_version: Annotated[str, _AsString] = Field("", description="Its version, as a string.")
    id: Annotated[str | None, _AsString] = Field(None, description="The request id, when one was sent.")
    text_output: str | list[str] | None = Field(
        None, description="Generated text (a list for several beams)."
    )
    cum_log_probs: float | list[float] | None = Field(
        None, description="Cumulative log-probability per beam."
    )
    output_log_probs: float | list[float] | None = Field(None, description="Log-probability of each token.")
    context_logits: float | list[float] | None = Field(None, description="Logits of the prompt, flattened.")
    generation_logits: float | list[float] | None = Field(None, description="Logits per output token.")
    batch_index: int | None = Field(None, description="Index of the prompt within a batched request.")
    sequence_index: int | None = Field(None, description="Which of num_return_sequences this is.")
    kv_cache_alloc_new_blocks: int | None = Field(None, description="KV-cache blocks newly allocated.")
    kv_cache_reused_blocks: int | None = Field(None, description="KV-cache blocks reused.")
    kv_cache_alloc_total_blocks: int | None = Field(None, description="KV-cache blocks in total.")
    arrival_time_ns: int | None = Field(None, description="Engine: request arrival, ns since the epoch.")
    first_scheduled_time_ns: int | None = Field(
        None, description="Engine: first scheduled, ns since the epoch."
    )
    first_token_time_ns: int | None = Field(None, description="Engine: first token, ns since the epoch.")
    last_token_time_ns: int | None = Field(None, description="Engine: last token, ns since the epoch.")
    acceptance_rate: float | None = Field(None, description="Speculative decoding: draft acceptance rate.")
    total_accepted_draft_tokens: int | None = Field(
        None, description="Speculative decoding: accepted drafts."
    )
    total_draft_tokens: int | None = Field(None, description="Speculative decoding: drafted tokens.")
    num_input_tokens: int | None = Field(None, description="Prompt tokens (TRT-LLM ≥ 1.0).")
    num_output_tokens: int | None = Field(None, description="Output tokens of this response (TRT-LLM ≥ 1.0).")
    sequence_id: int | None = Field(None, description="Ensemble scheduler parameter (0).")
    sequence_start: bool | None = Field(None, description="Ensemble scheduler parameter.")
    sequence_end: bool | None = Field(None, description="Ensemble scheduler parameter.")

    @property
    def text(self) -> str:
        """The generated text (the first beam when there are several)."""
        value = self.text_output
        if value is None:
            return ""
        if isinstance(value, list):
            return value[0] if value else ""
        return value

    @property
    def texts(self) -> list[str]:
        """Every beam's text."""
        value = self.text_output
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]


class StreamChunk:
    """One event of a streamed response.

    ``text`` is the text this event adds (cumulative streams are turned into deltas), ``data`` the
    event's parsed JSON, ``raw`` its data bytes, ``arrival_ns`` the ``now_ns()`` stamp of the read
    that brought its first byte, ``index`` its 0-based position in the stream. ``response`` parses
    ``data`` into a :class:`GenerateResponse` on first access.
    """

    __slots__ = ("_raw", "_response", "arrival_ns", "data", "index", "text")

    def __init__(
        self, text: str, data: dict[str, Any], raw: bytes | None, arrival_ns: int, index: int
    ) -> None:
        self.text = text
        self.data = data
        self._raw = raw
        self.arrival_ns = arrival_ns
        self.index = index
        self._response: GenerateResponse | None = None

    @property
    def raw(self) -> bytes:
        """The event's data bytes (for gRPC, the fields re-encoded as JSON)."""
        if self._raw is None:
            self._raw = json.dumps(self.data, separators=(",", ":")).encode()
        return self._raw

    @property
    def response(self) -> GenerateResponse:
        """The event's fields as a typed :class:`GenerateResponse` (built once, on first use)."""
        if self._response is None:
            self._response = GenerateResponse.model_validate(self.data)
        return self._response

    @property
    def sequence_index(self) -> int:
        """Which returned sequence this event belongs to (0 unless num_return_sequences > 1)."""
        value = self.data.get("sequence_index", 0)
        return value if isinstance(value, int) else 0

    def __repr__(self) -> str:
        return f"StreamChunk(index={self.index}, text={self.text!r}, arrival_ns={self.arrival_ns})"


# --- metadata documents -------------------------------------------------------------------------


class ServerMetadata(BaseModel):
    """``GET /v2``: server name, version and protocol extensions."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    version: str = ""
    extensions: list[str] = Field(default_factory=list)


class TensorMetadata(BaseModel):
    """One input or output of a model: name, Triton datatype (``BYTES``, ``INT32``...) and shape."""

    model_config = ConfigDict(extra="allow")

    name: str
    datatype: str
    shape: list[int] = Field(default_factory=list)


class ModelMetadata(BaseModel):
    """``GET /v2/models/{model}``: versions, platform (``ensemble``, ``python``...), inputs, outputs."""

    model_config = ConfigDict(extra="allow")

    name: str
    versions: list[str] = Field(default_factory=list)
    platform: str = ""
    inputs: list[TensorMetadata] = Field(default_factory=list)
    outputs: list[TensorMetadata] = Field(default_factory=list)


class RepositoryModel(BaseModel):
    """One entry of ``POST /v2/repository/index``."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str = ""
    state: str = ""
    reason: str = ""


class StatDuration(BaseModel):
    """A count and the total nanoseconds spent, as in Triton's statistics."""

    model_config = ConfigDict(extra="allow")

    count: int = 0
    ns: int = 0


class ModelStats(BaseModel):
    """Statistics of one model version (``GET /v2/models/{model}/stats``); other fields are kept."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str = ""
    last_inference: int = 0
    inference_count: int = 0
    execution_count: int = 0
    inference_stats: dict[str, StatDuration] = Field(default_factory=dict)
