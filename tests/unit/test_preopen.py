"""Connections opened before the load: how many each shape needs, and that they are opened at once.

The client here is a tiny fake counting concurrent probes (a real pool's reuse is covered by the demo's
schedule lag in ``tests/integration/test_ci_gates.py``)."""

from __future__ import annotations

import asyncio

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


class Probes:
    def __init__(self) -> None:
        self.in_flight = self.peak = self.calls = 0

    async def is_server_ready(self) -> bool:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        if self.calls == 2:
            raise OSError("refused")  # a failure is left for the run to report
        return True


async def test_probes_are_concurrent_so_each_takes_its_own_connection() -> None:
    probes = Probes()
    await open_connections(probes, 5)
    assert probes.calls == 5 and probes.peak == 5
