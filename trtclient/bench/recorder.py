"""Filling one request's record from its stream — shared by ``trtclient bench`` and the Locust user.

A :class:`RecordBuilder` sees every event of one request as it arrives: content events (text, or a
positive ``num_output_tokens``) are timed as tokens, other events apart; the engine's ``*_time_ns``
timestamps and the server's token counts are kept. :meth:`RecordBuilder.finish` then sets the token counts
with their provenance, best source first: server-reported, client tokenizer, content events.
"""

from __future__ import annotations

from trtclient.bench.workload import Prompt, TokenCounter
from trtclient.records import RequestRecord, TokenSource
from trtclient.schema import StreamChunk

__all__ = ["ENGINE_FIELDS", "RecordBuilder"]

ENGINE_FIELDS = ("arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns")


def _count(value: object) -> int | None:
    """An integer field of a response, or None when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class RecordBuilder:
    """One request in flight: its record, the text received, the server's input count."""

    __slots__ = ("prompt", "record", "server_input", "texts")

    def __init__(self, record: RequestRecord, prompt: Prompt) -> None:
        self.record = record
        self.prompt = prompt
        self.texts: list[str] = []
        self.server_input: int | None = None

    def on_chunk(self, chunk: StreamChunk) -> None:
        """Account for one event of the stream (its arrival was stamped by the I/O layer)."""
        record, data = self.record, chunk.data
        produced = _count(data.get("num_output_tokens"))
        if chunk.text or (produced is not None and produced > 0):
            record.event_ns.append(chunk.arrival_ns)
            if produced is not None:
                record.event_tokens.append(produced)
            self.texts.append(chunk.text)
        else:
            record.other_event_ns.append(chunk.arrival_ns)
        consumed = _count(data.get("num_input_tokens"))
        if consumed is not None:
            self.server_input = consumed
        for key in ENGINE_FIELDS:
            value = _count(data.get(key))
            if value:
                record.engine_ns[key] = value

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
