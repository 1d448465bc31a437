"""The Locust event hooks that wire the kit together: roles, the planner, Ctrl-C, the embedded server,
the outputs at the end. The only module that knows every other one.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import argparse
import atexit
import logging
import os
import signal
import sys
from typing import Any

import gevent
import gevent.event
import greenlet
from locust import events
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, LocalRunner, MasterRunner, WorkerRunner

from trtclient import errors, exit_codes
from trtclient.loadtest.schedule import arrival_offsets
from trtclient.loadtest.workload import WorkloadError
from trtclient.urls import redact_url
from trtlocust._arrivals import TICKETS_MESSAGE, Planner, Ticket
from trtlocust._options import options_of
from trtlocust._outputs import add_html_section, extend_web_ui, write_outputs
from trtlocust._process import PROCESS
from trtlocust._requests import Session
from trtlocust._stats import RunStats
from trtlocust._user import TritonUser
from trtlocust._workloads import workload_problem

__all__ = ["scenario_user"]

log = logging.getLogger("trtclient.locust")

#: Key of the token statistics in Locust's periodic worker reports.
REPORT_KEY = "trtclient"
#: Worker -> master custom message with a worker's last statistics, sent as its users stop.
FINAL_MESSAGE = "trtclient_final_report"
#: Key of a worker's requests in flight in its periodic reports.
IN_FLIGHT_KEY = "trtclient_in_flight"
#: Seconds between two looks of the master for workers gone missing.
WATCH_INTERVAL_S = 1.0


def scenario_user(environment: Environment) -> type[TritonUser] | None:
    """The scenario's user class (the first TritonUser among the test's user classes)."""
    for user_class in environment.user_classes:
        if issubclass(user_class, TritonUser):
            return user_class
    return None


def _planner(environment: Environment, user: type[TritonUser]) -> Planner:
    """The planner of the scenario's arrivals, delivering into this process's statistics and tickets."""
    options = options_of(environment)
    shape = user.load_shape(options)
    if shape is None:
        raise ValueError(f"{user.__name__} is a closed loop; it has no arrivals to plan")
    offsets = arrival_offsets(
        shape, ramp_up_s=user.ramp_up_s(options), seed=int(getattr(options, "seed", 0) or 0)
    )

    def deliver_here(batch: list[Ticket]) -> None:
        for due in batch:
            PROCESS.tickets.put(due)
        PROCESS.totals.scheduled += len(batch)

    def settled() -> int:
        return PROCESS.totals.sent + PROCESS.totals.unsent

    return Planner(
        environment,
        offsets,
        user.planned_requests(options),
        deliver_here=deliver_here,
        settled=settled,
        on_end=lambda: _end_test(environment),
    )


def _on_final_report(environment: Environment, msg: Any, **_kw: Any) -> None:
    if msg.data:
        PROCESS.totals.merge(msg.data)


def _on_tickets(environment: Environment, msg: Any, **_kw: Any) -> None:
    tickets = (msg.data or {}).get("due", [])
    for due, number in tickets:
        PROCESS.tickets.put((int(due), int(number)))
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
        gevent.spawn(_watch_workers, runner)
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
    try:
        open_loop = user.load_shape(options) is not None  # reads a --trace, which may be bad
    except WorkloadError as exc:
        _exit(str(exc))
    max_input_len = None if environment.host else _embedded_max_input_len()
    problem = user.check_options(options) or workload_problem(
        options, open_loop=open_loop, max_input_len=max_input_len
    )
    if problem:
        _exit(problem)
    try:
        exit_codes.parse_max_failures(options.max_failures)
    except ValueError as exc:
        _exit(str(exc))
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
        extend_web_ui(environment)


def _listen(environment: Environment) -> None:
    """Hook the statistics, the planner and the outputs into this process's events."""
    ev = environment.events

    def on_test_start(**_kw: Any) -> None:
        user = scenario_user(environment)
        closed_loop = user is None or user.load_shape(options_of(environment)) is None
        PROCESS.start_test(environment, closed_loop=closed_loop)

    def on_spawning_complete(**_kw: Any) -> None:
        if PROCESS.role == "worker" or PROCESS.planner is not None:
            return
        user = scenario_user(environment)
        if user is None or user.load_shape(options_of(environment)) is None:
            return
        PROCESS.planner = _planner(environment, user)
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
        data[IN_FLIGHT_KEY] = PROCESS.accountant.in_flight

    def on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        part = data.get(REPORT_KEY)
        if part:
            PROCESS.totals.merge(part)
        in_flight = data.get(IN_FLIGHT_KEY)
        if isinstance(in_flight, int):
            PROCESS.worker_in_flight[client_id] = in_flight

    def on_quitting(**_kw: Any) -> None:
        if PROCESS.quitting.is_set():  # Locust fires it twice on SIGTERM
            PROCESS.quit_done.wait(60)
            add_html_section(environment)  # Locust may have rewritten its report meanwhile
            return
        PROCESS.quitting.set()
        runner = environment.runner
        interrupted = runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING)
        try:
            _stop_users(environment)
            write_outputs(environment)
            _set_exit_code(environment, interrupted)
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


def _watch_workers(runner: MasterRunner) -> None:
    """On the master: tell at once when a worker goes missing (Locust marks it so after three missed
    heartbeats) and how many requests it had in flight at its last report; they are lost with it, and
    what it reported before is merged."""
    while True:
        gevent.sleep(WATCH_INTERVAL_S)
        for worker in runner.clients.missing:
            if worker.id not in PROCESS.lost_workers:
                in_flight = PROCESS.note_lost(worker.id)
                log.warning(
                    "worker %s was lost (no heartbeat): %d requests in flight at its last report are "
                    "lost with it; what it reported before is merged",
                    worker.id,
                    in_flight,
                )


def _set_exit_code(environment: Environment, interrupted: bool) -> None:
    """trtclient's exit codes (``trtclient.exit_codes``) in place of Locust's own, on the master or
    a standalone process: 3 beyond ``--max-failures``, 130 when stopped by Ctrl-C or SIGTERM."""
    if PROCESS.role == "worker":
        return
    budget = exit_codes.parse_max_failures(options_of(environment).max_failures)
    total = environment.stats.total
    environment.process_exit_code = exit_codes.exit_code(
        interrupted=interrupted,
        sent=total.num_requests,
        failed=total.num_failures,
        measured_ok=total.num_requests - total.num_failures,
        budget=budget,
    )


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
    sys.exit(exit_codes.USAGE)


def _embedded_max_input_len() -> int:
    from trtclient.server.launcher import EmbeddedTriton

    return EmbeddedTriton.max_input_len


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
