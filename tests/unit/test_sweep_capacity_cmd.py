"""``trtclient sweep`` and ``capacity`` command lines: the bench's flags reused, mistakes in one line.

Nothing here needs a server: mistakes are refused before any load, and an unreachable target (port 9
on loopback, where nothing listens) is refused at the first level or step.
"""

from __future__ import annotations

import pytest

from trtclient import exit_codes
from trtclient.cli import build_parser, main

URL = ["--url", "http://127.0.0.1:9", "--no-progress", "--no-server-metrics"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("trtclient: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "--concurrency", "", "--requests", "4"], "give at least one level"),
        (["sweep", "--concurrency", "8,4", "--requests", "4"], "levels must increase, but 4 follows 8"),
        (["sweep", "--rate", "4:1:2", "--requests", "4"], "decreases"),
        (["sweep", "--concurrency", "1,2"], "a sweep needs --requests N or --duration T per level"),
        (["capacity", "--slo", "ttfb:p99=500"], "unknown metric 'ttfb'; choose one of ttft,"),
        (["capacity", "--slo", "ttft:p42=500"], "unknown statistic 'p42'; choose one of p50,"),
        (["capacity", "--slo", "ttft<500"], "--slo expects METRIC:STAT=MS"),
        (["capacity", "--slo", "ttft:p99=500", "--slo", "ttft:p99=400"], "--slo given twice"),
        (["capacity", "--slo", "ttft:p99=500", "--growth", "1"], "--growth must be above 1"),
        (["capacity", "--slo", "ttft:p99=500", "--max-failed", "lots"], "--max-failed expects a share"),
        (["capacity", "--slo", "ttft:p99=500", "--time-budget", "soon"], "--time-budget expects a duration"),
        (["capacity", "--slo", "ttft:p99=500", "--max-tokens", "0"], "--max-tokens must be positive"),
    ],
)
def test_mistakes_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([argv[0], *URL, *argv[1:]]) == 2
    assert message in one_error_line(capsys)


def test_the_every_flag_is_not_offered(capsys: pytest.CaptureFixture[str]) -> None:
    # --every belongs to bursts: the sweep parser does not have it at all.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--concurrency", "1", "--every", "1"])
    assert "unrecognized arguments: --every" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sweep", "--concurrency", "1,2", "--requests", "2"],
            "the first level could not run: cannot read model",
        ),
        (
            ["capacity", "--slo", "ttft:p99=500", "--requests", "2"],
            "the first step could not run: cannot read",
        ),
    ],
)
def test_an_unreachable_target_is_refused_before_the_first_level(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([argv[0], *URL, *argv[1:]]) == exit_codes.ERROR  # the run could not be made
    assert message in one_error_line(capsys)


def test_bench_flags_keep_their_meaning_and_defaults() -> None:
    sweep = build_parser().parse_args(
        ["sweep", "--concurrency", "1,2", "--warmup", "5s", "--max-tokens", "9"]
    )
    bench = build_parser().parse_args(["bench", "--warmup", "5s", "--max-tokens", "9"])
    for name in ("warmup", "max_tokens", "arrival", "model", "profile", "max_batch_size", "seed", "force"):
        assert getattr(sweep, name) == getattr(bench, name)
    capacity = build_parser().parse_args(["capacity", "--slo", "ttft:p99=1", "--arrival", "constant"])
    assert capacity.arrival == "constant" and capacity.capacity_slo == ["ttft:p99=1"]


def _tokenizer() -> list[str]:
    from trtclient.server.tokenizer import default_tokenizer_dir

    return ["--tokenizer", str(default_tokenizer_dir())]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sweep", "--concurrency", "1,2", "--trace", "t.jsonl", "--requests", "4"],
            "--trace replays the trace's own arrival times, so sweep has no load level to vary: run "
            "trtclient bench --trace FILE",
        ),
        (
            ["capacity", "--slo", "ttft:p99=500", "--trace", "t.jsonl"],
            "so capacity has no load level to vary",
        ),
        (
            ["sweep", "--rate", "1,2", "--turns", "2", "--input-tokens", "8", "--output-tokens", "2",
             "--requests", "4"],
            "sweep the number of users instead, with --concurrency LIST --turns 2",
        ),
        (
            ["capacity", "--slo", "ttft:p99=500", "--turns", "3", "--input-tokens", "8",
             "--output-tokens", "2"],
            "with trtclient sweep --concurrency LIST --turns 3",
        ),
        (
            ["sweep", "--concurrency", "1,2", "--shared-prefix", "3", "--input-tokens", "8",
             "--output-tokens", "2", "--requests", "4"],
            "--shared-prefix takes N:P",
        ),
        (
            ["capacity", "--slo", "ttft:p99=500", "--lora", "chat:x"],
            "--lora: 'chat:x' is not NAME_OR_ID:WEIGHT",
        ),
    ],
)  # fmt: skip
def test_workloads_a_level_cannot_vary_are_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([argv[0], *URL, *_tokenizer(), *argv[1:]]) == 2
    assert message in one_error_line(capsys)


def test_each_level_gets_the_workload_flags_as_bench_does() -> None:
    from trtclient.bench.session import BenchSpec
    from trtclient.cli.bench_reuse import build_spec, level_args
    from trtclient.loadtest.lora import LoraMix
    from trtclient.loadtest.schedule import Concurrency, Rate
    from trtclient.loadtest.sessions import SyntheticSessions
    from trtclient.loadtest.shared_prefix import SharedPrefixPrompts

    def spec(argv: list[str], **level: object) -> BenchSpec:
        args = build_parser().parse_args([argv[0], *URL, *_tokenizer(), *argv[1:]])
        return build_spec(level_args(args, **level), default_tokenizer=None)

    lengths = ["--input-tokens", "8", "--output-tokens", "2", "--requests", "4"]
    shared = spec(["sweep", "--concurrency", "1,2", "--shared-prefix", "2:32", *lengths], concurrency=2)
    assert isinstance(shared.workload, SharedPrefixPrompts) and len(shared.workload.prefixes) == 2
    assert shared.shape == Concurrency(2) and shared.workload_sets_lengths
    chats = spec(
        ["sweep", "--concurrency", "1,2", "--turns", "3", "--think-time", "1", *lengths], concurrency=1
    )
    assert isinstance(chats.workload, SyntheticSessions) and chats.workload.think_time_s == 1.0
    mixed = spec(
        ["capacity", "--slo", "ttft:p99=500", "--lora", "5:1,6:3", "--shared-prefix", "2:32", *lengths],
        rate=4.0,
        slo=[],
    )
    assert isinstance(mixed.workload, LoraMix) and isinstance(mixed.shape, Rate) and mixed.shape.rate == 4.0
