"""Connections opened before the load: how many each shape needs, and that they are opened at once.

The client here is a tiny fake (the raw streams' pool opening them at once is in
``transports/test_raw_stream.py``; a real pool's reuse is covered by the demo's schedule lag in
``tests/integration/test_ci_gates.py``)."""

from __future__ import annotations

import pytest

from trtclient.bench.preopen import MAX_PREOPEN, connections_needed, open_connections
from trtclient.loadtest.schedule import Burst, Concurrency, Rate


@pytest.mark.parametrize(
    ("shape", "n"),
    [(Burst(20), 20), (Concurrency(8), 8), (Rate(5.0), 0), (Rate(5.0, max_concurrency=4), 4),
     (Burst(10_000), MAX_PREOPEN)],
)  # fmt: skip
def test_connections_needed(shape: object, n: int) -> None:
    assert connections_needed(shape) == n  # type: ignore[arg-type]


class Opener:
    def __init__(self) -> None:
        self.asked: list[int] = []

    async def open_connections(self, n: int) -> None:
        self.asked.append(n)


async def test_the_client_is_asked_for_all_the_connections_at_once() -> None:
    opener = Opener()
    await open_connections(opener, 5)
    await open_connections(opener, 0)  # nothing to open: the client is not asked
    assert opener.asked == [5]
