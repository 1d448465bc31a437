"""Trace replay: requests at a trace's recorded arrival times, with its recorded lengths, open loop.

The trace is JSONL, one request per line, as ``trtclient bench --trace`` reads it (Mooncake's format:
``timestamp`` in milliseconds, ``input_length``, ``output_length`` and ``hash_ids``, the ids of the
prompt's 512-token blocks, equal ids meaning equal text; see docs/workloads.md). The arrival times are
planned once, on the master (or the standalone runner), and each arrival is dealt to a worker with its
line, in proportion to the workers' users, so the whole trace is sent once however many workers share
it; every process builds the trace's prompts at the start of the test, so the file must be readable at
the same path on every worker. A request's record carries its trace time as ``intended_ns``: the send's
lag behind it is ``schedule_lag``, and ``ttft_sched`` is TTFT from it. The test ends when the trace's
last request has ended (or at ``-t``)::

    locust -f locustfiles/replay.py --headless --trace mooncake.jsonl --trace-speed 2    # embedded Triton
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patching)

# isort: split

import argparse
from typing import Any

from locust import events
from trtlocust import OPEN_LOOP_USERS, TritonUser, add_trace_arguments, trace_entries

from trtclient.loadtest.schedule import Replay
from trtclient.loadtest.trace import trace_shape
from trtclient.loadtest.workload import WorkloadError


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    add_trace_arguments(parser)


class ReplayUser(TritonUser):
    """Sends the trace's requests at their times; ``-u`` (default 64) caps the requests in flight."""

    default_users = OPEN_LOOP_USERS

    @classmethod
    def load_shape(cls, options: argparse.Namespace) -> Replay:
        if not options.trace:
            raise WorkloadError("replay.py needs --trace FILE (a JSONL trace)")
        return trace_shape(trace_entries(options.trace), float(options.trace_speed))

    @classmethod
    def planned_requests(cls, options: argparse.Namespace) -> int:
        return len(trace_entries(options.trace))
