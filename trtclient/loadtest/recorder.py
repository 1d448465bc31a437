"""The one writer of a request's record, shared by ``trtclient bench`` and the Locust user.

A :class:`RecordBuilder` is told, in order: :meth:`~RecordBuilder.dispatched` (handed to the wire),
:meth:`~RecordBuilder.opened` (the call's :class:`~trtclient.streaming.StreamHead`, which the transport
fills), every event (:meth:`~RecordBuilder.on_chunk`), then exactly one outcome:
:meth:`~RecordBuilder.succeeded`, :meth:`~RecordBuilder.failed` or :meth:`~RecordBuilder.cancelled`.
The outcome copies the head into the record, so ``sent_ns``, ``headers_ns``, ``http_status`` and
``arrival_clock`` mean the same on every path: ``sent_ns`` is when the request started going out
(None: never sent), even for a request that then failed.

Content events (text, or a positive ``num_output_tokens``) are timed as tokens, other events apart;
the engine's ``*_time_ns`` timestamps and the server's token counts are kept. :meth:`RecordBuilder.finish`
then sets the token counts with their provenance, best source first: server-reported, client tokenizer,
content events.
"""

from __future__ import annotations

from trtclient.errors import error_kind
from trtclient.loadtest.records import RequestRecord, Status, TokenSource
from trtclient.loadtest.workload import Prompt, TokenCounter
from trtclient.schema import StreamChunk
from trtclient.streaming import StreamHead
from trtclient.timing import now_ns

__all__ = ["ENGINE_FIELDS", "KV_CACHE_FIELDS", "MAX_MESSAGE", "RecordBuilder"]

#: Longest error message kept in a record.
MAX_MESSAGE = 500

ENGINE_FIELDS = ("arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns")
KV_CACHE_FIELDS = ("kv_cache_reused_blocks", "kv_cache_alloc_new_blocks", "kv_cache_alloc_total_blocks")


class RecordBuilder:
    """One request in flight: its record, the text received, the server's input count."""

    __slots__ = ("ended", "head", "prompt", "record", "server_input", "texts")

    def __init__(self, record: RequestRecord, prompt: Prompt) -> None:
        self.record = record
        self.prompt = prompt
        self.texts: list[str] = []
        self.server_input: int | None = None
        self.head: StreamHead | None = None
        self.ended = False

    def dispatched(self) -> None:
        """The request is handed to the client or connection now."""
        self.record.dispatched_ns = now_ns()

    def opened(self, head: StreamHead) -> None:
        """The head the transport fills for this request; read when the outcome is known."""
        self.head = head

    def succeeded(self) -> None:
        """The stream ended normally."""
        self._end("ok")

    def failed(self, exc: BaseException) -> None:
        """The request failed with ``exc``."""
        if self._end("failed"):
            record = self.record
            record.error_kind = error_kind(exc)
            record.error_message = str(exc)[:MAX_MESSAGE]
            if record.http_status is None:
                status = getattr(exc, "status_code", None)
                record.http_status = status if isinstance(status, int) and status else None

    def cancelled(self) -> None:
        """The run stopped while the request was in flight."""
        self._end("cancelled")

    def _end(self, status: Status) -> bool:
        """Stamp the end and copy the head, once: a later outcome (e.g. from closing) changes nothing."""
        if self.ended:
            return False
        self.ended = True
        record = self.record
        record.end_ns = now_ns()
        record.status = status
        head = self.head
        if head is not None:
            record.sent_ns = head.sent_ns or None
            record.headers_ns = head.headers_ns or None
            record.http_status = head.status_code or None
            if head.status_code or record.event_ns or record.other_event_ns:
                record.arrival_clock = head.arrival_clock
        return True

    def on_chunk(self, chunk: StreamChunk) -> None:
        """Account for one event of the stream (its arrival was stamped by the I/O layer)."""
        record, data = self.record, chunk.data
        produced = data.get("num_output_tokens")
        if produced.__class__ is not int:  # absent, or not an integer (a bool is not a count)
            produced = None
        if chunk.text or (produced is not None and produced > 0):
            record.event_ns.append(chunk.arrival_ns)
            if produced is not None:
                record.event_tokens.append(produced)
            self.texts.append(chunk.text)
        else:
            record.other_event_ns.append(chunk.arrival_ns)
        consumed = data.get("num_input_tokens")
        if consumed.__class__ is int:
            self.server_input = consumed
        engine = record.engine_ns
        for key in ENGINE_FIELDS:
            value = data.get(key)
            if value and value.__class__ is int:  # an integer, never a bool
                engine[key] = value
        if "kv_cache_alloc_total_blocks" in data:
            for key in KV_CACHE_FIELDS:
                value = data.get(key)
                if value.__class__ is int:  # an integer, never a bool
                    record.kv_cache[key] = value

    def finish(self, tokenizer: TokenCounter | None) -> None:
        """Fill the record's token counts, best source first: server, client tokenizer, content events."""
        record = self.record
        counts = record.token_counts
        counts["events_output"] = len(record.event_ns)
        if record.event_tokens and len(record.event_tokens) == len(record.event_ns):
            counts["server_output"] = sum(record.event_tokens)
        if tokenizer is not None:
            counts["tokenizer_output"] = tokenizer.count("".join(self.texts))
        for source in ("server", "tokenizer", "events"):
            key = f"{source}_output"
            if key in counts:
                record.output_tokens = counts[key]
                record.output_tokens_source = source
                break
        if self.server_input is not None:
            counts["server_input"] = self.server_input
        if self.prompt.input_tokens is not None:
            counts["tokenizer_input"] = self.prompt.input_tokens
        input_sources: tuple[TokenSource, ...] = ("server", "tokenizer")
        for input_source in input_sources:
            key = f"{input_source}_input"
            if key in counts:
                record.input_tokens = counts[key]
                record.input_tokens_source = input_source
                break
