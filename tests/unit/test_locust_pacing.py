"""Waiting for an arrival's time under gevent (``locustfiles/trtlocust/_pacing.py``, no locust import):
never early, and the other greenlets keep running while a user waits, on gevent's timer, while an OS
thread naps, and in the final loop."""

from __future__ import annotations

import gevent
from trtlocust._pacing import EARLY_NS, SPIN_NS, SpinBudget, nap_until_close, sleep_until_near, yield_until

from trtclient.timing import now_ns


def _ticker(runs: list[int]) -> gevent.Greenlet[[], None]:
    def tick() -> None:
        while True:
            runs.append(now_ns())
            gevent.sleep(0)

    return gevent.spawn(tick)


def test_yield_until_never_returns_before_the_time_and_lets_the_others_run() -> None:
    runs: list[int] = []
    other = _ticker(runs)
    try:
        due = now_ns() + 3_000_000
        yield_until(due)
        assert now_ns() >= due
        assert runs, "another greenlet ran while this one waited"
    finally:
        other.kill()


def test_sleep_until_near_wakes_no_earlier_than_the_lead_before_the_time() -> None:
    for ahead_ns in (EARLY_NS + 1_000_000, EARLY_NS + 5_000_000, 20_000_000):
        due = now_ns() + ahead_ns
        sleep_until_near(due)
        assert now_ns() >= due - EARLY_NS


def test_nap_until_close_ends_no_earlier_than_the_spin_before_the_time_and_lets_the_others_run() -> None:
    runs: list[int] = []
    other = _ticker(runs)
    try:
        due = now_ns() + 5_000_000
        nap_until_close(due)
        assert now_ns() >= due - SPIN_NS
        assert runs, "another greenlet ran while an OS thread napped"
    finally:
        other.kill()


def test_a_time_already_past_costs_no_switch() -> None:
    runs: list[int] = []
    other = _ticker(runs)
    try:
        past = now_ns() - 1
        sleep_until_near(past)
        nap_until_close(past)
        yield_until(past)
        sleep_until_near(now_ns() + EARLY_NS // 2)  # within the lead: no sleep
        nap_until_close(now_ns() + SPIN_NS // 2)  # within the spin: no nap
        assert runs == []
    finally:
        other.kill()


def test_the_spin_budget_spends_what_it_has_and_refuses_more() -> None:
    budget = SpinBudget(share=0.25, cap_ns=1_000_000)
    assert budget.take(800_000)
    # about 200 us left (plus a quarter of the microseconds since): 800 us more is refused, nothing spent
    assert not budget.take(800_000)
    assert budget.take(150_000)


def test_with_the_budget_spent_the_wait_sleeps_and_is_still_never_early() -> None:
    budget = SpinBudget(share=0.0, cap_ns=0)
    due = now_ns() + 2_000_000
    yield_until(due, budget)
    assert now_ns() >= due
