"""Waiting for an arrival's time to the microsecond, under gevent.

gevent's timers wake late: libev's epoll backend waits in whole milliseconds, rounded up, and at least
one, so ``gevent.sleep(x)`` returns about 0.2-1 ms after its time on an idle machine and more on a busy
one. A user therefore sleeps until :data:`EARLY_NS` before its arrival (:func:`sleep_until_near`), gets
everything ready, then yields to the other greenlets in a loop until the arrival's time
(:func:`yield_until`): other users' reads and sends go on meanwhile, and the send follows the time by
one turn of the loop, microseconds. The loop costs CPU for at most :data:`EARLY_NS` per request.
Imports gevent but not locust (tests load it without monkey-patching).
"""

from __future__ import annotations

import gevent

from trtclient.timing import now_ns

__all__ = ["EARLY_NS", "sleep_until_near", "yield_until"]

#: How long before an arrival its user stops sleeping and starts yielding until the time. gevent's
#: sleeps come back within it nearly always, even on a busy machine.
EARLY_NS = 2_000_000


def sleep_until_near(due_ns: int) -> None:
    """Sleep until ``EARLY_NS`` before ``due_ns`` (a ``now_ns()`` reading); at once if that is past.
    Never returns earlier than that (a timer that fires early is slept on again)."""
    while (left := due_ns - EARLY_NS - now_ns()) > 0:
        gevent.sleep(left / 1e9)


def yield_until(due_ns: int) -> None:
    """Let every other greenlet run, again and again, until ``due_ns`` (a ``now_ns()`` reading); at once
    if that is past."""
    while now_ns() < due_ns:
        gevent.sleep(0)
