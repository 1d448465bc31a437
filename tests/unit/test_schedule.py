"""Load shapes: arrival times, ramp-up, warm-up and stop conditions."""

from __future__ import annotations

import itertools
import statistics

import pytest

from trtclient.loadtest.schedule import (
    NS_PER_S,
    Burst,
    Concurrency,
    Phases,
    Rate,
    Stop,
    Warmup,
    arrival_offsets,
    worker_start_offsets,
)


def take(shape: Burst | Rate, n: int, **kwargs: float) -> list[int]:
    return list(itertools.islice(arrival_offsets(shape, **kwargs), n))  # type: ignore[arg-type]


def gaps_s(offsets: list[int]) -> list[float]:
    return [(b - a) / NS_PER_S for a, b in itertools.pairwise(offsets)]


def test_single_burst_sends_everything_at_zero_then_ends() -> None:
    assert list(arrival_offsets(Burst(4))) == [0, 0, 0, 0]


def test_repeated_burst_restarts_every_period() -> None:
    assert take(Burst(2, every_s=1.5), 6) == [0, 0, 1_500_000_000, 1_500_000_000, 3 * 10**9, 3 * 10**9]


def test_constant_rate_is_exact() -> None:
    assert take(Rate(4.0, "constant"), 5) == [0, 250_000_000, 500_000_000, 750_000_000, 10**9]


def test_poisson_is_seeded_and_has_the_requested_mean_and_spread() -> None:
    a = take(Rate(50.0, "poisson"), 20_000, seed=7)
    assert a == take(Rate(50.0, "poisson"), 20_000, seed=7)
    assert a != take(Rate(50.0, "poisson"), 20_000, seed=8)
    g = gaps_s(a)
    assert statistics.fmean(g) == pytest.approx(1 / 50, rel=0.03)
    # exponential gaps: standard deviation equals the mean
    assert statistics.pstdev(g) / statistics.fmean(g) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_burstiness_sets_the_spread_not_the_rate(burstiness: float) -> None:
    g = gaps_s(take(Rate(20.0, "gamma", burstiness=burstiness), 20_000, seed=3))
    assert statistics.fmean(g) == pytest.approx(1 / 20, rel=0.05)
    # gamma with shape k: coefficient of variation 1/sqrt(k)
    assert statistics.pstdev(g) / statistics.fmean(g) == pytest.approx(burstiness**-0.5, rel=0.08)


def test_linear_ramp_delivers_half_the_load_during_the_ramp_then_the_full_rate() -> None:
    offsets = take(Rate(10.0, "constant"), 200, ramp_up_s=10.0)
    during = [t for t in offsets if t < 10 * NS_PER_S]
    # integral of a linear ramp 0 -> 10/s over 10 s is 50 arrivals
    assert len(during) == 50
    # the gaps shrink during the ramp and settle at 1/rate after it
    early = gaps_s(offsets[:5])
    assert early == sorted(early, reverse=True)
    assert gaps_s(offsets[60:70]) == [pytest.approx(0.1)] * 9


def test_worker_start_offsets_spread_over_the_ramp() -> None:
    assert worker_start_offsets(Concurrency(4)) == [0, 0, 0, 0]
    assert worker_start_offsets(Concurrency(4), ramp_up_s=2.0) == [0, 500_000_000, 10**9, 1_500_000_000]


def test_phases_by_request_count() -> None:
    phases = Phases(Warmup(requests=2), Stop(requests=3))
    assert [phases.classify(i) for i in range(7)] == ["warmup"] * 2 + ["measure"] * 3 + ["stop"] * 2
    assert phases.measured == 3 and phases.measure_start_ns == 2


def test_phases_by_time_measure_from_the_first_measured_request() -> None:
    s = NS_PER_S
    phases = Phases(Warmup(seconds=1.0), Stop(seconds=2.0))
    got = [phases.classify(t) for t in (0, s // 2, s + 1, 2 * s, 3 * s, 3 * s + 2)]
    assert got == ["warmup", "warmup", "measure", "measure", "measure", "stop"]
    assert phases.measure_start_ns == s + 1


def test_stop_by_count_or_duration_whichever_first() -> None:
    phases = Phases(Warmup(), Stop(requests=100, seconds=1.0))
    assert [phases.classify(t) for t in (0, NS_PER_S - 1, NS_PER_S)] == ["measure", "measure", "stop"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Burst(0),
        lambda: Burst(1, every_s=0),
        lambda: Concurrency(0),
        lambda: Rate(0.0),
        lambda: Rate(float("inf")),
        lambda: Rate(1.0, burstiness=0),
        lambda: Rate(1.0, max_concurrency=0),
        lambda: Stop(),
        lambda: Stop(requests=0),
        lambda: Stop(seconds=-1),
    ],
)
def test_impossible_shapes_are_rejected(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
