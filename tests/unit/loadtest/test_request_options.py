"""The one request-options policy that ``trtclient bench`` and the Locust user share."""

from __future__ import annotations

import pytest

from trtclient import errors
from trtclient.inputs import ModelInputs
from trtclient.loadtest.request_options import OptionError, resolve_options
from trtclient.loadtest.workload import Prompt

BASIC = ["text_input", "max_tokens", "stream", "bad_words", "stop_words"]
FULL = [
    *BASIC,
    "min_length",  # the pre-0.20 spelling of min_tokens
    "end_id",
    "pad_id",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "return_perf_metrics",
]
LOOPBACK = "http://127.0.0.1:8000"
REMOTE = "http://10.1.2.3:8000"


def model(names: list[str]) -> ModelInputs:
    return ModelInputs.from_metadata(
        {"name": "ensemble", "inputs": [{"name": n, "datatype": "INT32", "shape": [-1, 1]} for n in names]}
    )


def test_auto_uses_what_the_model_has() -> None:
    options = resolve_options(model(FULL), model="ensemble", url=LOOPBACK, lengths_set=True)
    assert (options.force_output_length, options.server_token_counts, options.perf_metrics) == (
        True,
        True,
        True,
    )
    request = options.build(Prompt("p", "hi", 7))
    assert request.min_tokens == 7 and request.max_tokens == 7 and request.stream is True


def test_auto_leaves_out_what_the_model_lacks_and_engine_stamps_off_loopback() -> None:
    bare = resolve_options(model(BASIC), model="ensemble", url=LOOPBACK, lengths_set=True)
    assert (bare.force_output_length, bare.server_token_counts, bare.perf_metrics) == (False, False, False)
    remote = resolve_options(model(FULL), model="ensemble", url=REMOTE)
    assert remote.perf_metrics is False and remote.server_token_counts is True


@pytest.mark.parametrize(
    ("asked", "field"),
    [
        ({"end_id": 2}, "end_id"),
        ({"server_token_counts": True}, "return_num_output_tokens"),
        ({"perf_metrics": True}, "return_perf_metrics"),
    ],
)
def test_an_option_asked_for_on_a_model_without_its_input_is_refused(
    asked: dict[str, object], field: str
) -> None:
    with pytest.raises(OptionError) as caught:
        resolve_options(model(BASIC), model="ensemble", url=LOOPBACK, **asked)  # type: ignore[arg-type]
    assert caught.value.field == field and "'ensemble'" in str(caught.value)


def test_forcing_lengths_without_min_tokens_falls_back_to_verifying_them_with_a_note() -> None:
    notes: list[str] = []
    options = resolve_options(
        model(BASIC), model="ensemble", url=LOOPBACK, force_output_length=True, notes=notes
    )
    assert options.force_output_length is False
    assert len(notes) == 1 and "verified, not forced" in notes[0]


def test_named_inputs_must_exist_and_optional_ones_go_only_where_they_exist() -> None:
    with pytest.raises(errors.UnsupportedInputError, match="no input 'temprature'"):
        resolve_options(model(FULL), model="ensemble", url=LOOPBACK, extra_inputs={"temprature": 0.5})
    options = resolve_options(
        model(BASIC),
        model="ensemble",
        url=LOOPBACK,
        extra_inputs={"bad_words": "x"},
        optional_inputs={"stop_words": "", "pad_id": 2, "end_id": 2, "beam_width": None},
    )
    assert dict(options.extra) == {"bad_words": "x", "stop_words": ""}


def test_lengths_a_model_cannot_force_are_said_and_then_checked() -> None:
    from trtclient.bench.session import unforced_length_check
    from trtclient.loadtest.records import RequestRecord

    notes: list[str] = []
    options = resolve_options(model(BASIC), model="ensemble", url=LOOPBACK, lengths_set=True, notes=notes)
    assert options.force_output_length is False
    assert len(notes) == 1 and "has no min_tokens/min_length input" in notes[0] and "not forced" in notes[0]
    records = [
        RequestRecord(i, 0, status="ok", requested_output_tokens=8, output_tokens=got)
        for i, got in enumerate((8, 3, 8, 5))
    ]
    (check,) = unforced_length_check(records)
    assert (
        check == "output lengths not forced: 2 of 4 requests got the length asked (asked 8.0 tokens "
        "on average, got 6.0)"
    )
    quiet: list[str] = []
    resolve_options(model(BASIC), model="ensemble", url=LOOPBACK, lengths_set=False, notes=quiet)
    assert quiet == []  # a fixed prompt's max_tokens is a ceiling, not a length asked for
