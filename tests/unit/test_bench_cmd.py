"""``trtclient bench`` command line: values parsed as documented, mistakes refused in one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trtclient.cli import build_parser, main
from trtclient.cli.bench_args import (
    build_spec,
    check_outputs,
    parse_length,
    parse_params,
    parse_seconds,
    parse_slos,
    parse_warmup,
)
from trtclient.cli.common import UsageError
from trtclient.loadtest.schedule import Burst, Concurrency, Rate
from trtclient.loadtest.workload import FixedPrompt


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bench", "--url", "http://127.0.0.1:9", *argv])


def spec(*argv: str):  # type: ignore[no-untyped-def]
    return build_spec(args(*argv), default_tokenizer=None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text, "--duration") == seconds


def test_lengths_warmup_slos_and_params() -> None:
    assert parse_length("128", "--input-tokens") == (128, 0.0)
    assert (
        parse_length("128,16", "x")
        == parse_length("128+-16", "x")
        == parse_length("128±16", "x")
        == (128, 16.0)
    )
    assert (
        parse_warmup("10") == (10, 0.0) and parse_warmup("5s") == (0, 5.0) and parse_warmup(None) == (0, 0.0)
    )
    assert parse_slos(["ttft=500", "tpot_ms:50", "e2e=1.5"]) == {"ttft": 500e6, "tpot": 50e6, "e2e": 1.5e6}
    assert parse_params(["temperature=0.7", 'stop_words=["end"]', "note=plain text"]) == {
        "temperature": 0.7,
        "stop_words": ["end"],
        "note": "plain text",
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_seconds("soon", "--duration"), "--duration expects a duration"),
        (lambda: parse_length("a lot", "--input-tokens"), "--input-tokens expects MEAN or MEAN,STDDEV"),
        (lambda: parse_slos(["latency=5"]), "--slo expects METRIC=MS"),
        (lambda: parse_slos(["ttft=fast"]), "--slo ttft needs a number of milliseconds"),
        (lambda: parse_params(["novalue"]), "--param expects NAME=VALUE"),
    ],
)
def test_bad_values_are_usage_errors(call: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call()  # type: ignore[operator]


def test_defaults_are_the_tutorial_burst() -> None:
    s = spec()
    assert s.shape == Burst(20) and s.stop.requests == 20 and s.stop.seconds is None
    assert isinstance(s.workload, FixedPrompt) and s.workload.description.startswith(
        "fixed prompt 'What is machine"
    )
    assert next(s.workload.prompts()).max_tokens == 20
    assert s.force_output_length == "auto" and not s.workload_sets_lengths
    assert s.kernel_stamps and not spec("--read-stamps").kernel_stamps


def test_shapes_and_stop_conditions() -> None:
    assert spec("--concurrency", "8").shape == Concurrency(8)
    assert spec("--concurrency", "8").stop.requests == 100
    open_loop = spec("--rate", "5", "--burstiness", "0.5", "--max-concurrency", "3", "--duration", "1m")
    assert open_loop.shape == Rate(5.0, "gamma", 0.5, 3)
    assert (open_loop.stop.requests, open_loop.stop.seconds) == (None, 60.0)
    repeated = spec("--burst", "4", "--every", "2s", "--requests", "12", "--warmup", "4")
    assert repeated.shape == Burst(4, 2.0) and repeated.warmup.requests == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--burst", "4", "--every", "2"), "--every needs --requests or --duration"),
        (("--concurrency", "4", "--every", "2"), "--every repeats a burst"),
        (("--concurrency", "0"), "--concurrency must be positive"),
        (("--burst", "2", "--max-concurrency", "2"), "apply to an open loop"),
        (("--ramp-up", "5"), "--ramp-up applies to --concurrency and --rate"),
        (("--warmup", "20"), "add --every T"),
        (("--input-tokens", "32"), "need both --input-tokens and --output-tokens"),
        (("--input-tokens", "32", "--output-tokens", "8"), "synthetic prompts need a tokenizer"),
        (("--prompt", "hi", "--input-tokens", "3", "--output-tokens", "3"), "choose one workload"),
        (("--dataset", "/nonexistent/prompts.jsonl"), "no such file"),
    ],
)
def test_contradictions_are_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        spec(*argv)


def test_a_mistake_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--url", "http://127.0.0.1:9", "--slo", "speed=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("trtclient: error: --slo expects METRIC=MS")


def test_an_unreachable_server_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    assert main(["bench", "--url", "http://127.0.0.1:9", "--no-progress", "--no-server-metrics"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read model 'ensemble' from http://127.0.0.1:9" in err[0]


def test_long_runs_keep_bounded_memory_unless_exact_summaries_or_a_per_request_output_asks(
    tmp_path: Path,
) -> None:
    long = ("--concurrency", "4", "--duration", "10m")
    assert spec(*long).bounded_memory
    assert spec("--concurrency", "4", "--requests", "100000").bounded_memory
    assert not spec("--concurrency", "4", "--duration", "9m").bounded_memory
    # a request count that ends the run first keeps it short
    assert not spec(*long, "--requests", "500").bounded_memory
    assert not spec(*long, "--exact-summaries").bounded_memory
    assert not spec(*long, "--csv", str(tmp_path / "r.csv")).bounded_memory
    with pytest.raises(SystemExit):
        args("--bounded-memory", "--exact-summaries")


def test_bounded_memory_reaches_the_spec_and_refuses_outputs_that_need_every_record(tmp_path: Path) -> None:
    assert spec("--bounded-memory").bounded_memory and not spec().bounded_memory
    check_outputs(args("--bounded-memory", "--records", str(tmp_path / "r.jsonl")))
    for flag, value in (("--csv", "r.csv"), ("--plots", "plots"), ("--html", "r.html")):
        with pytest.raises(UsageError, match=f"{flag} needs every request's detail in memory"):
            check_outputs(args("--bounded-memory", flag, str(tmp_path / value)))
