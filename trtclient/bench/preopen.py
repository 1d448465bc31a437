"""Connections opened before the load starts, so no request of a burst pays for a TCP connect.

Without it, the 20 requests of the tutorial's burst each open their connection at the moment they
are due: the event loop runs the twenty connects one after the other, the last request leaves about
30 ms late, and the report rightly warns of schedule lag the client caused. :func:`open_connections`
has the client open ``n`` connections at once first (:meth:`trtclient.AsyncTritonClient.open_connections`:
its raw streams' own connections, or concurrent health probes through aiohttp's pool); they wait idle
in the client's keep-alive pool, where the run's requests find them.

Only the HTTP transport has a pool to fill (gRPC multiplexes every stream over one channel).

A server that has served nothing yet takes about 20 ms longer over its first request (a cold path in
Triton's pipeline), which would land in the first measured request. :func:`prime_fresh_server` sends
one unmeasured request first when the model's statistics say it has never run.
"""

from __future__ import annotations

from typing import Any, Protocol

from trtclient.loadtest.schedule import Burst, Concurrency, LoadShape, Rate

__all__ = ["MAX_PREOPEN", "Prober", "connections_needed", "open_connections", "prime_fresh_server"]

#: At most this many connections are opened ahead (a larger burst opens the rest as it goes).
MAX_PREOPEN = 256


class Prober(Protocol):
    """The part of the async client used here."""

    async def open_connections(self, n: int) -> None: ...


def connections_needed(shape: LoadShape) -> int:
    """Requests the shape can have in flight at its start: a burst's size, a closed loop's
    concurrency, an open loop's ``max_concurrency`` (0 without one: its arrivals are spread out)."""
    if isinstance(shape, Burst):
        wanted = shape.size
    elif isinstance(shape, Concurrency):
        wanted = shape.concurrency
    elif isinstance(shape, Rate):
        wanted = shape.max_concurrency or 0
    else:  # a trace replay: its arrivals are spread out like an open loop's
        wanted = 0
    return min(wanted, MAX_PREOPEN)


async def open_connections(client: Prober, n: int) -> None:
    """Open ``n`` keep-alive connections at once (failures are left for the run to report)."""
    if n > 0:
        await client.open_connections(n)


async def prime_fresh_server(client: Any, model: str, request: Any) -> bool:
    """One unmeasured streamed request when ``model`` has served none yet; True when one was sent.

    A server whose statistics cannot be read is left alone (the run reports what it finds).
    """
    try:
        stats = await client.model_statistics(model)
    except Exception:  # statistics are optional (restricted APIs, gRPC-only proxies)
        return False
    if not stats or any(s.inference_count for s in stats):
        return False
    try:
        async with client.generate_stream(request) as stream:
            async for _ in stream:
                pass
    except Exception:  # a failing warm-up request is left for the measured ones to report
        return True
    return True
