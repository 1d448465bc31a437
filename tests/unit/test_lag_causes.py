"""The schedule-lag warning is kept for client lag and replaced by a note for a ceiling or a first wave.

Records are built by hand here: the causes are told apart by their stamps alone."""

from __future__ import annotations

from trtclient.bench.lag_causes import explain_lag
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Concurrency, Rate

MS = 1_000_000
WARNING = "schedule lag p99 is 40.0 ms: requests left later than planned, ..."
CPU = "the client used 0.90 CPU cores: ..."


def record(index: int, lag_ms: float, held_ms: float = 0.0) -> RequestRecord:
    intended = index * 100 * MS
    dispatched = intended + int(held_ms * MS)
    return RequestRecord(
        index, intended, dispatched_ns=dispatched, sent_ns=intended + int(lag_ms * MS), status="ok"
    )


def test_a_ceiling_that_held_arrivals_back_is_named() -> None:
    records = [record(i, 40, held_ms=38) for i in range(10)]
    warnings, notes = explain_lag(Rate(5.0, max_concurrency=2), records, [CPU, WARNING])
    assert warnings == [CPU]
    assert len(notes) == 1 and "--max-concurrency 2 ceiling held arrivals back" in notes[0]


def test_lag_without_waiting_for_the_ceiling_stays_a_warning() -> None:
    records = [record(i, 40, held_ms=0) for i in range(10)]
    assert explain_lag(Rate(5.0, max_concurrency=2), records, [WARNING]) == ([WARNING], [])


def test_a_closed_loops_first_wave_is_start_up_and_later_lag_still_warns() -> None:
    first_wave_only = [record(i, 40 if i < 4 else 1) for i in range(12)]
    warnings, notes = explain_lag(Concurrency(4), first_wave_only, [WARNING])
    assert warnings == [] and "the first wave (4 requests at once)" in notes[0]
    lagging_later = [record(i, 40) for i in range(12)]
    assert explain_lag(Concurrency(4), lagging_later, [WARNING]) == ([WARNING], [])


def test_no_warning_no_note() -> None:
    assert explain_lag(Concurrency(4), [record(i, 1) for i in range(8)], [CPU]) == ([CPU], [])
