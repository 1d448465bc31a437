"""GenAI-Perf/AIPerf spellings on bench and sweep, no abbreviations, and "did you mean" for unknown flags."""

from __future__ import annotations

import argparse

import pytest

from trtclient.cli import build_parser, main
from trtclient.cli.bench_args import build_spec
from trtclient.cli.common import UsageError
from trtclient.loadtest.schedule import Rate
from trtclient.loadtest.workload import SyntheticPrompts

URL = ["--url", "http://127.0.0.1:9"]


def parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bench", *URL, *argv])


def test_renames_land_on_our_flags() -> None:
    args = parsed("--request-rate", "4", "--request-count", "8", "-m", "tensorrt_llm", "--streaming")
    assert (args.rate, args.requests, args.model, args.streaming) == (4.0, 8, "tensorrt_llm", True)
    spec = build_spec(args, default_tokenizer=None)
    assert isinstance(spec.shape, Rate) and spec.shape.rate == 4.0
    assert spec.stop.requests == 8 and spec.model == "tensorrt_llm"


def test_split_lengths_warmup_and_goodput_become_ours() -> None:
    from trtclient.server.tokenizer import default_tokenizer_dir

    args = parsed(
        "--tokenizer", str(default_tokenizer_dir()),
        "--synthetic-input-tokens-mean", "64", "--synthetic-input-tokens-stddev", "8",
        "--output-tokens-mean", "16",
        "--concurrency", "2", "--warmup-request-count", "3",
        "--goodput", "time_to_first_token:500", "inter_token_latency:20",
    )  # fmt: skip
    spec = build_spec(args, default_tokenizer=None)
    assert (args.input_tokens, args.output_tokens) == ("64,8", "16,0")
    assert isinstance(spec.workload, SyntheticPrompts)
    assert spec.warmup.requests == 3
    assert spec.slos_ns == {"ttft": 500e6, "tpot": 20e6}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input-tokens", "64", "--synthetic-input-tokens-mean", "64"], "give either --input-tokens"),
        (["--output-tokens-stddev", "3"], "--output-tokens-stddev needs --output-tokens-mean"),
        (["--warmup", "2", "--warmup-request-count", "3"], "give either --warmup or --warmup-request-count"),
        (["--goodput", "throughput:3"], "--goodput expects METRIC:MS"),
    ],
)
def test_contradictions_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_spec(parsed(*argv), default_tokenizer=None)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["bench", *URL, "--rat", "3"], "(did you mean --rate"),
        (["bench", *URL, "--max-token", "3"], "(did you mean --max-tokens"),
        (["sweep", "--concurrency", "1", *URL, "--request", "3"], "(did you mean --requests"),
        (["generate", "hi", "--max_tokens", "3"], "(did you mean --max-tokens"),
    ],
)
def test_unknown_or_abbreviated_flags_show_the_subcommand_usage_and_a_guess(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: trtclient {argv[0]}" in err
    assert "unrecognized arguments" in err and said in err


def test_no_extra_outputs_asks_for_no_return_inputs() -> None:
    from trtclient.inputs import ModelInputs
    from trtclient.loadtest.request_options import resolve_options
    from trtclient.loadtest.workload import Prompt

    names = ["text_input", "max_tokens", "stream", "return_num_input_tokens", "return_num_output_tokens",
             "return_perf_metrics"]  # fmt: skip
    inputs = ModelInputs.from_metadata(
        {"name": "ensemble", "inputs": [{"name": n, "datatype": "INT32", "shape": [-1, 1]} for n in names]}
    )

    def asked(*argv: str) -> set[str]:
        spec = build_spec(parsed(*argv), default_tokenizer=None)
        options = resolve_options(
            inputs, model="ensemble", url="http://127.0.0.1:8000",
            server_token_counts=spec.server_token_counts, perf_metrics=spec.perf_metrics,
        )  # fmt: skip
        sent = options.build(Prompt("p", "hi", 4)).model_dump(exclude_none=True)
        return {name for name in sent if name.startswith("return_")}

    assert asked() == {"return_num_input_tokens", "return_num_output_tokens", "return_perf_metrics"}
    assert asked("--no-extra-outputs") == set()


def test_the_command_line_tools_share_one_max_tokens_default() -> None:
    from trtclient.constants import CLI_MAX_TOKENS

    generate = build_parser().parse_args(["generate", "hi"])
    assert generate.max_tokens == CLI_MAX_TOKENS
    spec = build_spec(parsed(), default_tokenizer=None)
    assert next(iter(spec.workload.prompts())).max_tokens == CLI_MAX_TOKENS


def test_tokenizer_embedded_names_the_embedded_servers_tokenizer() -> None:
    from trtclient.loadtest.workload import TokenCounter
    from trtclient.server.tokenizer import default_tokenizer_dir

    args = parsed("--tokenizer", "embedded", "--input-tokens", "16", "--output-tokens", "4")
    spec = build_spec(args, default_tokenizer=None)
    text = "What is machine learning?"
    assert spec.tokenizer is not None
    assert spec.tokenizer.encode(text) == TokenCounter.from_dir(default_tokenizer_dir()).encode(text)
