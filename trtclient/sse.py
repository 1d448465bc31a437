"""Incremental decoder of server-sent events: bytes in, events out, no I/O.

Triton's ``/generate_stream`` sends one ``data: <json>\\n\\n`` event per model response, with no
``event:``/``id:`` lines and no ``[DONE]`` sentinel (server ``docs/protocol/extension_generate.md``).
The decoder still follows the whole WHATWG event-stream grammar (``\\r\\n``, ``\\r`` and ``\\n`` line
ends, split anywhere across reads, comments, multi-line data, ``event``/``id``/``retry`` fields), and
keeps a fast path for Triton's shape.

Each event carries the arrival time of the read that brought its first byte: the I/O layer stamps
every read with ``trtclient.timing.now_ns()`` before handing it to :meth:`SSEDecoder.feed`.
"""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"


class SSEEvent:
    """One dispatched event: ``data`` as raw bytes (lines joined with ``\\n``) plus its arrival stamp."""

    __slots__ = ("arrival_ns", "data", "event", "id", "retry")

    def __init__(
        self,
        data: bytes,
        arrival_ns: int,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        self.data = data
        self.arrival_ns = arrival_ns
        self.event = event
        self.id = id
        self.retry = retry

    def __repr__(self) -> str:
        return f"SSEEvent(data={self.data[:60]!r}, event={self.event!r}, arrival_ns={self.arrival_ns})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return (self.data, self.event, self.id, self.retry, self.arrival_ns) == (
            other.data,
            other.event,
            other.id,
            other.retry,
            other.arrival_ns,
        )

    __hash__ = None  # type: ignore[assignment]


class SSEDecoder:
    """Turn the body of an event stream, fed in arbitrary pieces, into :class:`SSEEvent` objects."""

    __slots__ = ("_buf", "_cr_mode", "_pending_cr", "_start_ns", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._start_ns = 0
        self._cr_mode = False
        self._pending_cr = False
        self._started = False

    def feed(self, chunk: bytes, arrival_ns: int) -> list[SSEEvent]:
        """Add the bytes of one read (stamped ``arrival_ns``) and return the events it completed."""
        if not self._started:
            if not chunk:
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if self._cr_mode or b"\r" in chunk:
            chunk = self._normalize(chunk)
        old = self._buf
        if not old:
            # Fast path: the read is exactly one Triton event, "data: <json>\n\n".
            end = chunk.find(b"\n")
            if end == len(chunk) - 2 and end > 6 and chunk[end + 1] == 10 and chunk[:6] == b"data: ":
                return [SSEEvent(chunk[6:end], arrival_ns)]
            buf = chunk
            start = arrival_ns
        else:
            buf = old + chunk
            start = self._start_ns
        blocks = buf.split(b"\n\n")
        rest = blocks.pop()
        events: list[SSEEvent] = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                events.append(SSEEvent(block[6:], start))
            elif block:
                event = _parse_block(block, start)
                if event is not None:
                    events.append(event)
            start = arrival_ns
        if rest[:1] == b"\n":
            rest = rest.lstrip(b"\n")  # blank lines after a dispatched event change nothing
        self._start_ns = start
        self._buf = rest
        return events

    @property
    def idle(self) -> bool:
        """True when the decoder holds nothing and has seen the stream's first bytes: a chunk that
        is exactly one ``data: <line>\\n\\n`` event (no ``\\r``) is then that event, whole."""
        return self._started and not self._buf and not self._cr_mode

    def single(self, chunk: bytes) -> bytes | None:
        """The data of ``chunk`` when it is exactly one Triton-shaped event (``data: <line>\\n\\n``)
        and nothing is buffered: the decoder is then as if ``chunk`` had been fed. None otherwise,
        with nothing changed (feed the chunk instead)."""
        if self._buf or self._cr_mode or not self._started:
            return None
        end = len(chunk) - 2
        if chunk[:6] == b"data: " and chunk.find(b"\n") == end > 6 and chunk[-1] == 10 and b"\r" not in chunk:
            return chunk[6:end]
        return None

    def finish(self) -> bytes:
        """End of stream: return the bytes of an unterminated event (``b""`` when there is none).

        The event-stream grammar discards an event that has no closing blank line; a caller that
        cares (a truncated response loses its last token) can treat non-empty leftovers as an error.
        """
        rest = self._buf.strip()
        self._buf = b""
        return rest

    @property
    def pending(self) -> bool:
        """True while part of an event is buffered."""
        return bool(self._buf.strip())

    def _normalize(self, chunk: bytes) -> bytes:
        """Map ``\\r\\n`` and lone ``\\r`` to ``\\n``, also when the pair is split across two reads."""
        self._cr_mode = True
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = chunk[-1:] == b"\r"
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _parse_block(block: bytes, arrival_ns: int) -> SSEEvent | None:
    """Parse the lines of one event (no blank line inside); ``None`` when it carries no data."""
    data: list[bytes] = []
    event: str | None = None
    event_id: str | None = None
    retry: int | None = None
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            retry = int(value)
    if not data:
        return None
    return SSEEvent(b"\n".join(data), arrival_ns, event, event_id, retry)
