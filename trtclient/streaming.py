"""Streamed responses, I/O-free: how the text arrives (``TextMode``), the bookkeeping of one stream
(``StreamState``: event count, deltas, end-of-stream checks) and the chunks of the events one read
completed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any, Literal

from trtclient import errors
from trtclient.schema import StreamChunk
from trtclient.sse import SSEEvent

__all__ = [
    "ArrivalClock",
    "StreamHead",
    "StreamState",
    "TextMode",
    "chunks_from_events",
    "text_mode_from_config",
]


#: The JSON module's object scanner (its C version where CPython has one), called directly: an event's
#: object is read in one call, without ``json.loads``' encoding detection and wrapper frames.
_scan_json: Callable[[str, int], tuple[Any, int]] = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]

TextMode = Literal["delta", "cumulative"]
"""How a model streams its text: each event's new text (``delta``) or all of it so far (``cumulative``)."""

ArrivalClock = Literal["kernel", "read"]
"""What stamped the arrival of streamed events: the kernel's receive time of their bytes
(``SO_TIMESTAMPNS``, :mod:`trtclient.rxstamp`) or the client reading them."""


@dataclass(slots=True)
class StreamHead:
    """What is known of one streamed call before its first event. One writer: the transport fills it
    (and only it); the stream, the recorder and the user read it.

    ``url``: where the request went (credentials included; redact before showing). ``sent_ns``: the
    request started going out on the wire (0: never), kept even when the call then fails.
    ``headers_ns``: the response head arrived (0: never). ``status_code``: the answer's status (0: none).
    ``headers``: the response headers, credentials redacted. ``arrival_clock``: what stamps event
    arrivals; a transport may downgrade it to ``"read"`` mid-stream, never upgrade it.
    """

    url: str = ""
    sent_ns: int = 0
    headers_ns: int = 0
    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    arrival_clock: ArrivalClock = "read"

    def clear(self) -> None:
        """Back to "nothing known yet", for the next attempt of the same call."""
        self.url = ""
        self.sent_ns = self.headers_ns = self.status_code = 0
        self.headers = {}
        self.arrival_clock = "read"


def text_mode_from_config(config: Mapping[str, Any]) -> TextMode:
    """Cumulative for a BLS model configured with ``accumulate_tokens`` true, delta otherwise.

    The ensemble streams each event's new tokens; ``tensorrt_llm_bls`` with accumulate_tokens
    decodes everything so far into every event (``triton-protocol.md`` §2.5).
    """
    parameters = config.get("parameters") or {}
    entry = parameters.get("accumulate_tokens") if isinstance(parameters, Mapping) else None
    if isinstance(entry, Mapping):
        value = str(entry.get("string_value", "")).strip().lower()
        if value in ("true", "1", "yes"):
            return "cumulative"
    return "delta"


class StreamState:
    """Bookkeeping of one streamed response: event count, errors, and deltas of the text.

    ``cumulative`` streams (BLS with accumulate_tokens) repeat the whole text so far in each event;
    they are turned into deltas per sequence_index so ``chunk.text`` always means "text added".
    """

    __slots__ = ("_full", "_parts", "count", "cumulative", "first_arrival_ns", "last_arrival_ns", "url")

    def __init__(self, text_mode: TextMode = "delta", url: str = "") -> None:
        self.cumulative = text_mode == "cumulative"
        self.count = 0
        self.first_arrival_ns = 0
        self.last_arrival_ns = 0
        self.url = url
        self._parts: dict[int, list[str]] = {}
        self._full: dict[int, str] = {}

    def chunk_from_event(self, event: SSEEvent) -> StreamChunk:
        """Parse one SSE event into a chunk, or raise for an error event / invalid JSON."""
        return self.chunk_from_bytes(event.data, event.arrival_ns)

    def chunk_from_bytes(self, raw: bytes, arrival_ns: int) -> StreamChunk:
        """Parse one event's data bytes into a chunk, or raise for an error event / invalid JSON."""
        try:
            text = raw.decode()
            data, end = _scan_json(text, 0)
            if end != len(text):
                raise ValueError("more than one JSON value")
        except (ValueError, UnicodeDecodeError, StopIteration):
            data = _parse_slowly(raw)  # json.loads' rules: whitespace around the value, UTF-16/32
        if data is _INVALID:
            raise errors.InvalidJSONError(
                f"event {self.count} of the stream is not valid JSON: {raw[:120]!r}",
                url=self.url,
                events_received=self.count,
            ) from None
        if type(data) is not dict:
            raise errors.InvalidJSONError(
                f"event {self.count} of the stream is not a JSON object: {raw[:120]!r}",
                url=self.url,
                events_received=self.count,
            )
        return self.chunk_from_data(data, raw, arrival_ns)

    def chunk_from_data(self, data: dict[str, Any], raw: bytes | None, arrival_ns: int) -> StreamChunk:
        """Turn one response's fields into a chunk (shared by HTTP and gRPC)."""
        if "error" in data:
            raise errors.TritonStreamError(str(data["error"]), url=self.url, events_received=self.count)
        value = data.get("text_output")
        if value.__class__ is not str:
            value = (value[0] if value else "") if isinstance(value, list) else ""
        key = data.get("sequence_index", 0)
        if key.__class__ is not int:
            key = 0
        if self.cumulative:
            text = self._delta_of_cumulative(key, value)
        else:
            text = value
            parts = self._parts.get(key)
            if parts is None:
                self._parts[key] = [value]
            else:
                parts.append(value)
        chunk = StreamChunk(text, data, raw, arrival_ns, self.count)
        if not self.count:
            self.first_arrival_ns = arrival_ns
        self.last_arrival_ns = arrival_ns
        self.count += 1
        return chunk

    def _delta_of_cumulative(self, key: int, full: str) -> str:
        previous = self._full.get(key, "")
        self._full[key] = full
        if full.startswith(previous):
            return full[len(previous) :]
        common = 0
        for a, b in zip(previous, full, strict=False):
            if a != b:
                break
            common += 1
        return full[common:]

    def finish(self, leftover: bytes = b"") -> None:
        """End of stream: a truncated event or no event at all is an error."""
        if leftover:
            raise errors.MalformedStreamError(
                f"the stream ended in the middle of an event: {leftover[:120]!r}",
                url=self.url,
                events_received=self.count,
            )
        if self.count == 0:
            raise errors.EmptyStreamError(
                "the server answered 200 but the stream ended without a single event; Triton does "
                "this when a required input (text_input, max_tokens) is missing and an optional "
                "one makes up the input count",
                url=self.url,
            )

    def text(self, sequence_index: int = 0) -> str:
        """The full text of one sequence so far."""
        if self.cumulative:
            return self._full.get(sequence_index, "")
        return "".join(self._parts.get(sequence_index, ()))

    def sequences(self) -> list[int]:
        """The sequence indexes seen so far, in order."""
        return sorted(self._full if self.cumulative else self._parts)


_INVALID = object()


def _parse_slowly(raw: bytes) -> Any:
    """``json.loads`` of an event the fast scan refused; ``_INVALID`` when it is not valid JSON."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _INVALID


def chunks_from_events(
    state: StreamState, events: list[SSEEvent]
) -> tuple[list[StreamChunk], errors.TritonError | None]:
    """The chunks of the events one read completed, and the error to raise on the next read.

    An event that fails after good ones leaves them to be delivered first; one that fails first raises.
    """
    chunks: list[StreamChunk] = []
    chunk_from_event = state.chunk_from_event
    for event in events:
        try:
            chunks.append(chunk_from_event(event))
        except errors.TritonError as exc:
            if not chunks:
                raise
            return chunks, exc
    return chunks, None
