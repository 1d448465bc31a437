"""One streamed request of a Locust user over its connection, written to its record by the shared
:class:`~trtclient.loadtest.recorder.RecordBuilder`: the same calls, in the same order, as the bench runner
makes, so every record field means the same in both tools. Imports gevent but not locust (tests load it
without monkey-patching).
"""

from __future__ import annotations

import gevent

from trtclient.loadtest.recorder import RecordBuilder
from trtclient.streaming import StreamHead, StreamState, TextMode
from trtclient.transports.socket_stream import Connection

__all__ = ["exchange"]


def exchange(
    connection: Connection, path: str, body: bytes, text_mode: TextMode, live: RecordBuilder
) -> None:
    """One streamed request over the user's connection, written to its record by ``live`` exactly as
    ``trtclient bench`` writes its records; raises what the request failed with."""
    head = StreamHead()
    live.opened(head)
    try:
        connection.stream(path, body, head, StreamState(text_mode), live.on_chunk)
    except gevent.GreenletExit:
        live.cancelled()
        raise
    except Exception as exc:
        live.failed(exc)
        raise
    live.succeeded()
