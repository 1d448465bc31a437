"""The capacity search as a state machine, driven by deterministic fakes of a server.

A fake ``measure(rate)`` returns what a server with a known knee would: TTFT p99 under the limit below
the knee and over it above. No server can be made to flip its verdict on command, so the repeat logic
is tested with scripted sequences of figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from trtclient.bench.capacity import (
    CapacitySearch,
    SearchLimits,
    Slo,
    SloError,
    StepResult,
    nice_rate,
    pace_ratio,
    parse_slo,
    run_search,
)

TTFT = Slo("ttft", "p99", 500.0)


def knee_server(knee: float, seconds: float = 10.0) -> Callable[[float], StepResult]:
    """TTFT p99 grows with the rate and crosses 500 ms exactly at ``knee`` req/s."""

    def measure(rate: float) -> StepResult:
        return StepResult(rate, {"ttft:p99": 500.0 * (rate / knee) ** 3}, sent=100, failed=0, seconds=seconds)

    return measure


def test_grows_then_bisects_to_the_knee() -> None:
    search = CapacitySearch([TTFT], SearchLimits(start_rate=1, growth=2, resolution=0.05, margin=0.0))
    answer = run_search(search, knee_server(5.3))
    rates = [s.rate for s in answer.steps]
    assert rates[:4] == [1, 2, 4, 8]  # growth until the first break
    assert all(r < 8 for r in rates[4:])  # then only inside the bracket
    assert answer.max_rate is not None and answer.breaks is not None
    assert answer.max_rate <= 5.3 < answer.breaks.rate
    assert answer.gap is not None and answer.gap <= 0.05
    assert answer.stopped == "bracketed within 5%"
    assert answer.holds is not None and answer.holds.stable


def test_first_rate_breaking_shrinks_until_one_holds() -> None:
    search = CapacitySearch([TTFT], SearchLimits(start_rate=8, growth=2, resolution=0.1, margin=0.0))
    answer = run_search(search, knee_server(1.5))
    assert [s.rate for s in answer.steps][:4] == [8, 4, 2, 1]
    assert answer.max_rate is not None and answer.max_rate <= 1.5
    assert answer.breaks is not None and answer.breaks.rate > 1.5


def test_every_slo_must_hold() -> None:
    def measure(rate: float) -> StepResult:
        # TTFT is fine everywhere, TPOT breaks from 3 req/s.
        return StepResult(rate, {"ttft:p99": 10.0, "tpot:p99": 40.0 if rate < 3 else 60.0}, 50, 0, 5.0)

    tpot = Slo("tpot", "p99", 50.0)
    answer = run_search(CapacitySearch([TTFT, tpot], SearchLimits(margin=0.0)), measure)
    assert answer.max_rate is not None and 2 <= answer.max_rate < 3
    assert answer.breaks is not None
    assert answer.breaks.evidence.reasons == ("tpot p99 60 ms > 50 ms",)


def test_failures_above_the_threshold_break_the_slo() -> None:
    def measure(rate: float) -> StepResult:
        return StepResult(rate, {"ttft:p99": 100.0}, sent=100, failed=0 if rate < 4 else 5, seconds=1.0)

    answer = run_search(CapacitySearch([TTFT], SearchLimits(max_failed_fraction=0.02, margin=0.0)), measure)
    assert answer.max_rate is not None and answer.max_rate < 4
    assert answer.breaks is not None and "5 of 100 requests failed" in answer.breaks.evidence.reasons[0]


def test_an_undefined_figure_breaks() -> None:
    search = CapacitySearch([TTFT])
    step = search.judge(StepResult(2.0, {"ttft:p99": None}, sent=10, failed=10, seconds=1.0))
    assert not step.passed and any("undefined" in r for r in step.reasons)


def scripted(figures: dict[float, list[float]]) -> Callable[[float], StepResult]:
    """Each rate returns its figures in turn (the last one again when they run out)."""
    iters: dict[float, Iterator[float]] = {r: iter(v) for r, v in figures.items()}
    last: dict[float, float] = {}

    def measure(rate: float) -> StepResult:
        last[rate] = next(iters[rate], last.get(rate, 0.0))
        return StepResult(rate, {"ttft:p99": last[rate]}, sent=20, failed=0, seconds=1.0)

    return measure


def test_a_borderline_step_is_repeated_until_a_majority_agrees() -> None:
    # 2 req/s sits within 10% of the limit: 490 (holds), 520 (breaks), 480 (holds) -> holds, 2 of 3.
    measure = scripted({1: [100], 2: [490, 520, 480], 4: [900], 3: [700]})
    limits = SearchLimits(start_rate=1, growth=2, resolution=0.6, repeats=3, margin=0.1)
    answer = run_search(CapacitySearch([TTFT], limits), measure)
    assert [s.rate for s in answer.steps] == [1, 2, 2, 2, 4, 3.0]
    assert [s.attempt for s in answer.steps][1:4] == [1, 2, 3]
    assert answer.holds is not None and answer.holds.rate == 2
    assert (answer.holds.agreed, answer.holds.runs) == (2, 3)


def test_a_borderline_step_stops_repeating_once_two_agree() -> None:
    measure = scripted({1: [510, 505], 0.5: [100], 0.75: [200]})
    limits = SearchLimits(start_rate=1, growth=2, resolution=0.5, repeats=3, margin=0.1)
    answer = run_search(CapacitySearch([TTFT], limits), measure)
    assert [s.rate for s in answer.steps] == [1, 1, 0.5, 0.75]
    assert answer.breaks is not None and (answer.breaks.agreed, answer.breaks.runs) == (2, 2)
    assert answer.max_rate == 0.75


def test_max_steps_ends_the_search_with_the_bracket_so_far() -> None:
    answer = run_search(CapacitySearch([TTFT], SearchLimits(max_steps=5, margin=0.0)), knee_server(5.3))
    assert len(answer.steps) == 5 and answer.stopped == "reached --max-steps 5"
    assert answer.max_rate is not None and answer.breaks is not None
    assert answer.max_rate < 5.3 < answer.breaks.rate


def test_the_time_budget_counts_run_durations_and_never_starts_a_step_it_cannot_finish() -> None:
    limits = SearchLimits(time_budget_s=35.0, margin=0.0)
    answer = run_search(CapacitySearch([TTFT], limits), knee_server(100.0, seconds=10.0))
    assert len(answer.steps) == 3  # a fourth 10 s run would end at 40 s
    assert "time-budget" in answer.stopped
    assert answer.breaks is None and answer.max_rate == 4


def test_a_budget_ending_during_repeats_settles_on_the_safe_side() -> None:
    measure = scripted({1: [490, 520]})
    limits = SearchLimits(start_rate=1, max_steps=2, repeats=3, margin=0.1)
    answer = run_search(CapacitySearch([TTFT], limits), measure)
    assert answer.max_rate is None  # one holds, one breaks: a tie does not hold
    assert answer.breaks is not None and not answer.breaks.stable


def test_a_run_that_cannot_happen_stops_the_search_with_its_reason() -> None:
    def measure(rate: float) -> StepResult:
        if rate > 2:
            return StepResult(rate, {}, 0, 0, 0.0, error="connection refused")
        return StepResult(rate, {"ttft:p99": 100.0}, 10, 0, 1.0)

    answer = run_search(CapacitySearch([TTFT], SearchLimits(margin=0.0)), measure)
    assert answer.max_rate == 2 and "connection refused" in answer.stopped


def test_the_search_is_deterministic() -> None:
    def rates() -> list[float]:
        answer = run_search(CapacitySearch([TTFT], SearchLimits(resolution=0.02)), knee_server(7.7))
        return [s.rate for s in answer.steps]

    assert rates() == rates()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ttft:p99=500", Slo("ttft", "p99", 500.0)), ("TPOT:p50=40ms", Slo("tpot", "p50", 40.0))],
)
def test_slo_parsing(text: str, expected: Slo) -> None:
    assert parse_slo(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttf:p99=500", "unknown metric 'ttf'"),
        ("ttft:p98=500", "unknown statistic 'p98'"),
        ("ttft=500", "METRIC:STAT=MS"),
        ("ttft:p99=0", "must be positive"),
    ],
)
def test_bad_slos_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(SloError, match=message):
        parse_slo(text)


def test_the_same_slo_twice_is_refused() -> None:
    with pytest.raises(SloError, match="twice"):
        CapacitySearch([TTFT, Slo("ttft", "p99", 400.0)])


def test_nice_rates() -> None:
    assert [nice_rate(r) for r in (5.3333, 0.123456, 123.456, 1234.5)] == [5.33, 0.123, 123.0, 1230.0]


def test_a_step_whose_every_request_failed_stops_the_search() -> None:
    def measure(rate: float) -> StepResult:
        failed = 30 if rate >= 4 else 0
        return StepResult(rate, {"ttft:p99": None if failed else 100.0}, sent=30, failed=failed, seconds=1.0)

    answer = run_search(CapacitySearch([TTFT], SearchLimits(margin=0.0)), measure)
    assert [s.rate for s in answer.steps] == [1, 2, 4]
    assert answer.stopped == "every request at 4 req/s failed (30 of 30)"
    assert answer.max_rate == 2 and answer.breaks is not None and answer.breaks.rate == 4


def test_a_server_falling_behind_breaks_whatever_its_percentiles() -> None:
    # Above 5 req/s the queue grows: completions lag arrivals, though a short step's TTFT still looks fine.
    def measure(rate: float) -> StepResult:
        pace = 1.0 if rate <= 5 else 5 / rate
        return StepResult(rate, {"ttft:p99": 100.0}, sent=40, failed=0, seconds=5.0, pace=pace)

    answer = run_search(CapacitySearch([TTFT], SearchLimits(margin=0.0, max_shortfall=0.1)), measure)
    assert answer.max_rate is not None and 5 <= answer.max_rate <= 5.5
    assert answer.breaks is not None and "fell behind" in answer.breaks.evidence.reasons[0]


def test_pace_is_arrival_span_over_completion_span() -> None:
    second = 1_000_000_000
    arrivals = [0, second, 2 * second, 3 * second]
    assert pace_ratio(arrivals, [a + 300_000_000 for a in arrivals]) == 1.0  # kept up
    assert pace_ratio(arrivals, [0, 2 * second, 4 * second, 6 * second]) == 0.5  # half as fast
    assert pace_ratio(arrivals[:2], arrivals[:2]) is None  # too few to say
