"""A ramp: the open-loop rate climbs linearly from 0 to ``--rate`` over ``--ramp-up`` seconds, then holds.

The arrival times follow ``trtclient bench --rate R --ramp-up T`` exactly (the same schedule maths),
planned once and shared by all workers; ``-u`` users cap the requests in flight. Watch where TTFT and
the schedule lag start to grow as the rate rises::

    locust -f locustfiles/ramp.py --headless --rate 20 --ramp-up 60 -t 90s     # embedded Triton
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patching)

# isort: split

import argparse
from typing import Any

from locust import events
from trtlocust import OPEN_LOOP_USERS, TritonUser, add_rate_arguments, positive_float, rate_shape

from trtclient.loadtest.schedule import Rate

DEFAULT_RAMP_S = 30.0


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    add_rate_arguments(parser)
    parser.add_argument(
        "--ramp-up",
        type=positive_float,
        default=DEFAULT_RAMP_S,
        help=f"seconds for the rate to climb from 0 to --rate (default: {DEFAULT_RAMP_S:g})",
    )


class RampUser(TritonUser):
    """Sends the planned arrivals of the ramp; ``-u`` (default 64) caps the requests in flight."""

    default_users = OPEN_LOOP_USERS

    @classmethod
    def load_shape(cls, options: argparse.Namespace) -> Rate:
        return rate_shape(options)

    @classmethod
    def ramp_up_s(cls, options: argparse.Namespace) -> float:
        return float(options.ramp_up)
