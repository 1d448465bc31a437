"""Wake coroutines at absolute ``now_ns()`` deadlines without the event loop's millisecond granularity.

An asyncio timer fires on the loop's next ``epoll_wait``, whose timeout is rounded up to whole
milliseconds, so every ``asyncio.sleep`` can end up to ~1 ms late; pacing by relative sleeps then also
drifts (AIPerf PR #1185 measured ≥500 req/s under-delivering for this reason). :class:`Pacer` keeps one
thread that waits on a condition variable with a nanosecond-resolution timeout (``sem_clockwait``,
typically 50–100 µs late on Linux) and then wakes the loop through ``call_soon_threadsafe``, which
interrupts ``epoll_wait`` at once. Deadlines are absolute, so lateness never accumulates.

On a busy machine the two wake-ups (the timer thread's, then the loop's) can still take a millisecond or
more. ``sleep_until(deadline, spin_ns=...)`` therefore wakes ``spin_ns`` early and finishes by reading
the clock in a loop (the event loop is held for at most that long), which ends within microseconds of
the deadline whenever the wake-up was less than ``spin_ns`` late.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from types import TracebackType

from trtclient.timing import now_ns

__all__ = ["Pacer"]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Pacer:
    """A timer thread serving ``await pacer.sleep_until(deadline_ns)`` for one event loop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    async def sleep_until(self, deadline_ns: int, *, spin_ns: int = 0) -> None:
        """Return once ``now_ns()`` has reached ``deadline_ns`` (at once if it already has); with
        ``spin_ns``, wake that much early and busy-wait the rest."""
        if spin_ns > 0:
            await self._wait(deadline_ns - spin_ns)
            while now_ns() < deadline_ns:
                pass
            return
        await self._wait(deadline_ns)

    async def _wait(self, deadline_ns: int) -> None:
        if deadline_ns <= now_ns():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the pacer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="trtclient-pacer", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (deadline_ns, next(self._seq), loop, future))
            self._cond.notify()
        await future

    def close(self) -> None:
        """Stop the thread; pending sleepers are woken at once."""
        with self._cond:
            self._closed = True
            pending, self._heap = self._heap, []
            self._cond.notify()
        for _, _, loop, future in pending:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Pacer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - now_ns()
                if delay > 0:
                    self._cond.wait(delay / 1e9)
                    continue
                while self._heap and self._heap[0][0] <= now_ns():
                    _, _, loop, future = heapq.heappop(self._heap)
                    if not loop.is_closed():
                        loop.call_soon_threadsafe(_wake, future)
