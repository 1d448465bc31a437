"""One request of a Locust user, from the process's session to the Locust events: the same record
writer and request-options policy as ``trtclient bench``, the bookkeeping in one background greenlet.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent monkey-patches the standard library on import)

# isort: split

import argparse
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
from gevent.queue import Queue
from locust.env import Environment

from trtclient.inputs import ModelInputs, build_body, encode_body
from trtclient.loadtest import metrics
from trtclient.loadtest.recorder import RecordBuilder
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.request_options import RequestOptions, resolve_options
from trtclient.loadtest.workload import Prompt
from trtclient.options import Timeout
from trtclient.streaming import TextMode
from trtclient.sync_client import TritonClient
from trtclient.transports.socket_stream import Connection
from trtclient.urls import model_path
from trtlocust._exchange import exchange
from trtlocust._options import TUTORIAL_END_ID, TUTORIAL_WORDS, headers_of, verify_of
from trtlocust._workloads import ProcessWorkload

__all__ = ["Accountant", "Finished", "RequestFailed", "Session", "send_one"]

log = logging.getLogger("trtclient.locust")
#: Longest error text in Locust's failures table (Locust groups failures by their text).
MAX_ERROR_TEXT = 160


class Session:
    """The process's request: read the model's inputs once per test, keep the encoded body."""

    def __init__(self, host: str, options: argparse.Namespace, stream: int = 0) -> None:
        self.host = host
        self.model = str(options.model)
        self.label = self.model
        self.path = model_path(self.model) + "/generate_stream"
        self.options = options
        self.workload = ProcessWorkload(options, stream)
        self.prompt: Prompt = self.workload.fixed
        self._inputs: ModelInputs | None = None
        self.request_options = RequestOptions()
        self.text_mode: TextMode = "delta"
        self._body: bytes | None = None
        self._lock = threading.Lock()

    def body(self, prompt: Prompt | None = None) -> bytes:
        """The encoded request body of ``prompt`` (default: the fixed prompt's, kept); the first call reads
        the model's inputs and picks what it supports."""
        if self._body is None:
            with self._lock:
                if self._body is None:
                    self._body = self._build()
        if prompt is None or prompt is self.prompt or self._inputs is None:
            return self._body
        return encode_body(build_body(self.request_options.build(prompt), self._inputs, stream=True))

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
        self._inputs = inputs
        request = self.request_options.build(self.prompt)
        return encode_body(build_body(request, inputs, stream=True))


class RequestFailed(Exception):
    """How a failed request shows in Locust's failures table: its kind, then the message."""


def send_one(
    environment: Environment,
    session: Session,
    accountant: Accountant,
    connection: Connection,
    index: int,
    intended_ns: int,
    prompt: Prompt,
) -> RecordBuilder:
    """Send one streamed request of ``prompt`` and hand it to ``accountant`` (statistics, records, Locust
    events); the builder keeps the answer's text (for the next turn of a conversation)."""
    record = RequestRecord(
        index=index,
        intended_ns=intended_ns,
        prompt_id=prompt.id,
        requested_output_tokens=prompt.max_tokens,
        turn=prompt.turn,
        adapter=prompt.adapter,
    )
    live = RecordBuilder(record, prompt)  # the same writer as trtclient bench
    failure: BaseException | None = None
    accountant.started()
    try:
        live.dispatched()
        body = session.body(prompt)
        record.forced_output_tokens = session.request_options.force_output_length
        exchange(connection, session.path, body, session.text_mode, live)
    except Exception as exc:
        failure = exc
        live.failed(exc)  # no change if the exchange already recorded it
    finally:
        if not live.ended:  # stopped before the exchange began
            live.cancelled()
        accountant.submit(Finished(environment, session, live, failure))
    return live


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

    def __init__(self, keep: Callable[[Environment, RequestRecord], None]) -> None:
        """``keep`` adds a finished request's record to the statistics and the records file."""
        self.keep = keep
        self.queue: Queue[Finished] = Queue()
        self.greenlet: gevent.Greenlet[Any, Any] | None = None
        self.in_flight = 0
        """Requests started and not yet finished (a worker reports it, so that a lost worker's
        unfinished requests can be told)."""

    def started(self) -> None:
        """One more request is under way."""
        self.in_flight += 1

    def submit(self, finished: Finished) -> None:
        """Queue one finished request."""
        self.in_flight -= 1
        self.queue.put(finished)
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)

    def flush(self) -> None:
        """Account for everything queued, now (at the end of a test, before anything is reported)."""
        while not self.queue.empty():
            self.account(self.queue.get_nowait())

    def _run(self) -> None:
        while True:
            self.account(self.queue.get())
            gevent.idle()  # let every read that is ready run (and stamp its events) first

    def account(self, finished: Finished) -> None:
        """Count the tokens, keep the record, fire the request's Locust events."""
        record = finished.live.record
        finished.live.finish(None)
        self.keep(finished.environment, record)
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
        # a row (and failures) of its own per LoRA adapter
        name=session.path if record.adapter is None else f"{session.path} [lora {record.adapter}]",
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
