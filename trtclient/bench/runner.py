"""The load engine: sends a workload on a schedule through the async client and records every request.

Open loops, bursts and trace replays are paced by :class:`~trtclient.bench.pacer.Pacer` at absolute
intended times: each request's path through the client (its task, the body, a connection, aiohttp's
request) starts :data:`SEND_LEAD_NS` early and waits at the transport's send gate, right before the
write, until its time, which it finishes with a short busy-wait (:func:`spin_ns_for`). What is left
after the intended time is the write itself, so sends land within a millisecond of the schedule even
while other streams are being read. (With ``max_concurrency`` a request waits for its slot at its
intended time instead.) Closed loops keep ``concurrency`` workers busy. With a conversational workload
(:mod:`~trtclient.loadtest.sessions`) each closed-loop worker is a user holding one conversation at a
time: a turn is sent when the previous answer has arrived and the think time has passed. Each request
becomes one :class:`~trtclient.loadtest.records.RequestRecord` that ends ``ok``, ``failed`` (with its
error kind) or ``cancelled``, is appended to the sink as soon as it ends, and is never retried.

With ``keep_records=False`` a finished record goes only to the ``accumulator`` (the run's summaries,
in bounded memory) and the sink (on disk), and the result's ``records`` stay empty.

Setting the ``stop`` event (the CLI does on Ctrl-C) stops scheduling, cancels the requests in flight
(recorded as cancelled) and returns what completed.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from trtclient.bench.pacer import Pacer
from trtclient.bench.progress import Counters
from trtclient.bench.report import ClientLoad
from trtclient.loadtest.accumulator import RunAccumulator
from trtclient.loadtest.metrics import ttft_ns
from trtclient.loadtest.recorder import RecordBuilder
from trtclient.loadtest.records import JsonlSink, RequestRecord
from trtclient.loadtest.request_options import RequestOptions
from trtclient.loadtest.schedule import (
    Burst,
    Concurrency,
    LoadShape,
    Phases,
    Rate,
    Replay,
    Stop,
    Warmup,
    arrival_offsets,
    worker_start_offsets,
)
from trtclient.loadtest.sessions import Conversation, Conversational
from trtclient.loadtest.workload import Prompt, TokenCounter, Workload
from trtclient.schema import GenerateRequest, StreamChunk
from trtclient.streaming import StreamHead
from trtclient.timing import now_ns
from trtclient.transports.base import SendGate

__all__ = ["SEND_LEAD_NS", "RunConfig", "RunResult", "Runner", "StreamingClient", "spin_ns_for"]

#: Time between building the schedule and its first intended start.
START_DELAY_NS = 20_000_000
#: A paced request starts its way to the socket this long before its intended time.
SEND_LEAD_NS = 5_000_000
#: And this much earlier for each further request sharing its intended time (a burst), since each
#: takes its turn of the event loop on the way to its gate; at most :data:`MAX_SEND_LEAD_NS` in all.
BURST_LEAD_NS = 500_000
MAX_SEND_LEAD_NS = 250_000_000
#: The longest busy-wait that finishes a paced request's wait for its time.
SEND_SPIN_NS = 2_000_000


def spin_ns_for(shape: LoadShape) -> int:
    """How long a paced send busy-waits before its time: :data:`SEND_SPIN_NS`, but at most a quarter of
    the mean gap between arrivals, so that spinning never takes more than a quarter of the event loop."""
    if isinstance(shape, Rate):
        gap = 1e9 / shape.rate
    elif isinstance(shape, Replay) and len(shape.offsets_ns) > 1:
        gap = (shape.offsets_ns[-1] - shape.offsets_ns[0]) / (len(shape.offsets_ns) - 1)
    elif isinstance(shape, Burst) and shape.every_s is not None:
        gap = shape.every_s * 1e9
    else:
        gap = float("inf")
    return int(min(SEND_SPIN_NS, gap / 4))


class ChunkStream(Protocol):
    """What ``generate_stream`` returns: an async iterator of chunks and an async context manager."""

    @property
    def head(self) -> StreamHead:
        """What the transport learnt before the first event (sent, headers, status, arrival clock)."""

    send_gate: SendGate | None
    """Awaited by the transport right before the request's bytes are written."""

    def __aiter__(self) -> AsyncIterator[StreamChunk]: ...

    async def consume(self, on_chunk: Callable[[StreamChunk], None], /) -> None:
        """Hand every chunk to ``on_chunk`` to the end of the stream."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


class StreamingClient(Protocol):
    """The part of :class:`trtclient.AsyncTritonClient` the runner uses."""

    def generate_stream(self, request: GenerateRequest, /) -> ChunkStream: ...


@dataclass(frozen=True)
class RunConfig:
    """The schedule of a run."""

    shape: LoadShape
    stop: Stop
    warmup: Warmup = Warmup()
    ramp_up_s: float = 0.0
    seed: int = 0


@dataclass
class RunResult:
    """What a run produced."""

    records: list[RequestRecord]
    client: ClientLoad
    interrupted: bool
    started_ns: int
    ended_ns: int


class Runner:
    """Runs one load test; see the module docstring."""

    def __init__(
        self,
        client: StreamingClient,
        workload: Workload,
        config: RunConfig,
        options: RequestOptions | None = None,
        *,
        tokenizer: TokenCounter | None = None,
        sink: JsonlSink | None = None,
        on_progress: Callable[[Counters], None] | None = None,
        progress_interval_s: float = 0.25,
        accumulator: RunAccumulator | None = None,
        keep_records: bool = True,
    ) -> None:
        self.client = client
        self.workload = workload
        self.config = config
        self.options = options or RequestOptions()
        self.tokenizer = tokenizer
        self.sink = sink
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.accumulator = accumulator
        self.keep_records = keep_records
        self.counters = Counters()
        self.records: list[RequestRecord] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._ceiling: asyncio.Semaphore | None = None
        self._next_index = 0
        self._spin_ns = 0

    # ------------------------------------------------------------ public

    async def run(self, stop: asyncio.Event | None = None) -> RunResult:
        """Run the schedule to its end, or until ``stop`` is set; return every record."""
        stop = stop or asyncio.Event()
        shape = self.config.shape
        if isinstance(shape, Rate) and shape.max_concurrency is not None:
            self._ceiling = asyncio.Semaphore(shape.max_concurrency)
        self._spin_ns = spin_ns_for(shape)
        phases = Phases(self.config.warmup, self.config.stop)
        prompts = self.workload.prompts()
        cpu0 = time.process_time()
        t0 = now_ns() + START_DELAY_NS
        self.counters.started_ns = t0
        with Pacer() as pacer:
            if isinstance(shape, Concurrency) and isinstance(self.workload, Conversational):
                offsets = worker_start_offsets(shape, ramp_up_s=self.config.ramp_up_s)
                chats = self.workload.conversations()
                think_ns = round(self.workload.think_time_s * 1e9)
                drivers = [self._user(pacer, phases, chats, think_ns, t0 + off) for off in offsets]
            elif isinstance(shape, Concurrency):
                offsets = worker_start_offsets(shape, ramp_up_s=self.config.ramp_up_s)
                drivers = [self._worker(pacer, phases, prompts, t0 + off) for off in offsets]
            else:
                drivers = [self._dispatch(pacer, phases, prompts, t0, shape)]
            driver_tasks = [asyncio.create_task(d) for d in drivers]
            progress = asyncio.create_task(self._report_progress()) if self.on_progress else None
            stopper = asyncio.create_task(stop.wait())
            interrupted = False
            try:
                pending: set[asyncio.Task[Any]] = set(driver_tasks)
                while pending:
                    done, _ = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if stopper in done:
                        interrupted = True
                        break
                    pending -= done
                    for task in done:
                        task.result()  # a bug in a driver must not pass silently
                if not interrupted:
                    remaining: asyncio.Future[Any] = asyncio.gather(*self._tasks, return_exceptions=True)
                    finished, _ = await asyncio.wait(
                        {remaining, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    interrupted = remaining not in finished
            finally:
                self._stopping = True
                for task in [*driver_tasks, *self._tasks]:
                    task.cancel()
                await asyncio.gather(*driver_tasks, *self._tasks, return_exceptions=True)
                stopper.cancel()
                if progress is not None:
                    progress.cancel()
                    await asyncio.gather(progress, return_exceptions=True)
        ended = now_ns()
        cpu = time.process_time() - cpu0
        return RunResult(
            records=sorted(self.records, key=lambda r: r.index),
            client=ClientLoad(cpu_s=cpu, wall_s=max(0, ended - t0) / 1e9),
            interrupted=interrupted,
            started_ns=t0,
            ended_ns=ended,
        )

    # ------------------------------------------------------------ schedule drivers

    async def _dispatch(
        self, pacer: Pacer, phases: Phases, prompts: Iterator[Prompt], t0: int, shape: Burst | Rate | Replay
    ) -> None:
        """Open loop and bursts: one request per arrival, at its intended time.

        Arrivals sharing an intended time (a burst) are built together before the pacer wakes, and the
        next arrival is built before sleeping until the current one, so no building delays a send;
        each is released :data:`SEND_LEAD_NS` early (more for a burst, :data:`BURST_LEAD_NS` a request)
        to wait at its send gate (see the module docstring).
        """
        batch: list[tuple[Prompt, GenerateRequest, bool]] = []
        batch_offset = 0
        for offset in arrival_offsets(shape, ramp_up_s=self.config.ramp_up_s, seed=self.config.seed):
            phase = phases.classify(offset)
            if phase == "stop" or self._stopping:
                break
            if batch and offset != batch_offset:
                await self._release(pacer, t0 + batch_offset, batch)
                batch = []
            prompt = next(prompts)
            batch.append((prompt, self.options.build(prompt), phase == "warmup"))
            batch_offset = offset
        if batch and not self._stopping:
            await self._release(pacer, t0 + batch_offset, batch)

    async def _release(
        self, pacer: Pacer, intended: int, batch: list[tuple[Prompt, GenerateRequest, bool]]
    ) -> None:
        gate: SendGate | None = None
        if self._ceiling is None:
            lead = min(MAX_SEND_LEAD_NS, SEND_LEAD_NS + (len(batch) - 1) * BURST_LEAD_NS)
            await pacer.sleep_until(intended - lead)
            gate = functools.partial(pacer.sleep_until, intended, spin_ns=self._spin_ns)
        else:  # a request waiting for a slot must not hold one early
            await pacer.sleep_until(intended)
        for prompt, request, warmup in batch:
            self._spawn(self._send(self._take_index(), intended, prompt, request, warmup, gate))

    def _spawn(self, coro: Coroutine[Any, Any, RecordBuilder]) -> asyncio.Task[RecordBuilder]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _worker(self, pacer: Pacer, phases: Phases, prompts: Iterator[Prompt], start: int) -> None:
        """Closed loop: send, wait for the end, send again."""
        await pacer.sleep_until(start)
        intended = start
        t0 = self.counters.started_ns
        while not self._stopping:
            phase = phases.classify(intended - t0)
            if phase == "stop":
                return
            prompt = next(prompts)
            request = self.options.build(prompt)
            await self._spawn(self._send(self._take_index(), intended, prompt, request, phase == "warmup"))
            intended = now_ns()

    async def _user(
        self, pacer: Pacer, phases: Phases, chats: Iterator[Conversation], think_ns: int, start: int
    ) -> None:
        """Closed loop of conversations: each turn after the previous answer and the think time."""
        await pacer.sleep_until(start)
        intended = start
        t0 = self.counters.started_ns
        while not self._stopping:
            chat = next(chats)
            while not self._stopping and (prompt := chat.next_prompt()) is not None:
                phase = phases.classify(intended - t0)
                if phase == "stop":
                    return
                request = self.options.build(prompt)
                live = await self._spawn(
                    self._send(self._take_index(), intended, prompt, request, phase == "warmup")
                )
                if live.record.status != "ok":
                    break  # without its answer the conversation cannot go on
                chat.answered("".join(live.texts))
                intended = now_ns() + think_ns
                await pacer.sleep_until(intended)

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    # ------------------------------------------------------------ one request

    async def _send(
        self,
        index: int,
        intended: int,
        prompt: Prompt,
        request: GenerateRequest,
        warmup: bool,
        gate: SendGate | None = None,
    ) -> RecordBuilder:
        record = RequestRecord(
            index=index,
            intended_ns=intended,
            warmup=warmup,
            prompt_id=prompt.id,
            requested_output_tokens=prompt.max_tokens,
            forced_output_tokens=self.options.force_output_length,
            turn=prompt.turn,
            session=prompt.session,
            adapter=prompt.adapter,
        )
        live = RecordBuilder(record, prompt)
        c = self.counters
        try:
            if self._ceiling is not None:
                async with self._ceiling:
                    await self._stream(live, request, gate)
            else:
                await self._stream(live, request, gate)
        except asyncio.CancelledError:
            live.cancelled()
        except Exception as exc:
            live.failed(exc)
        finally:
            if not live.ended:  # e.g. KeyboardInterrupt: the run was interrupted
                live.cancelled()
            if record.dispatched_ns is not None:
                c.in_flight -= 1
            self._finish(live)
        return live

    async def _stream(self, live: RecordBuilder, request: GenerateRequest, gate: SendGate | None) -> None:
        live.dispatched()
        self.counters.sent += 1
        self.counters.in_flight += 1
        stream = self.client.generate_stream(request)
        stream.send_gate = gate
        live.opened(stream.head)
        async with stream:
            await stream.consume(live.on_chunk)
            live.succeeded()

    def _finish(self, live: RecordBuilder) -> None:
        record = live.record
        live.finish(self.tokenizer)
        c = self.counters
        if record.status == "ok":
            c.ok += 1
            c.output_tokens += record.output_tokens or 0
            ttft = ttft_ns(record)
            if ttft is not None:
                c.recent_ttft_ns.append(ttft)
        elif record.status == "failed":
            c.failed += 1
        else:
            c.cancelled += 1
        if self.accumulator is not None:
            self.accumulator.add(record)
        if self.keep_records:
            self.records.append(record)
        if self.sink is not None:
            self.sink.write(record)

    async def _report_progress(self) -> None:
        assert self.on_progress is not None
        while True:
            self.on_progress(self.counters)
            await asyncio.sleep(self.progress_interval_s)
