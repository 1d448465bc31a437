"""How a prompt becomes a request in a load test, and the one policy that picks those options from what
the model supports. ``trtclient bench`` and the Locust user both call :func:`resolve_options`, so the
same flag means the same thing in both tools.

The policy: an option left on ``"auto"`` is used when the model has the input for it; an option asked
for explicitly on a model without that input is refused with one message saying which input is missing
(forcing output lengths is the exception: it falls back to verifying them, with a note). Inputs named
by the user must exist (Triton would turn an unknown name into an ignored parameter); ``optional``
inputs (defaults of a tutorial request) are sent only where the model has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from trtclient import errors
from trtclient.inputs import ModelInputs, make_request
from trtclient.loadtest.workload import Prompt
from trtclient.schema import GenerateRequest
from trtclient.urls import url_is_loopback

__all__ = ["Auto", "OptionError", "RequestOptions", "resolve_options"]

Auto = Literal["auto"]
"""Use the option when the model supports it."""


class OptionError(errors.RequestValidationError):
    """A load-test option the model cannot honour (the message names the missing input)."""


@dataclass(frozen=True)
class RequestOptions:
    """How a prompt becomes a request.

    ``force_output_length`` sends ``min_tokens = max_tokens`` so the server generates exactly the
    requested length (set it only when the model has that input); ``end_id`` overrides the
    end-of-sequence id (an id the model never produces also forces the length).
    ``server_token_counts`` and ``perf_metrics`` ask for ``num_*_tokens`` and the engine's timestamps.
    """

    force_output_length: bool = False
    end_id: int | None = None
    server_token_counts: bool = False
    perf_metrics: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def build(self, prompt: Prompt) -> GenerateRequest:
        """The request for one prompt (raises ``RequestValidationError`` naming a bad field)."""
        fields: dict[str, Any] = dict(self.extra)
        if prompt.fields:
            fields.update(prompt.fields)
        if self.force_output_length:
            fields["min_tokens"] = prompt.max_tokens
        if self.end_id is not None:
            fields["end_id"] = self.end_id
        if self.server_token_counts:
            fields["return_num_input_tokens"] = True
            fields["return_num_output_tokens"] = True
        if self.perf_metrics:
            fields["return_perf_metrics"] = True
        fields["max_tokens"] = prompt.max_tokens
        fields["stream"] = True
        return make_request(prompt.text, fields)


def resolve_options(
    inputs: ModelInputs,
    *,
    model: str,
    url: str,
    force_output_length: bool | Auto = "auto",
    lengths_set: bool = False,
    end_id: int | None = None,
    server_token_counts: bool | Auto = "auto",
    perf_metrics: bool | Auto = "auto",
    extra_inputs: Mapping[str, Any] | None = None,
    optional_inputs: Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
) -> RequestOptions:
    """The request options for ``model`` (whose inputs are ``inputs``) at ``url``.

    ``lengths_set``: the workload asks for output lengths (what ``force_output_length="auto"`` forces).
    ``extra_inputs``: sent as given, and each must be an input of the model. ``optional_inputs``: sent
    where the model has them (None values never). ``notes`` receives what was adjusted. The engine's
    timestamps compare with ours only on a loopback server, so ``perf_metrics="auto"`` asks only there.
    """
    extra = dict(extra_inputs or {})
    missing = [name for name in extra if not inputs.supports(name)]
    if missing:
        raise errors.UnsupportedInputError(missing[0], model, list(inputs))
    for name, value in (optional_inputs or {}).items():
        if value is not None and inputs.supports(name) and name not in extra:
            extra[name] = value
    can_force = inputs.supports("min_tokens")
    force = force_output_length
    if force == "auto":
        force = lengths_set and can_force
        if lengths_set and not can_force and notes is not None:
            notes.append(
                f"model {model!r} has no min_tokens/min_length input: the workload's output lengths are "
                "asked as max_tokens only (not forced); the report checks what came back against them"
            )
    elif force and not can_force:
        if notes is not None:
            notes.append(
                f"model {model!r} has no min_tokens/min_length input: output lengths are verified, not forced"
            )
        force = False
    if end_id is not None and not inputs.supports("end_id"):
        raise OptionError(f"model {model!r} has no end_id input", field="end_id")
    counts = server_token_counts
    has_counts = inputs.supports("return_num_output_tokens") and inputs.supports("return_num_input_tokens")
    if counts == "auto":
        counts = has_counts
    elif counts and not has_counts:
        raise OptionError(
            f"model {model!r} cannot return token counts (no return_num_output_tokens input)",
            field="return_num_output_tokens",
        )
    perf = perf_metrics
    has_perf = inputs.supports("return_perf_metrics")
    if perf == "auto":
        perf = has_perf and url_is_loopback(url)
    elif perf and not has_perf:
        raise OptionError(
            f"model {model!r} has no return_perf_metrics input (TensorRT-LLM >= 0.19)",
            field="return_perf_metrics",
        )
    return RequestOptions(
        force_output_length=bool(force),
        end_id=end_id,
        server_token_counts=bool(counts),
        perf_metrics=bool(perf),
        extra=extra,
    )
