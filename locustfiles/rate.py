"""A steady open-loop rate: ``--rate`` requests per second for the whole test, across all users and workers.

Arrivals are planned once (on the master, or the standalone runner) with constant, Poisson or gamma
gaps, and handed to the workers in proportion to their users, so the total rate is ``--rate`` however
many workers run. Requests start at their planned time whether or not earlier ones have finished; ``-u``
users are the ceiling on requests in flight (an arrival that finds every user busy waits, and the wait
shows as schedule lag and in ``ttft_sched``)::

    locust -f locustfiles/rate.py --headless --rate 5 -t 60s              # embedded Triton
    locust -f locustfiles/rate.py --headless --host http://127.0.0.1:8000 \\
        --rate 50 --arrival constant -u 256 -t 5m --processes 4
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patching)

# isort: split

import argparse
from typing import Any

from locust import events
from trtlocust import OPEN_LOOP_USERS, TritonUser, add_rate_arguments, rate_shape

from trtclient.loadtest.schedule import Rate


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    add_rate_arguments(parser)


class RateUser(TritonUser):
    """Sends the planned arrivals; ``-u`` (default 64) caps the requests in flight."""

    default_users = OPEN_LOOP_USERS

    @classmethod
    def load_shape(cls, options: argparse.Namespace) -> Rate:
        return rate_shape(options)
