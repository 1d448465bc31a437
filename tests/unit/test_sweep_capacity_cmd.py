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
