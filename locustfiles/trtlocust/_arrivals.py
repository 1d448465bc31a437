"""Arrivals planned once (on the master or the standalone runner) and dealt to the workers ahead of time,
in proportion to their users.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner

__all__ = ["LEAD_NS", "NO_MORE_ARRIVALS", "Planner", "TICKETS_MESSAGE", "TICK_S", "Ticket", "deal"]

log = logging.getLogger("trtclient.locust")

#: How far ahead of their time arrivals are handed to the users (and to the workers).
LEAD_NS = 200_000_000
#: How often the planner hands out the next arrivals.
TICK_S = 0.05
#: Master -> worker custom message carrying arrivals: ``{"due": [[epoch_ns, number], ...]}``.
TICKETS_MESSAGE = "trtclient_arrivals"
Ticket = tuple[int, int]
"""An arrival: when it is due (epoch ns) and its number in the plan (0, 1, ...; a trace's line order)."""
#: What a user waiting for an arrival gets when the test is stopping.
NO_MORE_ARRIVALS: Ticket = (0, -1)


class Planner:
    """Runs on the master or the standalone runner: plans arrivals and hands them out ahead of time."""

    def __init__(
        self,
        environment: Environment,
        offsets: Iterator[int],
        planned: int | None,
        *,
        deliver_here: Callable[[list[Ticket]], None],
        settled: Callable[[], int],
        on_end: Callable[[], None],
    ) -> None:
        """``offsets``: the arrivals' offsets from the start (ns); ``planned``: how many (None: no end).
        ``deliver_here`` takes arrivals on a standalone runner; ``settled`` counts the requests that
        ended (or were never sent); ``on_end`` ends the test once every planned request has settled."""
        self.environment = environment
        self.offsets = offsets
        self.planned = planned
        self.deliver_here = deliver_here
        self.settled = settled
        self.on_end = on_end
        self.issued = 0
        self.backlog: list[Ticket] = []
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
            batch: list[Ticket] = []
            while following is not None and t0 + following <= horizon and not self._all_issued():
                batch.append((t0 + following, self.issued))
                self.issued += 1
                following = next(self.offsets, None)
            self._deliver(batch)
            gevent.sleep(TICK_S)
        while self.backlog:
            self._deliver([])
            gevent.sleep(TICK_S)
        log.info("all %d planned arrivals handed out; waiting for their requests to end", self.issued)
        while self.settled() < self.issued:
            gevent.sleep(0.2)
        log.info("all %d planned requests ended, stopping the test", self.issued)
        gevent.spawn(self.on_end)

    def _all_issued(self) -> bool:
        return self.planned is not None and self.issued >= self.planned

    def _deliver(self, batch: list[Ticket]) -> None:
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            self.deliver_here(batch)
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


def deal(
    tickets: list[Ticket], weights: dict[str, float], positions: dict[str, float]
) -> dict[str, list[Ticket]]:
    """Deal tickets to workers in proportion to their weights (smooth weighted round robin), keeping
    the round-robin position in ``positions`` from one call to the next."""
    for worker in list(positions):
        if worker not in weights:
            del positions[worker]
    total = sum(weights.values())
    shares: dict[str, list[Ticket]] = {}
    for ticket in tickets:
        for worker, weight in weights.items():
            positions[worker] = positions.get(worker, 0.0) + weight
        chosen = max(positions, key=lambda w: positions[w])
        positions[chosen] -= total
        shares.setdefault(chosen, []).append(ticket)
    return shares
