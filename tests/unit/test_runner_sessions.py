"""The runner's conversation loop, driven by a scripted fake client: each turn carries the history and
the previous answer, waits for the think time, and a failed turn ends its conversation."""

from __future__ import annotations

from collections.abc import Iterator

from test_runner import FakeClient, Step

from trtclient import errors
from trtclient.bench.runner import RunConfig, Runner
from trtclient.loadtest.schedule import Concurrency, Stop
from trtclient.loadtest.sessions import Conversation
from trtclient.loadtest.workload import Prompt


class TwoTurnChats:
    description = "two-turn chats"

    def __init__(self, think_time_s: float) -> None:
        self.think_time_s = think_time_s

    def conversations(self) -> Iterator[Conversation]:
        n = 0
        while True:
            yield Conversation(f"c{n}", [(f"q{n}a", 2), (f"q{n}b", 2)])
            n += 1

    def prompts(self) -> Iterator[Prompt]:
        return iter(())  # a conversational workload is driven through conversations()


async def test_turns_carry_the_history_and_wait_for_the_think_time() -> None:
    client = FakeClient([(" A1", {})])
    runner = Runner(client, TwoTurnChats(0.05), RunConfig(Concurrency(1), Stop(requests=4)))
    result = await runner.run()
    texts = [r.text_input for r in client.requests]
    assert texts == ["q0a", "q0a A1\nq0b", "q1a", "q1a A1\nq1b"]
    records = sorted(result.records, key=lambda r: r.index)
    assert [r.turn for r in records] == [1, 2, 1, 2]
    assert [r.session for r in records] == ["c0", "c0", "c1", "c1"]
    for before, after in zip(records, records[1:], strict=False):
        assert before.end_ns is not None and after.intended_ns >= before.end_ns + 50_000_000


async def test_a_failed_turn_ends_its_conversation() -> None:
    script: list[Step] = [errors.TritonStreamError("boom")]
    client = FakeClient(script)
    runner = Runner(client, TwoTurnChats(0.0), RunConfig(Concurrency(1), Stop(requests=3)))
    result = await runner.run()
    assert [r.text_input for r in client.requests] == ["q0a", "q1a", "q2a"]
    assert all(r.status == "failed" and r.turn == 1 for r in result.records)
