"""Everything one Locust process keeps for a test: statistics by role, arrivals, session, records file."""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import contextlib
import logging
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent.queue import Queue
from locust.env import Environment
from locust.runners import WorkerRunner

from trtclient import errors
from trtclient.loadtest.heap import frozen_heap
from trtclient.loadtest.records import JsonlSink, RequestRecord
from trtclient.options import Timeout
from trtclient.urls import redact_url
from trtlocust._arrivals import NO_MORE_ARRIVALS, Planner, Ticket
from trtlocust._options import options_of
from trtlocust._requests import Accountant, Session
from trtlocust._stats import RunStats

__all__ = ["PROCESS", "ProcessState"]

log = logging.getLogger("trtclient.locust")


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
        self.tickets: Queue[Ticket] = Queue()
        self.closed_loop = True
        self.stopping = False
        self.accountant = Accountant(self.account)
        self.quitting = gevent.event.Event()
        self.quit_done = gevent.event.Event()
        self.planner: Planner | None = None
        self.server: Any = None
        self.label = ""
        self.worker_in_flight: dict[str, int] = {}
        """On the master: each worker's requests in flight at its latest report."""
        self.lost_workers: dict[str, int] = {}
        """On the master: workers that went missing during the test, with their requests in flight."""
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
            runner = environment.runner
            # Each worker process draws its own prompts over the same shared prefixes.
            stream = runner.worker_index + 1 if isinstance(runner, WorkerRunner) else 0
            self._session = Session(environment.host or "", options_of(environment), stream)
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
            self._sink = JsonlSink(path, append=bool(getattr(environment.parsed_options, "append", False)))
        return self._sink

    def start_test(self, environment: Environment, *, closed_loop: bool) -> None:
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
        self.worker_in_flight = {}
        self.lost_workers = {}
        self._counter = 0
        self._session = None
        options = options_of(environment)
        self.label = str(options.model)
        self.closed_loop = closed_loop
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

    def note_lost(self, worker: str) -> int:
        """A worker went missing: keep (and return) its requests in flight at its last report."""
        in_flight = self.worker_in_flight.get(worker, 0)
        self.lost_workers[worker] = in_flight
        return in_flight

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
