"""The incremental SSE decoder: Triton's framing, the full grammar, and reads split anywhere."""

from __future__ import annotations

import itertools

import pytest

from trtclient.sse import SSEDecoder, SSEEvent

TRITON_BODY = (
    b'data: {"model_name":"ensemble","text_output":" Machine"}\n\n'
    b'data: {"model_name":"ensemble","text_output":" learning"}\n\n'
    b'data: {"model_name":"ensemble","text_output":" is"}\n\n'
)
TRITON_DATA = [
    b'{"model_name":"ensemble","text_output":" Machine"}',
    b'{"model_name":"ensemble","text_output":" learning"}',
    b'{"model_name":"ensemble","text_output":" is"}',
]


def decode_in_pieces(body: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    edges = [0, *cuts, len(body)]
    for stamp, (start, end) in enumerate(itertools.pairwise(edges)):
        events.extend(decoder.feed(body[start:end], stamp))
    assert decoder.finish() == b""
    return events


def test_triton_stream_in_one_read() -> None:
    events = SSEDecoder().feed(TRITON_BODY, 7)
    assert [e.data for e in events] == TRITON_DATA
    assert [e.arrival_ns for e in events] == [7, 7, 7]
    assert all(e.event is None and e.id is None for e in events)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_two_way_split_gives_the_same_events(newline: bytes) -> None:
    body = TRITON_BODY.replace(b"\n", newline)
    for cut in range(len(body) + 1):
        events = decode_in_pieces(body, [cut])
        assert [e.data for e in events] == TRITON_DATA, f"split at {cut}"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_byte_by_byte(newline: bytes) -> None:
    body = TRITON_BODY.replace(b"\n", newline)
    events = decode_in_pieces(body, list(range(1, len(body))))
    assert [e.data for e in events] == TRITON_DATA


def test_crlf_pair_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r", 1) == []
    # "\r" then "\n" is one line end; the next lone "\r" is already the blank line.
    assert [e.data for e in decoder.feed(b"\n\r", 2)] == [b"a"]
    # The "\n" completing that last "\r\n" must not count as another blank line or a line of its own.
    events = decoder.feed(b"\ndata: b\r\n\r\n", 3)
    assert [(e.data, e.arrival_ns) for e in events] == [(b"b", 3)]


def test_arrival_is_the_read_that_brought_the_first_byte() -> None:
    decoder = SSEDecoder()
    first = decoder.feed(b"data: a\n\ndata: b", 100)
    assert [(e.data, e.arrival_ns) for e in first] == [(b"a", 100)]
    second = decoder.feed(b"\n\ndata: c\n\n", 200)
    assert [(e.data, e.arrival_ns) for e in second] == [(b"b", 100), (b"c", 200)]
    assert decoder.feed(b"da", 300) == []
    third = decoder.feed(b"ta: d\n\n", 400)
    assert [(e.data, e.arrival_ns) for e in third] == [(b"d", 300)]


def test_blank_lines_between_events_do_not_move_the_stamp_back() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.feed(b"data: a\n\n\n", 1)] == [b"a"]
    events = decoder.feed(b"data: b\n\n", 2)
    assert [(e.data, e.arrival_ns) for e in events] == [(b"b", 2)]


def test_full_grammar_fields_comments_and_multiline_data() -> None:
    body = (
        b": a comment line\n"
        b"event: token\n"
        b"id: 42\n"
        b"retry: 1500\n"
        b"data: first line\n"
        b"data:second line\n"
        b"unknown: ignored\n"
        b"\n"
        b"data\n"
        b"\n"
        b"event: no-data-so-no-dispatch\n"
        b"\n"
    )
    events = SSEDecoder().feed(body, 5)
    assert len(events) == 2
    assert events[0] == SSEEvent(b"first line\nsecond line", 5, "token", "42", 1500)
    assert events[1].data == b""


def test_id_with_nul_and_non_numeric_retry_are_ignored() -> None:
    events = SSEDecoder().feed(b"id: a\0b\nretry: soon\ndata: x\n\n", 0)
    assert events[0].id is None
    assert events[0].retry is None


def test_leading_bom_is_dropped_once() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"\xef\xbb\xbfdata: a\n\n", 0)
    events += decoder.feed(b"\xef\xbb\xbfdata: b\n\n", 1)
    # Only the stream's very first bytes may be a BOM; later it is part of a field name.
    assert [e.data for e in events] == [b"a"]


def test_unterminated_event_is_reported_by_finish() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"text_output":"a"}\n\ndata: {"text_out', 0) != []
    assert decoder.pending
    assert decoder.finish() == b'data: {"text_out'
    assert not decoder.pending


def test_clean_end_leaves_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(TRITON_BODY + b"\n\n", 0)
    assert not decoder.pending
    assert decoder.finish() == b""


def test_empty_reads_and_blank_only_body_give_no_events() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"", 0) == []
    assert decoder.feed(b"\n\n\r\n", 1) == []
    assert decoder.finish() == b""
