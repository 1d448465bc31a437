"""What the Locust scenarios share: the Triton user, its statistics, the arrival schedule, the server.

A scenario file subclasses :class:`TritonUser` and says when requests start (:meth:`TritonUser.load_shape`):
a burst, an open-loop rate, a ramp, or nothing (a closed loop: each user sends its next request when
the previous one ends). Everything else lives here, once:

* Requests are ``trtclient``'s: :mod:`trtclient.protocol` builds the body from the model's inputs
  (read with :class:`~trtclient.sync_client.TritonClient`), maps error statuses to exceptions and
  parses each event (:class:`~trtclient.protocol.StreamState`); :class:`~trtclient.sse.SSEDecoder`
  splits the stream; the bench runner's rules turn the chunks into a
  :class:`~trtclient.loadtest.records.RequestRecord`; :func:`trtclient.errors.error_kind` names failures and
  :mod:`trtclient.loadtest.metrics` defines TTFT, ITL, TPOT and E2E. Only the socket work is separate: each
  user holds one keep-alive ``socket_stream.Connection``, which stamps every event the
  moment its bytes arrive. The bookkeeping after a request (:class:`Accountant`) runs in one
  background greenlet that lets every ready read go first, so it never delays another user's stamps.
* Statistics: one Locust request row per request (send to end of stream; output tokens as its size;
  failures by error kind), plus rows ``TTFT``, ``ITL`` (one sample per gap between events), ``TPOT``
  and ``E2E``. The token rows are logged straight into Locust's stats entries, so its "Aggregated"
  row, requests/s and charts still count requests only. Finer histograms and token throughput
  (:mod:`token_stats`) go from workers to the master with Locust's periodic reports and are added up
  there; at the end they are written next to ``--csv`` (``PREFIX_tokens.csv``,
  ``PREFIX_throughput.csv``), into the ``--html`` report and to the console, and while the test runs
  the web UI shows them in two extra tabs.
* Arrivals (bursts, rates, ramps) are planned once, on the master or the standalone runner, with
  :func:`trtclient.loadtest.schedule.arrival_offsets`, and handed out ahead of time to the workers in
  proportion to their users; a user takes the next arrival and sends at its time. The total rate is
  the schedule's whatever the number of workers. Users are the ceiling on requests in flight: an
  arrival that finds every user busy waits, and the wait shows as schedule lag and in ``ttft_sched``.
* With no ``--host``, the master (or standalone runner) starts the embedded Triton once and stops it
  when Locust quits; workers receive its URL with the test.
"""

from __future__ import annotations

import locust  # first: gevent monkey-patches the standard library on import

# isort: split

import argparse
import atexit
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gevent
import gevent.event
import greenlet
import locust.stats
from gevent.queue import Queue
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, LocalRunner, MasterRunner, WorkerRunner
from token_stats import (
    LATENCY_HEADERS,
    SECTION_ID,
    THROUGHPUT_HEADERS,
    RunStats,
    add_to_html_report,
    csv_text,
    latency_table,
    summary_lines,
    throughput_table,
    totals_line,
    write_csv,
)

from trtclient import errors
from trtclient.inputs import build_body, encode_body
from trtclient.loadtest import metrics
from trtclient.loadtest.heap import frozen_heap
from trtclient.loadtest.recorder import RecordBuilder
from trtclient.loadtest.records import JsonlSink, RequestRecord
from trtclient.loadtest.request_options import RequestOptions, resolve_options
from trtclient.loadtest.schedule import Burst, Rate, arrival_offsets
from trtclient.loadtest.workload import FixedPrompt, Prompt
from trtclient.options import Timeout
from trtclient.streaming import StreamHead, StreamState, TextMode
from trtclient.sync_client import TritonClient
from trtclient.timing import from_epoch_ns, now_ns
from trtclient.transports.socket_stream import Connection
from trtclient.urls import model_path, redact_url

__all__ = [
    "OPEN_LOOP_USERS",
    "TritonUser",
    "add_rate_arguments",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "rate_shape",
]

log = logging.getLogger("trtclient.locust")
# httpx (used for the model's metadata) logs every request at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: The tutorial's request (tensorrtllm_backend docs/llama.md, "Run several requests at the same time":
#: ``{"text_input": "What is machine learning?", "max_tokens": 20, "bad_words": "", "stop_words": "",
#: "pad_id": 2, "end_id": 2}``).
TUTORIAL_PROMPT = "What is machine learning?"
TUTORIAL_MAX_TOKENS = 20
TUTORIAL_END_ID = 2
TUTORIAL_PAD_ID = 2
TUTORIAL_WORDS = {"bad_words": "", "stop_words": ""}

#: How far ahead of their time arrivals are handed to the users (and to the workers).
LEAD_NS = 200_000_000
#: How often the planner hands out the next arrivals.
TICK_S = 0.05
#: Master -> worker custom message carrying arrivals: ``{"due": [epoch_ns, ...]}``.
TICKETS_MESSAGE = "trtclient_arrivals"
#: What a user waiting for an arrival gets when the test is stopping.
NO_MORE_ARRIVALS = 0
#: Key of the token statistics in Locust's periodic worker reports.
REPORT_KEY = "trtclient"
#: Worker -> master custom message with a worker's last statistics, sent as its users stop.
FINAL_MESSAGE = "trtclient_final_report"
#: Longest error text in Locust's failures table (Locust groups failures by their text).
MAX_ERROR_TEXT = 160


# ---------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(_number(text, float))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    value = float(_number(text, float))
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _optional_id(text: str) -> int | None:
    if text.strip().lower() in ("", "none", "off"):
        return None
    return int(_number(text, int))


def _param(text: str) -> list[Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return [name.strip(), value]


def _header(text: str) -> tuple[str, str]:
    """argparse type: ``NAME:VALUE``; errors show the name only, never the value."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(
            f"expected NAME:VALUE, got a header named {name if sep else '(no :)'!r}"
        )
    if any(c in value for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"the value of header {name!r} contains a line break")
    return name, value


def headers_of(options: argparse.Namespace) -> dict[str, str]:
    """The ``--header`` options as a mapping."""
    return dict(getattr(options, "header", None) or [])


def verify_of(options: argparse.Namespace) -> bool | str:
    """TLS verification: a CA bundle from ``--cacert``, else the system's CAs."""
    return str(options.cacert) if getattr(options, "cacert", "") else True


def _number(text: str, kind: Callable[[str], float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    parser.add_argument("--model", default="ensemble", help="Triton model to load-test (default: ensemble)")
    parser.add_argument("--prompt", default=TUTORIAL_PROMPT, help=f"prompt (default: {TUTORIAL_PROMPT!r})")
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=TUTORIAL_MAX_TOKENS,
        help=f"max_tokens per request (default: {TUTORIAL_MAX_TOKENS})",
    )
    parser.add_argument(
        "--end-id",
        type=_optional_id,
        default=TUTORIAL_END_ID,
        help=f"end_id to send, 'none' to leave it out (default: {TUTORIAL_END_ID}, the tutorial's)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--pad-id",
        type=_optional_id,
        default=TUTORIAL_PAD_ID,
        help=f"pad_id to send, 'none' to leave it out (default: {TUTORIAL_PAD_ID}, the tutorial's)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--force-output-length",
        action="store_true",
        default=False,
        help="send min_tokens = max_tokens so every answer has exactly max_tokens tokens",
    )
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra model input, VALUE parsed as JSON when it can be (repeatable)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="HTTP header sent with every request, e.g. an API key (repeatable; values are never shown)",
        include_in_web_ui=False,  # not editable in the web UI's start form, and never displayed there
    )
    parser.add_argument(
        "--cacert",
        default="",
        metavar="FILE",
        help="CA bundle to verify an https server with (default: the system's CAs)",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=300.0,
        help="seconds without a byte from the server before a request fails (default: 300)",
    )
    parser.add_argument(
        "--read-stamps",
        action="store_true",
        default=False,
        help="stamp events when they are read, not with the kernel's arrival time (the default on Linux)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--server-profile",
        default="orin-int4",
        help="timing profile of the embedded Triton started when --host is not given (default: orin-int4)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )
    parser.add_argument(
        "--records",
        default="",
        metavar="FILE",
        help="append one JSONL record per request (workers write FILE.workerN)",
        include_in_web_ui=False,  # not editable in the web UI's start form
    )


DEFAULT_RATE = 5.0
#: Users (the ceiling on requests in flight) of the open-loop scenarios when -u is not given.
OPEN_LOOP_USERS = 64


def add_rate_arguments(parser: Any) -> None:
    """``--rate``, ``--arrival``, ``--burstiness``, ``--seed`` (shared with ramp.py)."""
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=DEFAULT_RATE,
        help=f"requests per second in total, all workers together (default: {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="gaps between arrivals (default: poisson)",
    )
    parser.add_argument(
        "--burstiness",
        type=positive_float,
        default=1.0,
        help="gamma shape with --arrival gamma: 1 Poisson, <1 burstier, >1 smoother (default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrival times (default: 0)")


def rate_shape(options: argparse.Namespace) -> Rate:
    """The open-loop shape from the command line."""
    return Rate(rate=options.rate, arrival=options.arrival, burstiness=options.burstiness)


# ---------------------------------------------------------------- the user


class TritonUser(User):
    """A user streaming ``generate_stream`` requests to the Triton at ``--host``.

    Subclasses set the schedule with :meth:`load_shape` (None: closed loop) and may limit the number
    of requests with :meth:`planned_requests`.
    """

    abstract = True
    wait_time = constant(0)

    #: Users when ``-u`` is not given.
    default_users: ClassVar[int] = 1

    @classmethod
    def load_shape(cls, options: argparse.Namespace) -> Burst | Rate | None:
        """When requests start; None for a closed loop."""
        return None

    @classmethod
    def ramp_up_s(cls, options: argparse.Namespace) -> float:
        """Seconds over which an open-loop rate climbs from 0 to its target."""
        return 0.0

    @classmethod
    def planned_requests(cls, options: argparse.Namespace) -> int | None:
        """How many requests the whole test sends (None: until ``-t`` or Ctrl-C)."""
        return None

    @classmethod
    def check_options(cls, options: argparse.Namespace) -> str | None:
        """A message when the scenario's options do not fit together."""
        return None

    @classmethod
    def users_for(cls, options: argparse.Namespace) -> int:
        """Users when ``-u`` is not given."""
        return cls.default_users

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.connection = Connection(
            self.environment.host or "",
            PROCESS.timeout(self.environment),
            headers=headers_of(options),
            verify=verify_of(options),
            kernel_stamps=not getattr(options, "read_stamps", False),
        )
        self.connection.connect()

    def on_stop(self) -> None:
        self.connection.close()

    @task
    def generate_stream(self) -> None:
        """Wait for the next arrival (or go at once in a closed loop), then stream one request."""
        state = PROCESS
        if state.is_stopping():
            return
        if state.closed_loop:
            intended = now_ns()
        else:
            due = state.tickets.get()
            if due == NO_MORE_ARRIVALS:
                return
            intended = from_epoch_ns(due)
            wait = intended - now_ns()
            if wait > 0:
                try:
                    gevent.sleep(wait / 1e9)
                except gevent.GreenletExit:
                    state.measured.unsent += 1  # the test ended before this arrival was due
                    raise
            if state.is_stopping():  # it may have begun while this user waited
                state.measured.unsent += 1
                return
        send_one(self.environment, self.connection, state.next_index(), intended)


# ---------------------------------------------------------------- one request


class Session:
    """The process's request: read the model's inputs once per test, keep the encoded body."""

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        self.host = host
        self.model = str(options.model)
        self.label = self.model
        self.path = model_path(self.model) + "/generate_stream"
        self.options = options
        self.prompt: Prompt = next(FixedPrompt(options.prompt, options.max_tokens).prompts())
        self.request_options = RequestOptions()
        self.text_mode: TextMode = "delta"
        self._body: bytes | None = None
        self._lock = threading.Lock()

    def body(self) -> bytes:
        """The encoded request body; the first call reads the model's inputs and picks what it supports."""
        if self._body is None:
            with self._lock:
                if self._body is None:
                    self._body = self._build()
        return self._body

    def _build(self) -> bytes:
        options = self.options
        timeout = Timeout(connect=10.0, read=options.request_timeout)
        with TritonClient(
            self.host,
            model=self.model,
            timeout=timeout,
            max_retries=0,
            headers=headers_of(options),
            verify=verify_of(options),
        ) as client:
            inputs = client.model_inputs(self.model)
        # The same policy as trtclient bench. The tutorial's words, pad_id and (left at its default)
        # end_id go where the model has them; an --end-id or --param the model lacks is refused.
        end_id = options.end_id
        optional: dict[str, Any] = {**TUTORIAL_WORDS, "pad_id": options.pad_id}
        if end_id == TUTORIAL_END_ID:
            optional["end_id"], end_id = end_id, None
        self.request_options = resolve_options(
            inputs,
            model=self.model,
            url=self.host,
            force_output_length=bool(options.force_output_length),
            end_id=end_id,
            server_token_counts="auto",
            perf_metrics="auto",
            extra_inputs=dict(options.param or []),
            optional_inputs=optional,
        )
        self.text_mode = inputs.text_mode
        request = self.request_options.build(self.prompt)
        return encode_body(build_body(request, inputs, stream=True))


class RequestFailed(Exception):
    """How a failed request shows in Locust's failures table: its kind, then the message."""


def send_one(environment: Environment, connection: Connection, index: int, intended_ns: int) -> None:
    """Send one streamed request, account for it, and fire its Locust events."""
    session = PROCESS.session(environment)
    record = RequestRecord(
        index=index,
        intended_ns=intended_ns,
        prompt_id=session.prompt.id,
        requested_output_tokens=session.prompt.max_tokens,
    )
    live = RecordBuilder(record, session.prompt)  # the same writer as trtclient bench
    failure: BaseException | None = None
    try:
        live.dispatched()
        body = session.body()
        record.forced_output_tokens = session.request_options.force_output_length
        exchange(connection, session.path, body, session.text_mode, live)
    except Exception as exc:
        failure = exc
        live.failed(exc)  # no change if the exchange already recorded it
    finally:
        if not live.ended:  # stopped before the exchange began
            live.cancelled()
        PROCESS.accountant.submit(Finished(environment, session, live, failure))


def exchange(
    connection: Connection, path: str, body: bytes, text_mode: TextMode, live: RecordBuilder
) -> None:
    """One streamed request over the user's connection, written to its record by ``live`` exactly as
    ``trtclient bench`` writes its records; raises what the request failed with."""
    head = StreamHead()
    live.opened(head)
    try:
        connection.stream(path, body, head, StreamState(text_mode), live.on_chunk)
    except gevent.GreenletExit:
        live.cancelled()
        raise
    except Exception as exc:
        live.failed(exc)
        raise
    live.succeeded()


@dataclass(frozen=True)
class Finished:
    """A request that ended, waiting to be accounted for."""

    environment: Environment
    session: Session
    live: RecordBuilder
    failure: BaseException | None


class Accountant:
    """Accounts for finished requests in one background greenlet, one request at a time, yielding
    between them. Users go straight on to their next request, and the work (statistics, records file,
    Locust events) never holds up another user's read for longer than one request's share: each
    event is stamped when its user's greenlet runs, so a long stretch without yielding would make
    every event arriving meanwhile look late."""

    def __init__(self) -> None:
        self.queue: Queue[Finished] = Queue()
        self.greenlet: gevent.Greenlet[Any, Any] | None = None

    def submit(self, finished: Finished) -> None:
        """Queue one finished request."""
        self.queue.put(finished)
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)

    def flush(self) -> None:
        """Account for everything queued, now (at the end of a test, before anything is reported)."""
        while not self.queue.empty():
            account(self.queue.get_nowait())

    def _run(self) -> None:
        while True:
            account(self.queue.get())
            gevent.idle()  # let every read that is ready run (and stamp its events) first


def account(finished: Finished) -> None:
    """Count the tokens, add the request to the statistics and the records file, fire its Locust events."""
    record = finished.live.record
    finished.live.finish(None)
    PROCESS.account(finished.environment, record)
    if record.status != "cancelled":
        _fire(finished.environment, finished.session, record, finished.failure)


def _fire(
    environment: Environment, session: Session, record: RequestRecord, failure: BaseException | None
) -> None:
    start = record.sent_ns or record.dispatched_ns or record.intended_ns
    exception = None
    if failure is not None:
        exception = RequestFailed(f"{record.error_kind}: {str(failure)[:MAX_ERROR_TEXT]}")
    environment.events.request.fire(
        request_type="POST",
        name=session.path,
        response_time=((record.end_ns or start) - start) / 1e6,
        response_length=record.output_tokens or 0,
        exception=exception,
        context={},
    )
    if record.status != "ok":
        return
    stats = environment.stats
    label = session.label
    for name, metric in (("TTFT", metrics.ttft_ns), ("TPOT", metrics.tpot_ns), ("E2E", metrics.e2e_ns)):
        value = metric(record)
        if value is not None:
            stats.get(label, name).log(value / 1e6, 0)  # type: ignore[arg-type]  # ms as float, as Locust's own users log
    gaps = metrics.itl_ns(record)
    if gaps:
        entry = stats.get(label, "ITL")
        for gap in gaps:
            entry.log(gap / 1e6, 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- per-process state


class ProcessState:
    """Everything one Locust process keeps: statistics, arrivals, session, records file, server.

    Statistics by role: a standalone runner adds its requests to ``totals``; a worker adds them to
    ``pending``, which each report to the master empties into ``reported``; the master adds the
    workers' reports to ``totals``.
    """

    def __init__(self) -> None:
        self.role = "local"
        self.totals = RunStats()
        self.pending = RunStats()
        self.reported = RunStats()
        self.tickets: Queue[int] = Queue()
        self.closed_loop = True
        self.stopping = False
        self.accountant = Accountant()
        self.quitting = gevent.event.Event()
        self.quit_done = gevent.event.Event()
        self.planner: Planner | None = None
        self.server: Any = None
        self.label = ""
        self._session: Session | None = None
        self._sink: JsonlSink | None = None
        self._counter = 0
        self._heap = contextlib.ExitStack()

    @property
    def measured(self) -> RunStats:
        """The statistics this process adds its requests to."""
        return self.pending if self.role == "worker" else self.totals

    def timeout(self, environment: Environment) -> Timeout:
        """Connect and read timeouts of the requests."""
        options = environment.parsed_options
        return Timeout(connect=10.0, read=float(getattr(options, "request_timeout", 300.0)))

    def next_index(self) -> int:
        """The number of the next request this process sends (0, 1, ...; its records file's order)."""
        index = self._counter
        self._counter += 1
        return index

    def session(self, environment: Environment) -> Session:
        """This process's session, made at the start of a test (when the options are final)."""
        if self._session is None:
            self._session = Session(environment.host or "", options_of(environment))
        return self._session

    def account(self, environment: Environment, record: RequestRecord) -> None:
        """Add one finished request to the statistics and the records file."""
        self.measured.add_record(record)
        sink = self._records_sink(environment)
        if sink is not None:
            sink.write(record)

    def _records_sink(self, environment: Environment) -> JsonlSink | None:
        if self._sink is None:
            path_text = getattr(environment.parsed_options, "records", "")
            if not path_text:
                return None
            path = Path(path_text)
            runner = environment.runner
            if isinstance(runner, WorkerRunner):
                path = path.with_name(f"{path.name}.worker{runner.worker_index}")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = JsonlSink(path)
        return self._sink

    def start_test(self, environment: Environment) -> None:
        """A new test: empty statistics and arrivals, a new session prepared in the background;
        garbage collections kept short for its length (``trtclient.loadtest.heap``)."""
        self.stop_planner()
        self._heap.close()
        self._heap.enter_context(frozen_heap())
        self.totals = RunStats()
        self.pending = RunStats()
        self.reported = RunStats()
        self.tickets = Queue()
        self.stopping = False
        self._counter = 0
        self._session = None
        options = options_of(environment)
        self.label = str(options.model)
        user = scenario_user(environment)
        self.closed_loop = user is None or user.load_shape(options) is None
        if self.role != "master" and environment.host:
            gevent.spawn(self._prepare, environment)

    def _prepare(self, environment: Environment) -> None:
        """Read the model's inputs before the first arrival is due."""
        try:
            self.session(environment).body()
        except (errors.TritonError, ValueError) as exc:
            log.warning("cannot prepare requests to %s: %s", redact_url(environment.host or ""), exc)

    def is_stopping(self) -> bool:
        """True once the test has begun to stop: no request may start any more."""
        return self.stopping

    def begin_stop(self, users: int) -> None:
        """The test is stopping: no request starts any more; users waiting for an arrival return."""
        self.stopping = True
        if self.planner is not None:
            self.measured.unsent += len(self.planner.backlog)
        self.stop_planner()
        for _ in range(users):
            self.tickets.put(NO_MORE_ARRIVALS)

    def stop_test(self) -> None:
        """Account for the last requests; stop planning; count the arrivals no user picked up."""
        self.accountant.flush()
        left = 0
        while not self.tickets.empty():
            if self.tickets.get_nowait() != NO_MORE_ARRIVALS:
                left += 1
        if self.planner is not None:
            left += len(self.planner.backlog)
        self.stop_planner()
        self.measured.unsent += left
        self._heap.close()

    def stop_planner(self) -> None:
        """Stop handing out arrivals."""
        if self.planner is not None:
            self.planner.stop()
            self.planner = None

    def report(self) -> dict[str, Any]:
        """A worker's measurements since its last report (wire data), kept in ``reported`` too."""
        self.accountant.flush()
        part = self.pending.take()
        self.reported.merge(part)
        return part

    def close(self) -> None:
        """Account for what is left; close the records file."""
        self.accountant.flush()
        if self._sink is not None:
            self._sink.close()
            self._sink = None


PROCESS = ProcessState()


def options_of(environment: Environment) -> argparse.Namespace:
    """Locust's parsed command line (always there when Locust runs a locustfile)."""
    options = environment.parsed_options
    if not isinstance(options, argparse.Namespace):
        raise RuntimeError("these scenarios run under the locust command (no parsed options)")
    return options


def scenario_user(environment: Environment) -> type[TritonUser] | None:
    """The scenario's user class (the first TritonUser among the test's user classes)."""
    for user_class in environment.user_classes:
        if issubclass(user_class, TritonUser):
            return user_class
    return None


# ---------------------------------------------------------------- arrivals


class Planner:
    """Runs on the master or the standalone runner: plans arrivals and hands them out ahead of time."""

    def __init__(self, environment: Environment, user: type[TritonUser]) -> None:
        self.environment = environment
        options = options_of(environment)
        shape = user.load_shape(options)
        if shape is None:
            raise ValueError(f"{user.__name__} is a closed loop; it has no arrivals to plan")
        self.offsets: Iterator[int] = arrival_offsets(
            shape, ramp_up_s=user.ramp_up_s(options), seed=int(getattr(options, "seed", 0) or 0)
        )
        self.planned = user.planned_requests(options)
        self.issued = 0
        self.backlog: list[int] = []
        self.positions: dict[str, float] = {}
        self.greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        """Start handing out arrivals (the first is due the lead time from now)."""
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop planning."""
        if self.greenlet is not None and self.greenlet is not gevent.getcurrent():
            self.greenlet.kill(block=False)
        self.greenlet = None

    def _run(self) -> None:
        t0 = time.time_ns() + LEAD_NS
        following = next(self.offsets, None)
        while following is not None and not self._all_issued():
            horizon = time.time_ns() + LEAD_NS
            batch: list[int] = []
            while following is not None and t0 + following <= horizon and not self._all_issued():
                batch.append(t0 + following)
                self.issued += 1
                following = next(self.offsets, None)
            self._deliver(batch)
            gevent.sleep(TICK_S)
        while self.backlog:
            self._deliver([])
            gevent.sleep(TICK_S)
        log.info("all %d planned arrivals handed out; waiting for their requests to end", self.issued)
        while PROCESS.totals.sent + PROCESS.totals.unsent < self.issued:
            gevent.sleep(0.2)
        log.info("all %d planned requests ended, stopping the test", self.issued)
        gevent.spawn(_end_test, self.environment)

    def _all_issued(self) -> bool:
        return self.planned is not None and self.issued >= self.planned

    def _deliver(self, batch: list[int]) -> None:
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            for due in batch:
                PROCESS.tickets.put(due)
            PROCESS.totals.scheduled += len(batch)
            return
        tickets = self.backlog + batch
        weights = {
            node.id: float(node.user_count)
            for node in runner.clients.all
            if node.state in (STATE_RUNNING, STATE_SPAWNING) and node.user_count > 0
        }
        if not weights:
            self.backlog = tickets
            return
        self.backlog = []
        for worker, share in deal(tickets, weights, self.positions).items():
            runner.send_message(TICKETS_MESSAGE, {"due": share}, client_id=worker)


def deal(tickets: list[int], weights: dict[str, float], positions: dict[str, float]) -> dict[str, list[int]]:
    """Deal tickets to workers in proportion to their weights (smooth weighted round robin), keeping
    the round-robin position in ``positions`` from one call to the next."""
    for worker in list(positions):
        if worker not in weights:
            del positions[worker]
    total = sum(weights.values())
    shares: dict[str, list[int]] = {}
    for ticket in tickets:
        for worker, weight in weights.items():
            positions[worker] = positions.get(worker, 0.0) + weight
        chosen = max(positions, key=lambda w: positions[w])
        positions[chosen] -= total
        shares.setdefault(chosen, []).append(ticket)
    return shares


def _on_final_report(environment: Environment, msg: Any, **_kw: Any) -> None:
    if msg.data:
        PROCESS.totals.merge(msg.data)


def _on_tickets(environment: Environment, msg: Any, **_kw: Any) -> None:
    tickets = (msg.data or {}).get("due", [])
    for due in tickets:
        PROCESS.tickets.put(int(due))
    PROCESS.pending.scheduled += len(tickets)


def _end_test(environment: Environment) -> None:
    runner = environment.runner
    options = environment.parsed_options
    if runner is None:
        return
    if options is not None and options.headless:
        runner.quit()
    else:
        runner.stop()


# ---------------------------------------------------------------- events


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        PROCESS.role = "worker"
        runner.register_message(TICKETS_MESSAGE, _on_tickets)
    elif isinstance(runner, MasterRunner):
        PROCESS.role = "master"
        runner.register_message(FINAL_MESSAGE, _on_final_report)
    elif isinstance(runner, LocalRunner):
        PROCESS.role = "local"
    else:
        return
    _interrupt_only_the_main_greenlet()
    _listen(environment)
    if PROCESS.role == "worker":
        return
    options = environment.parsed_options
    user = scenario_user(environment)
    if user is None or options is None:
        return
    problem = user.check_options(options)
    if problem:
        _exit(problem)
    if options.num_users is None:
        options.num_users = user.users_for(options)
    if options.spawn_rate is None:
        options.spawn_rate = float(options.num_users)
    atexit.register(_stop_server)
    if not environment.host:
        _start_embedded_server(environment, options)
    if environment.host and (options.headless or options.autostart):
        _preflight(environment.host, options)
    if environment.web_ui is not None:
        _extend_web_ui(environment)


def _listen(environment: Environment) -> None:
    """Hook the statistics, the planner and the outputs into this process's events."""
    ev = environment.events

    def on_test_start(**_kw: Any) -> None:
        PROCESS.start_test(environment)

    def on_spawning_complete(**_kw: Any) -> None:
        if PROCESS.role == "worker" or PROCESS.planner is not None:
            return
        user = scenario_user(environment)
        if user is None or user.load_shape(options_of(environment)) is None:
            return
        PROCESS.planner = Planner(environment, user)
        PROCESS.planner.start()

    def on_test_stopping(**_kw: Any) -> None:
        runner = environment.runner
        PROCESS.begin_stop(runner.user_count if runner is not None else 0)

    def on_test_stop(**_kw: Any) -> None:
        PROCESS.stop_test()
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            # Now rather than with the next periodic report, which may never come.
            runner.send_message(FINAL_MESSAGE, PROCESS.report())

    def on_reset_stats(**_kw: Any) -> None:
        PROCESS.totals = RunStats()
        PROCESS.pending = RunStats()

    def on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        data[REPORT_KEY] = PROCESS.report()

    def on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        part = data.get(REPORT_KEY)
        if part:
            PROCESS.totals.merge(part)

    def on_quitting(**_kw: Any) -> None:
        if PROCESS.quitting.is_set():  # Locust fires it twice on SIGTERM
            PROCESS.quit_done.wait(60)
            _add_html_section(environment)  # Locust may have rewritten its report meanwhile
            return
        PROCESS.quitting.set()
        try:
            _stop_users(environment)
            _write_outputs(environment)
        finally:
            PROCESS.close()
            _stop_server()
            PROCESS.quit_done.set()

    ev.test_start.add_listener(on_test_start)
    ev.spawning_complete.add_listener(on_spawning_complete)
    ev.test_stopping.add_listener(on_test_stopping)
    ev.test_stop.add_listener(on_test_stop)
    ev.reset_stats.add_listener(on_reset_stats)
    ev.report_to_master.add_listener(on_report_to_master)
    ev.worker_report.add_listener(on_worker_report)
    ev.quitting.add_listener(on_quitting)


def _interrupt_only_the_main_greenlet() -> None:
    """Make Ctrl-C reach Locust's shutdown path and nothing else.

    Python raises ``KeyboardInterrupt`` in whatever code runs when SIGINT arrives. When that is a
    user's greenlet (building a request, parsing a chunk), gevent prints the greenlet's traceback
    before it hands the interrupt to the main greenlet, so a clean stop looks like a crash. A gevent
    signal handler runs from the event loop instead, between greenlets, and raises the interrupt in
    the main greenlet only, where Locust waits for it (the init event fires there).

    A second Ctrl-C while the outputs are written says so; a third quits at once (the records of
    completed requests are already on disk, and an embedded server stops with its parent).
    """
    main = greenlet.getcurrent()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            main.throw(KeyboardInterrupt)
        elif presses == 2:
            log.warning("stopping: writing the outputs, stopping the server (Ctrl-C again to quit at once)")
        else:
            log.warning("quitting at once; the outputs of this run are incomplete")
            os._exit(130)

    gevent.signal_handler(signal.SIGINT, interrupt)


def _exit(message: str) -> None:
    log.error(message)
    sys.exit(2)


def _start_embedded_server(environment: Environment, options: argparse.Namespace) -> None:
    from trtclient.server.launcher import EmbeddedTriton

    profile = options.server_profile
    log.info("no --host given: starting the embedded Triton (profile %s)", profile)
    server = EmbeddedTriton(profile=profile)
    try:
        server.start()
    except (errors.TritonError, OSError, ValueError, KeyError) as exc:
        _exit(f"could not start the embedded Triton: {exc} (pass --host URL to use a running server)")
    except KeyboardInterrupt:
        _exit("interrupted while the embedded Triton was starting; it has been stopped")
    PROCESS.server = server
    environment.host = server.url
    options.host = server.url
    log.info("embedded Triton ready at %s (log: %s)", server.url, server.handle.log_path)


def _preflight(host: str, options: argparse.Namespace) -> None:
    """Build the request once against the server, so a wrong URL, model or --param fails here."""
    try:
        Session(host, options).body()
    except (errors.TritonError, ValueError) as exc:
        _exit(f"cannot load-test model {options.model!r} at {redact_url(host)}: {exc}")


def _stop_server() -> None:
    server, PROCESS.server = PROCESS.server, None
    if server is not None:
        server.stop()


def _stop_users(environment: Environment) -> None:
    """Stop the test before the outputs are written. Locust has already done so when ``-t`` ran out
    or the planned requests ended, but not on Ctrl-C or SIGTERM, where ``quitting`` comes first. A
    master's stop waits until every worker has stopped, and so has its final report."""
    runner = environment.runner
    if runner is not None:
        runner.stop()


def _write_outputs(environment: Environment) -> None:
    PROCESS.accountant.flush()
    if PROCESS.role == "worker":
        everything = RunStats()
        everything.merge(PROCESS.reported.to_wire())
        everything.merge(PROCESS.pending.to_wire())
        log.info("worker totals: %s", totals_line(everything))
        return
    options = environment.parsed_options
    stats = PROCESS.totals
    log.info("test totals: %s", totals_line(stats))
    console = logging.getLogger("locust.stats_logger")
    for line in summary_lines(stats, PROCESS.label):
        console.info(line)
    console.info("")
    if options is not None and options.csv_prefix:
        write_csv(stats, options.csv_prefix, PROCESS.label)
        # Locust (2.47) rewrites PREFIX_stats.csv and its siblings once a second and not at the end,
        # so a test that ends between two writes would leave them stale. One more tick, with the
        # statistics final now, makes the files complete.
        gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC + 0.1)
    _add_html_section(environment)


def _add_html_section(environment: Environment) -> None:
    options = environment.parsed_options
    if PROCESS.role == "worker" or options is None or not options.html_file:
        return
    path = Path(options.html_file)
    try:
        if path.is_file() and SECTION_ID not in path.read_text(encoding="utf-8"):
            add_to_html_report(path, PROCESS.totals, PROCESS.label)
    except OSError as exc:
        log.warning("could not add the token metrics to %s: %s", path, exc)


# ---------------------------------------------------------------- web UI


_LATENCY_TAB = "trtclient-latency"
_THROUGHPUT_TAB = "trtclient-throughput"


def _extend_web_ui(environment: Environment) -> None:
    """Two tabs (token latency, token throughput), their data in /stats/requests, CSV downloads."""
    from flask import Response, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    app = web_ui.app
    latency_titles = {
        **LATENCY_HEADERS,
        **{k: f"{v} (ms)" for k, v in LATENCY_HEADERS.items() if k not in ("metric", "name", "count")},
    }
    web_ui.template_args["extended_tabs"] = [
        {"title": "Token latency", "key": _LATENCY_TAB},
        {"title": "Token throughput", "key": _THROUGHPUT_TAB},
    ]
    web_ui.template_args["extended_tables"] = [
        {"key": _LATENCY_TAB, "structure": [{"key": k, "title": t} for k, t in latency_titles.items()]},
        {
            "key": _THROUGHPUT_TAB,
            "structure": [{"key": k, "title": t} for k, t in THROUGHPUT_HEADERS.items()],
        },
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./trtclient/tokens.csv", "title": "Download token latency CSV"},
        {"href": "./trtclient/throughput.csv", "title": "Download token throughput CSV"},
    ]

    @app.after_request
    def _add_token_stats(response: Response) -> Response:
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            stats = PROCESS.totals
            payload = response.get_json() or {}
            payload["extended_stats"] = [
                {"key": _LATENCY_TAB, "data": latency_table(stats, PROCESS.label)},
                {"key": _THROUGHPUT_TAB, "data": throughput_table(stats, time.time())},
            ]
            response.set_data(json.dumps(payload))
        return response

    @app.route("/trtclient/tokens.csv")
    @web_ui.auth_required_if_enabled
    def _tokens_csv() -> Response:
        text = csv_text(latency_table(PROCESS.totals, PROCESS.label), LATENCY_HEADERS)
        return Response(text, mimetype="text/csv")

    @app.route("/trtclient/throughput.csv")
    @web_ui.auth_required_if_enabled
    def _throughput_csv() -> Response:
        return Response(csv_text(throughput_table(PROCESS.totals), THROUGHPUT_HEADERS), mimetype="text/csv")
