"""What the Locust scenarios share: the Triton user, its statistics, the arrival schedule, the server.

A scenario file imports locust first, then subclasses :class:`TritonUser` and says when requests start
(:meth:`TritonUser.load_shape`): a burst, an open-loop rate, a ramp, or nothing (a closed loop: each
user sends its next request when the previous one ends). Everything else lives in this package's
private modules (Locust's ``-f DIR`` skips ``_*.py``, so only the scenarios load as locustfiles):

* ``_options``: the command line; ``_user``: the user; ``_requests``: one request, written to its record
  by ``trtclient.loadtest.recorder`` exactly as ``trtclient bench`` writes its records, over the socket
  transport (``trtclient.transports.socket_stream``), with the same request-options policy
  (``trtclient.loadtest.request_options``); the bookkeeping after a request runs in one background
  greenlet that lets every ready read go first, so it never delays another user's stamps.
* ``_stats``/``_tables``: token statistics. One Locust request row per request (send to end of stream;
  output tokens as its size; failures by error kind), plus rows ``TTFT``, ``ITL``, ``TPOT`` and ``E2E``
  logged straight into Locust's stats entries. Finer histograms and token throughput go from workers to
  the master with Locust's periodic reports and are added up there; at the end they are written next to
  ``--csv``, into the ``--html`` report and to the console (``_outputs``), and the web UI shows them in
  two extra tabs and a live chart of TTFT p50/p95 and output tokens/s (``_timeline``, ``_chart``)
  while the test runs.
* ``_arrivals``: bursts, rates and ramps are planned once, on the master or the standalone runner, with
  ``trtclient.loadtest.schedule.arrival_offsets``, and dealt ahead of time to the workers in proportion
  to their users. Users are the ceiling on requests in flight: an arrival that finds every user busy
  waits, and the wait shows as schedule lag and in ``ttft_sched``.
* ``_workloads``: the prompts (``--shared-prefix``, ``--turns`` conversations, ``--lora`` mixes, a
  ``--trace``'s lines, from ``trtclient.loadtest``) and the checks of those options; ``_groups``: TTFT and
  E2E by KV-cache hit or miss, turn and adapter, merged on the master like the token statistics.
* ``_process``: what one process keeps; ``_lifecycle``: the event hooks that wire it all together,
  including the embedded Triton the master starts when there is no ``--host``.

The names below load on first use (importing the hooks with them), so that ``trtlocust._stats`` and the
other locust-free modules can be imported without locust.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trtlocust._options import (
        OPEN_LOOP_USERS,
        add_rate_arguments,
        add_trace_arguments,
        non_negative_float,
        positive_float,
        positive_int,
        rate_shape,
    )
    from trtlocust._user import TritonUser
    from trtlocust._workloads import trace_entries

__all__ = [
    "OPEN_LOOP_USERS",
    "TritonUser",
    "add_rate_arguments",
    "add_trace_arguments",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "rate_shape",
    "trace_entries",
]

_HOMES = {name: "trtlocust._options" for name in __all__} | {
    "TritonUser": "trtlocust._user",
    "trace_entries": "trtlocust._workloads",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trtlocust' has no attribute {name!r}")
    importlib.import_module("trtlocust._lifecycle")  # registers the event hooks
    return getattr(importlib.import_module(home), name)
