"""The runner's bookkeeping, driven by a scripted fake client, and the pacer's wake-up order.

The fake client replaces the network on purpose: it produces, on demand, what a real server does only
by accident or never (a stream that hangs until cancelled, an error at a chosen event, per-event token
counts of several tokens, events without content), so each record can be checked against the script.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from trtclient import errors
from trtclient.bench.pacer import Pacer
from trtclient.bench.progress import Counters, ProgressLine
from trtclient.bench.runner import SEND_SPIN_NS, RunConfig, Runner, spin_ns_for
from trtclient.loadtest import metrics as m
from trtclient.loadtest.accumulator import RunAccumulator
from trtclient.loadtest.records import JsonlSink, read_records
from trtclient.loadtest.request_options import RequestOptions
from trtclient.loadtest.schedule import Burst, Concurrency, Rate, Replay, Stop, Warmup
from trtclient.loadtest.workload import FixedPrompt, Prompt
from trtclient.schema import GenerateRequest, StreamChunk
from trtclient.streaming import StreamHead
from trtclient.timing import now_ns

HANG = "hang"
Step = tuple[str, dict[str, Any]] | BaseException | str


class FakeStream:
    """Plays a script: (text, data) events, an exception, or HANG (wait until cancelled)."""

    def __init__(self, client: FakeClient, script: list[Step], fail_on_open: BaseException | None) -> None:
        self.client = client
        self.script = script
        self.fail_on_open = fail_on_open
        self.head = StreamHead()
        self.send_gate: Callable[[], Awaitable[None]] | None = None

    async def __aenter__(self) -> FakeStream:
        if self.fail_on_open is not None:
            raise self.fail_on_open
        self.client.gated.append(self.send_gate is not None)
        if self.send_gate is not None:
            await self.send_gate()
        self.head.sent_ns = now_ns()
        self.head.headers_ns = now_ns()
        self.head.status_code = 200
        self.client.active += 1
        self.client.peak = max(self.client.peak, self.client.active)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.active -= 1

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._events()

    async def consume(self, on_chunk: Callable[[StreamChunk], None]) -> None:
        async for chunk in self._events():
            on_chunk(chunk)

    async def _events(self) -> AsyncIterator[StreamChunk]:
        for index, step in enumerate(self.script):
            if self.client.work_s:
                await asyncio.sleep(self.client.work_s)  # stands for the server's work, not for a sync
            if step == HANG:
                await asyncio.Event().wait()
            if isinstance(step, BaseException):
                raise step
            assert isinstance(step, tuple)
            text, data = step
            yield StreamChunk(text, data, None, now_ns(), index)


class FakeClient:
    def __init__(self, script: list[Step], *, fail_on_open: BaseException | None = None, work_s: float = 0.0):
        self.script = script
        self.fail_on_open = fail_on_open
        self.work_s = work_s
        self.requests: list[GenerateRequest] = []
        self.active = self.peak = 0
        self.gated: list[bool] = []

    def generate_stream(self, request: GenerateRequest, /) -> FakeStream:
        self.requests.append(request)
        return FakeStream(self, self.script, self.fail_on_open)


class CharCounter:
    """A stand-in tokenizer: one token per character."""

    def count(self, text: str) -> int:
        return len(text)


def burst(n: int, **kw: Any) -> RunConfig:
    return RunConfig(Burst(n), Stop(requests=n), **kw)


async def test_content_events_token_counts_and_engine_stamps() -> None:
    script: list[Step] = [
        ("", {"num_input_tokens": 5}),  # no content: counts only
        ("Hel", {"num_output_tokens": 2, "first_token_time_ns": 111}),
        ("lo", {"num_output_tokens": 1, "first_token_time_ns": 111, "last_token_time_ns": 222}),
        ("", {"num_output_tokens": 0}),
    ]
    prompt = Prompt("p", "hi", 3, input_tokens=4)

    class One:
        description = "one"

        def prompts(self) -> Any:
            while True:
                yield prompt

    result = await Runner(FakeClient(script), One(), burst(1), tokenizer=CharCounter()).run()  # type: ignore[arg-type]
    (r,) = result.records
    assert r.status == "ok" and len(r.event_ns) == 2 and len(r.other_event_ns) == 2
    assert r.arrival_clock == "read"  # as the stream reported it
    assert r.event_tokens == [2, 1]
    assert r.token_counts == {
        "events_output": 2,
        "server_output": 3,
        "tokenizer_output": 5,
        "server_input": 5,
        "tokenizer_input": 4,
    }
    assert (r.output_tokens, r.output_tokens_source) == (3, "server")
    assert (r.input_tokens, r.input_tokens_source) == (5, "server")
    assert r.engine_ns == {"first_token_time_ns": 111, "last_token_time_ns": 222}
    assert r.sent_ns is not None and r.sent_ns <= r.event_ns[0] <= r.event_ns[1] <= r.end_ns  # type: ignore[operator]


@pytest.mark.parametrize(
    ("tokenizer", "source", "count"), [(CharCounter(), "tokenizer", 5), (None, "events", 2)]
)
async def test_token_source_falls_back_in_order(tokenizer: Any, source: str, count: int) -> None:
    client = FakeClient([("Hel", {}), ("lo", {})])
    result = await Runner(client, FixedPrompt("hi", 2), burst(1), tokenizer=tokenizer).run()
    r = result.records[0]
    assert (r.output_tokens_source, r.output_tokens) == (source, count)
    assert r.input_tokens is None and r.input_tokens_source is None


async def test_failures_keep_what_arrived_and_name_their_kind() -> None:
    mid = errors.TritonStreamError("engine fell over", events_received=1)
    result = await Runner(FakeClient([("a", {}), mid]), FixedPrompt("hi", 4), burst(2)).run()
    for r in result.records:
        assert (r.status, r.error_kind) == ("failed", "stream_error")
        assert "engine fell over" in (r.error_message or "") and len(r.event_ns) == 1 and r.end_ns is not None

    refused = errors.TritonConnectionError("cannot connect to http://127.0.0.1:1")
    result = await Runner(FakeClient([], fail_on_open=refused), FixedPrompt("hi", 4), burst(1)).run()
    (r,) = result.records
    assert (r.status, r.error_kind, r.sent_ns, r.http_status) == ("failed", "connect", None, None)


async def test_every_request_is_written_once_whatever_its_end(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    stop = asyncio.Event()

    client = FakeClient([("a", {}), HANG])

    def progress(c: Counters) -> None:
        if client.active == 6:  # all six sent (past their send gates) and streaming
            stop.set()

    with JsonlSink(path) as sink:
        runner = Runner(client, FixedPrompt("hi", 4), burst(6), sink=sink, on_progress=progress)
        runner.progress_interval_s = 0.001
        result = await runner.run(stop)
    assert result.interrupted
    assert [r.status for r in result.records] == ["cancelled"] * 6
    assert sorted(r.index for r in read_records(path)) == list(range(6))
    assert runner.counters.cancelled == 6 and runner.counters.in_flight == 0
    assert all(len(r.event_ns) == 1 and r.end_ns is not None for r in result.records)


async def test_bounded_memory_keeps_no_record_yet_sums_up_the_same(tmp_path: Path) -> None:
    """Without kept records, the accumulator sees every request once and the sink gets every record;
    its exact figures match those computed from the records on disk."""
    path = tmp_path / "r.jsonl"
    accumulator = RunAccumulator()
    with JsonlSink(path) as sink:
        runner = Runner(
            FakeClient([("a", {}), ("b", {}), ("c", {})]),
            FixedPrompt("hi", 4),
            burst(5),
            sink=sink,
            accumulator=accumulator,
            keep_records=False,
        )
        result = await runner.run()
    assert result.records == []
    on_disk = list(read_records(path))
    exact, got = m.compute_metrics(on_disk), accumulator.metrics()
    assert got.counts == exact.counts and got.counts.ok == 5
    assert (got.window_ns, got.output_tokens_per_s) == (exact.window_ns, exact.output_tokens_per_s)
    assert got.itl is not None and exact.itl is not None and got.itl.count == exact.itl.count == 10
    assert (got.percentiles, exact.percentiles) == ("histogram", "exact")


async def test_concurrency_ceiling_holds_and_waiting_counts_against_latency() -> None:
    client = FakeClient([("a", {}), ("b", {})], work_s=0.002)
    config = RunConfig(Rate(2000.0, "constant", max_concurrency=2), Stop(requests=8))
    result = await Runner(client, FixedPrompt("hi", 2), config).run()
    assert client.peak == 2
    records = result.records
    assert all(r.status == "ok" for r in records)
    for r in records[2:]:
        # it got its slot only after an earlier request ended, and its intended start did not move
        assert any(e.end_ns is not None and e.end_ns <= r.dispatched_ns for e in records[: r.index])  # type: ignore[operator]
        assert r.intended_ns < r.dispatched_ns  # type: ignore[operator]


async def test_paced_requests_wait_at_the_send_gate_and_go_out_at_their_time() -> None:
    client = FakeClient([("a", {})])
    config = RunConfig(Replay((0, 2_000_000, 2_000_000, 9_000_000)), Stop(requests=4))
    result = await Runner(client, FixedPrompt("hi", 1), config).run()
    assert client.gated == [True] * 4
    for r in result.records:
        assert r.status == "ok" and r.sent_ns is not None and r.dispatched_ns is not None
        assert (
            r.dispatched_ns <= r.sent_ns and r.intended_ns <= r.sent_ns
        )  # written at its time, never before


async def test_closed_loops_and_ceilings_send_without_a_gate() -> None:
    closed = FakeClient([("a", {})])
    await Runner(closed, FixedPrompt("hi", 1), RunConfig(Concurrency(2), Stop(requests=4))).run()
    capped = FakeClient([("a", {})])
    config = RunConfig(Rate(500.0, "constant", max_concurrency=1), Stop(requests=3))
    await Runner(capped, FixedPrompt("hi", 1), config).run()
    assert closed.gated == [False] * 4 and capped.gated == [False] * 3


def test_spinning_takes_at_most_a_quarter_of_the_mean_gap() -> None:
    assert spin_ns_for(Rate(10.0)) == SEND_SPIN_NS
    assert spin_ns_for(Rate(1000.0)) == 250_000
    assert spin_ns_for(Replay((0, 4_000_000, 8_000_000))) == 1_000_000
    assert spin_ns_for(Replay((0,))) == SEND_SPIN_NS
    assert spin_ns_for(Burst(5)) == SEND_SPIN_NS
    assert spin_ns_for(Burst(5, every_s=0.002)) == 500_000


async def test_warmup_flag_and_request_options() -> None:
    client = FakeClient([("a", {})])
    options = RequestOptions(force_output_length=True, end_id=7, server_token_counts=True, extra={"top_k": 3})
    config = RunConfig(Burst(2, every_s=0.001), Stop(requests=2), Warmup(requests=2))
    result = await Runner(client, FixedPrompt("hi", 9), config, options).run()
    assert [r.warmup for r in result.records] == [True, True, False, False]
    assert [r.intended_ns - result.records[0].intended_ns for r in result.records] == [0, 0, 10**6, 10**6]
    sent = client.requests[0].input_values()
    assert sent["min_tokens"] == 9 and sent["max_tokens"] == 9 and sent["end_id"] == 7 and sent["top_k"] == 3
    assert sent["return_num_output_tokens"] is True and sent["stream"] is True
    assert "return_perf_metrics" not in sent


async def test_pacer_wakes_sleepers_in_deadline_order_never_early() -> None:
    woke: list[tuple[int, int]] = []
    # Far enough ahead that every sleeper is queued before the first deadline, even on a loaded machine
    # (a deadline already past when its sleeper starts returns at once, out of the pacer's order).
    base = now_ns() + 300_000_000

    async def sleeper(pacer: Pacer, deadline: int) -> None:
        await pacer.sleep_until(deadline)
        woke.append((deadline, now_ns()))

    with Pacer() as pacer:
        deadlines = [base + k * 700_000 for k in (5, 1, 4, 0, 3, 2)]
        await asyncio.gather(*(sleeper(pacer, d) for d in deadlines))
        await pacer.sleep_until(now_ns() - 1)  # past deadline: returns at once, no thread round trip
    assert [d for d, _ in woke] == sorted(deadlines)
    assert all(at >= d for d, at in woke)


async def test_a_spinning_pacer_never_returns_before_the_deadline() -> None:
    with Pacer() as pacer:
        for spin_ns in (1, 500_000, 10**9):  # shorter than the wait, and longer than all of it
            deadline = now_ns() + 2_000_000
            await pacer.sleep_until(deadline, spin_ns=spin_ns)
            assert now_ns() >= deadline


async def test_closing_the_pacer_releases_pending_sleepers() -> None:
    pacer = Pacer()
    far = asyncio.create_task(pacer.sleep_until(now_ns() + 3_600 * 10**9))
    await pacer.sleep_until(now_ns() + 1_000_000)  # the thread is running and the far sleeper queued
    pacer.close()
    await asyncio.wait_for(far, timeout=10)
    with pytest.raises(RuntimeError, match="closed"):
        await pacer.sleep_until(now_ns() + 10**9)


def test_progress_line_renders_counts_and_clears(tmp_path: Path) -> None:
    c = Counters(started_ns=0, sent=12, ok=9, failed=1, cancelled=0, in_flight=2, output_tokens=900)
    text = ProgressLine.render(c, 3 * 10**9)
    assert text.split() == [
        "3.0s",
        "sent",
        "12",
        "ok",
        "9",
        "failed",
        "1",
        "in",
        "flight",
        "2",
        "300",
        "tok/s",
    ]
    with (tmp_path / "err").open("w+", newline="") as stream:
        line = ProgressLine(stream)
        line.update(c)
        line.clear()
        stream.seek(0)
        assert stream.read().endswith("\r")
