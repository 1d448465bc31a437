"""Waiting for an arrival's time to the microsecond, under gevent, at little CPU cost.

gevent's timers wake late: libev's epoll backend waits in whole milliseconds, rounded up, and at least
one, so ``gevent.sleep(x)`` returns about 0.2-1 ms after its time on an idle machine and more on a busy
one. A user therefore waits in three steps: :func:`sleep_until_near` sleeps until :data:`EARLY_NS` before
its arrival (the user then gets its connection ready); :func:`nap_until_close` lets an OS thread sleep
until :data:`SPIN_NS` before it (the kernel's timers are precise to tens of microseconds, and a sleeping
thread costs no CPU); :func:`yield_until` yields to the other greenlets in a loop until the time. Other
users' reads and sends go on all along, and the send follows the time by one turn of the loop,
microseconds. The loops together take at most :data:`SPIN_SHARE` of the process's time
(:class:`SpinBudget`); at arrival rates beyond that, sends fall back to gevent's timer. Imports gevent
but not locust (tests load it without monkey-patching).
"""

from __future__ import annotations

import os

import gevent
import gevent.threadpool
from gevent.monkey import get_original

from trtclient.timing import now_ns

__all__ = [
    "EARLY_NS",
    "SPIN_NS",
    "SPIN_SHARE",
    "SpinBudget",
    "nap_until_close",
    "sleep_until_near",
    "yield_until",
]

#: How long before an arrival its user stops sleeping on gevent's timer. gevent's sleeps come back
#: within it nearly always, even on a busy machine.
EARLY_NS = 2_000_000
#: How long before an arrival the OS thread's nap ends and the user yields in a loop until the time.
SPIN_NS = 500_000
#: Threads for the naps of one process: more users napping at once wait their turn (their nap is then
#: shorter or none; the loop takes over).
NAP_THREADS = 16

_thread_sleep = get_original("time", "sleep")
_pools: dict[int, gevent.threadpool.ThreadPool] = {}


def sleep_until_near(due_ns: int) -> None:
    """Sleep until ``EARLY_NS`` before ``due_ns`` (a ``now_ns()`` reading); at once if that is past.
    Never returns earlier than that (a timer that fires early is slept on again)."""
    while (left := due_ns - EARLY_NS - now_ns()) > 0:
        gevent.sleep(left / 1e9)


def nap_until_close(due_ns: int) -> None:
    """Wait until ``SPIN_NS`` before ``due_ns`` while an OS thread sleeps (the other greenlets run); at
    once if that is past."""
    if due_ns - SPIN_NS - now_ns() > 0:
        _pool().apply(_nap, (due_ns - SPIN_NS,))


#: The most of a process's time the yield loops may take together: at high arrival rates the loops
#: would otherwise eat the CPU that reading the streams needs. Past it, a user sleeps on gevent's
#: timer instead (late by up to a millisecond or so).
SPIN_SHARE = 0.25
#: The most spin time saved up while arrivals are sparse.
SPIN_CREDIT_CAP_NS = 20_000_000


class SpinBudget:
    """Spin time earned at :data:`SPIN_SHARE` of the time passing, spent by :func:`yield_until`."""

    def __init__(self, share: float = SPIN_SHARE, cap_ns: int = SPIN_CREDIT_CAP_NS) -> None:
        self.share, self.cap_ns = share, cap_ns
        self.credit_ns = cap_ns
        self.at_ns = now_ns()

    def take(self, wanted_ns: int) -> bool:
        """Spend ``wanted_ns`` of spin time if it is there (True); else spend nothing (False)."""
        now = now_ns()
        self.credit_ns = min(self.cap_ns, self.credit_ns + int((now - self.at_ns) * self.share))
        self.at_ns = now
        if wanted_ns > self.credit_ns:
            return False
        self.credit_ns -= wanted_ns
        return True


_budget = SpinBudget()


def yield_until(due_ns: int, budget: SpinBudget | None = None) -> None:
    """Let every other greenlet run, again and again, until ``due_ns`` (a ``now_ns()`` reading); at once
    if that is past. When the process's spin budget is spent, sleep on gevent's timer instead."""
    left = due_ns - now_ns()
    if left <= 0:
        return
    if not (budget or _budget).take(left):
        while (left := due_ns - now_ns()) > 0:
            gevent.sleep(left / 1e9)
        return
    while now_ns() < due_ns:
        gevent.sleep(0)


def _nap(until_ns: int) -> None:
    left = until_ns - now_ns()
    if left > 0:
        _thread_sleep(left / 1e9)


def _pool() -> gevent.threadpool.ThreadPool:
    """This process's nap threads (a forked worker makes its own)."""
    pool = _pools.get(os.getpid())
    if pool is None:
        pool = _pools[os.getpid()] = gevent.threadpool.ThreadPool(NAP_THREADS)
    return pool
