"""The Triton user: one keep-alive connection, one streamed request per arrival (or back to back)."""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import argparse
import logging
from typing import ClassVar

import gevent
import gevent.event
from locust import User, constant, task

from trtclient.loadtest.schedule import Burst, Rate, Replay
from trtclient.loadtest.sessions import Conversation
from trtclient.timing import from_epoch_ns, now_ns
from trtclient.transports.socket_stream import Connection
from trtlocust._arrivals import NO_MORE_ARRIVALS
from trtlocust._options import headers_of, verify_of
from trtlocust._process import PROCESS
from trtlocust._requests import Session, send_one

__all__ = ["TritonUser"]

log = logging.getLogger("trtclient.locust")


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
    def load_shape(cls, options: argparse.Namespace) -> Burst | Rate | Replay | None:
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
        self.chat: Conversation | None = None
        self.next_turn_ns: int | None = None

    def on_stop(self) -> None:
        self.connection.close()

    @task
    def generate_stream(self) -> None:
        """Wait for the next arrival (or go at once in a closed loop), then stream one request."""
        state = PROCESS
        if state.is_stopping():
            return
        number = 0
        if state.closed_loop:
            intended = now_ns()
        else:
            due, number = state.tickets.get()
            if (due, number) == NO_MORE_ARRIVALS:
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
        session = state.session(self.environment)
        if session.workload.conversational:
            self._next_turn(session)
            return
        prompt = session.workload.next_prompt(number)
        send_one(
            self.environment, session, state.accountant, self.connection, state.next_index(), intended, prompt
        )

    def _next_turn(self, session: Session) -> None:
        """``--turns``: the next turn of this user's conversation (a new conversation after the last
        turn, or after a turn that failed); after its answer, the think time. A turn's intended start is
        the previous answer's end plus the think time."""
        state = PROCESS
        prompt = self.chat.next_prompt() if self.chat is not None else None
        if self.chat is None or prompt is None:
            self.chat = session.workload.next_conversation()
            prompt = self.chat.next_prompt()
            assert prompt is not None  # a conversation has at least one turn
        intended = self.next_turn_ns if self.next_turn_ns is not None else now_ns()
        live = send_one(
            self.environment, session, state.accountant, self.connection, state.next_index(), intended, prompt
        )
        if live.record.status != "ok":
            self.chat, self.next_turn_ns = None, None  # without its answer the conversation cannot go on
            return
        self.chat.answered("".join(live.texts))
        think_s = session.workload.think_time_s
        self.next_turn_ns = now_ns() + round(think_s * 1e9)
        if think_s > 0:
            gevent.sleep(think_s)
