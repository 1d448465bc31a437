"""The tutorial's parallel burst as a Locust scenario: streaming requests fired in synchronised bursts.

TensorRT-LLM's Triton guide (tensorrtllm_backend ``docs/llama.md``, "Run several requests at the same
time") sends twenty identical requests at once::

    printf '%s\\n' {1..20} | xargs -I % -P 20 \\
        curl -X POST localhost:8000/v2/models/ensemble/generate -d @tmp.txt

with ``{"text_input": "What is machine learning?", "max_tokens": 20, "bad_words": "", "stop_words": "",
"pad_id": 2, "end_id": 2}``. This scenario sends the same request to ``generate_stream``, ``--burst-size``
at a time, and measures every token. Defaults are the tutorial's: one burst of 20, then the test ends::

    locust -f locustfiles/burst.py --headless                  # starts the embedded Triton
    locust -f locustfiles/burst.py --headless --host http://127.0.0.1:8000 \\
        --burst-size 32 --burst-interval 5 --bursts 0 -t 2m     # a burst every 5 s until -t

Users default to the burst size (each request of a burst needs a free user to start on time).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patching)

# isort: split

import argparse
from typing import Any

from locust import events
from trtlocust import TritonUser, non_negative_float, positive_int

from trtclient.loadtest.schedule import Burst

TUTORIAL_BURST = 20


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    parser.add_argument(
        "--burst-size",
        type=positive_int,
        default=TUTORIAL_BURST,
        help=f"requests fired at once (default: {TUTORIAL_BURST}, the tutorial's)",
    )
    parser.add_argument(
        "--burst-interval",
        type=non_negative_float,
        default=0.0,
        help="seconds from one burst's start to the next (default: 0, a single burst)",
    )
    parser.add_argument(
        "--bursts",
        type=int,
        default=1,
        help="number of bursts, 0 = until -t ends the test (default: 1)",
    )


class BurstUser(TritonUser):
    """Sends the requests of each burst; ``-u`` users can have ``-u`` requests in flight."""

    @classmethod
    def load_shape(cls, options: argparse.Namespace) -> Burst:
        every = options.burst_interval or None
        return Burst(size=options.burst_size, every_s=every)

    @classmethod
    def planned_requests(cls, options: argparse.Namespace) -> int | None:
        return options.burst_size * options.bursts if options.bursts > 0 else None

    @classmethod
    def check_options(cls, options: argparse.Namespace) -> str | None:
        if options.bursts < 0:
            return f"--bursts must be 0 (until -t) or more, got {options.bursts}"
        if options.bursts != 1 and not options.burst_interval:
            return "more than one burst needs --burst-interval SECONDS (the time between burst starts)"
        return None

    @classmethod
    def users_for(cls, options: argparse.Namespace) -> int:
        return int(options.burst_size)
