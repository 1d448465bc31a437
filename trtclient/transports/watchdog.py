"""The read timeout of streamed bodies: one task per client looks at every open stream's last read,
instead of a timer re-armed on every packet."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from trtclient.timing import now_ns

__all__ = ["ReadWatchdog", "Watched"]


class Watched(Protocol):
    """An open streamed body: when it last read (``now_ns()``), and how to fail it for silence."""

    last_read_ns: int

    def expire(self) -> None:
        """The server has been silent too long: fail the pending read and drop the connection."""


class ReadWatchdog:
    """Fails streams that have been silent longer than ``timeout`` seconds: a silent stream fails
    within a quarter of the timeout (at most 1 s) after its deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout_ns = int(timeout * 1e9)
        self.interval = min(1.0, timeout / 4)
        self.sources: set[Watched] = set()
        self.task: asyncio.Task[None] | None = None

    def add(self, source: Watched) -> None:
        self.sources.add(source)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, source: Watched) -> None:
        self.sources.discard(source)

    async def _watch(self) -> None:
        try:
            while self.sources:
                await asyncio.sleep(self.interval)
                deadline = now_ns() - self.timeout_ns
                for source in [s for s in self.sources if s.last_read_ns < deadline]:
                    source.expire()
        finally:
            self.task = None

    async def stop(self) -> None:
        task = self.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
