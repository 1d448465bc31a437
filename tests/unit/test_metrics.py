"""Metric definitions, checked with small integer-nanosecond records (exact arithmetic)."""

from __future__ import annotations

import dataclasses

import pytest

from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord


def rec(
    *,
    index: int = 0,
    intended: int = 0,
    sent: int | None = 100,
    headers: int | None = 120,
    events: list[int] | None = None,
    end: int | None = 210,
    status: str = "ok",
    tokens: int | None = None,
    warmup: bool = False,
    kind: str | None = None,
    **extra: object,
) -> RequestRecord:
    ev = [150, 170, 200] if events is None else events
    return RequestRecord(
        index=index,
        intended_ns=intended,
        warmup=warmup,
        sent_ns=sent,
        headers_ns=headers,
        event_ns=ev,
        end_ns=end,
        status=status,  # type: ignore[arg-type]
        error_kind=kind,
        output_tokens=len(ev) if tokens is None else tokens,
        output_tokens_source="events",
        **extra,  # type: ignore[arg-type]
    )


def test_per_request_definitions() -> None:
    r = rec(intended=40)
    assert m.ttft_ns(r) == 50
    assert m.ttft_sched_ns(r) == 110
    assert m.tth_ns(r) == 20
    assert m.e2e_ns(r) == 110
    assert m.e2e_sched_ns(r) == 170
    assert m.itl_ns(r) == [20, 30]
    assert m.tpot_ns(r) == (110 - 50) / 2
    assert m.schedule_lag_ns(r) == 60


def test_tpot_uses_token_count_not_event_count() -> None:
    # 3 events carrying 7 tokens: TPOT spreads the decode time over 6 tokens, ITL stays per event
    r = rec(tokens=7)
    assert m.tpot_ns(r) == 60 / 6
    assert m.itl_ns(r) == [20, 30]


def test_undefined_metrics_are_none() -> None:
    assert m.tpot_ns(rec(events=[150], tokens=1)) is None
    assert m.ttft_ns(rec(events=[])) is None
    assert m.ttft_ns(rec(sent=None)) is None
    assert m.e2e_ns(rec(end=None)) is None
    assert m.itl_ns(rec(events=[150])) == []
    assert m.schedule_lag_ns(rec(sent=None)) is None


def test_engine_first_token_lag_uses_epoch_offset() -> None:
    r = rec(events=[1_000, 1_500], engine_ns={"first_token_time_ns": 10_900}, epoch_offset_ns=10_000)
    assert m.engine_first_token_lag_ns(r) == 100
    assert m.engine_first_token_lag_ns(rec()) is None


def test_percentile_interpolates_linearly() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert m.percentile(data, 50) == 2.5
    assert m.percentile(data, 90) == pytest.approx(3.7)
    assert m.percentile(data, 0) == 1.0
    assert m.percentile(data, 100) == 4.0
    assert m.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        m.percentile([], 50)
    with pytest.raises(ValueError):
        m.percentile(data, 101)


def test_summarize_population_std_and_order_independence() -> None:
    s = m.summarize([9, 2, 4, 4, 5, 4, 5, 7])
    assert s is not None
    assert (s.count, s.mean, s.std, s.min, s.max) == (8, 5.0, 2.0, 2, 9)
    assert s.p50 == 4.5
    assert s.scaled(0.5).mean == 2.5 and s.scaled(0.5).count == 8
    assert m.summarize([]) is None


def test_compute_metrics_counts_each_request_once_and_excludes_failures_from_latency() -> None:
    records = [
        rec(index=0, warmup=True, events=[5], end=9, intended=-100),
        rec(index=1, intended=0, sent=10, events=[30, 40, 50], end=60),
        rec(index=2, intended=20, sent=20, events=[70, 80], end=100, tokens=4),
        rec(index=3, intended=40, sent=45, events=[], end=300, status="failed", kind="http_503"),
        rec(index=4, intended=60, sent=60, events=[90], end=400, status="failed", kind="http_503"),
        rec(index=5, intended=80, sent=80, events=[], end=1_000, status="cancelled"),
    ]
    out = m.compute_metrics(records)
    assert out.counts == m.RequestCounts(sent=5, ok=2, failed=2, cancelled=1, warmup=1)
    assert out.failures == {"http_503": 2}
    assert out.window_ns == 1_000 - 0
    assert out.ttft is not None and out.ttft.count == 2 and out.ttft.mean == (20 + 50) / 2
    assert out.itl is not None and sorted([out.itl.min, out.itl.max]) == [10, 10] and out.itl.count == 3
    assert out.tpot is not None and out.tpot.count == 2
    assert out.tpot.mean == ((50 - 20) / 2 + (80 - 50) / 3) / 2
    assert out.requests_per_s == pytest.approx(2 / 1e-6)
    assert out.output_tokens_per_s == pytest.approx((3 + 4) / 1e-6)
    # schedule lag covers every measured request that was sent, failed ones included
    assert out.schedule_lag is not None and out.schedule_lag.count == 5 and out.schedule_lag.max == 10


def test_goodput_counts_requests_meeting_every_slo() -> None:
    records = [
        rec(index=0, intended=0, sent=0, events=[10, 20], end=30),  # ttft 10, tpot 20
        rec(index=1, intended=0, sent=0, events=[50, 60], end=70),  # ttft 50, tpot 20
        rec(index=2, intended=0, sent=0, events=[5], end=100, tokens=1),  # tpot undefined -> met
    ]
    out = m.compute_metrics(records, {"ttft": 40, "tpot": 25})
    assert out.good_requests == 2
    assert out.goodput_per_s == pytest.approx(2 / 100e-9)
    assert m.compute_metrics(records).good_requests is None
    with pytest.raises(ValueError, match="no SLO metric named itl"):
        m.compute_metrics(records, {"itl": 1})


def test_length_check_and_token_disagreements() -> None:
    records = [
        rec(index=0, tokens=3, requested_output_tokens=3, forced_output_tokens=True),
        rec(index=1, tokens=2, requested_output_tokens=3, forced_output_tokens=True),
        rec(index=2, tokens=2, requested_output_tokens=3, forced_output_tokens=False),
        rec(index=3, token_counts={"server_output": 3, "events_output": 3}),
        rec(index=4, token_counts={"server_output": 5, "events_output": 3, "tokenizer_output": 5}),
        rec(index=5, token_counts={"server_input": 9, "tokenizer_input": 8}),  # the server added a BOS
    ]
    out = m.compute_metrics(records)
    assert out.length_check == m.LengthCheck(checked=2, mismatched=1, examples=[(1, 3, 2)])
    assert out.token_disagreements == {
        "server_output vs events_output": (2, 1),
        "server_output vs tokenizer_output": (1, 0),
        "server_input vs tokenizer_input": (1, 1),
    }


def test_empty_run_has_zero_rates() -> None:
    out = m.compute_metrics([])
    assert out.counts.sent == 0 and out.requests_per_s == 0.0 and out.ttft is None and out.window_ns == 0


def test_token_rate_series_places_tokens_at_their_events() -> None:
    a = rec(events=[0, 10, 25], tokens=3)
    b = rec(events=[5, 15], tokens=4)  # 2 tokens per event, spread evenly
    c = rec(events=[12], event_tokens=[5], tokens=5)  # the server's per-event count wins
    failed = rec(events=[1, 2], status="failed")
    series = m.token_rate_series([a, b, c, failed], 0, 30, 10)
    seconds = 10 / 1e9
    assert series == [pytest.approx(v / seconds) for v in (1 + 2, 1 + 5 + 2, 1)]


def test_inflight_series_averages_over_each_step() -> None:
    a = rec(sent=0, end=25)  # full steps 0 and 1, half of step 2
    b = rec(sent=5, end=10)  # half of step 0
    c = rec(sent=10, end=None)  # still running at the end of the window: steps 1 to 3
    unsent = rec(sent=None)
    assert m.inflight_series([a, b, c, unsent], 0, 40, 10) == [1.5, 2.0, 1.5, 1.0]
    with pytest.raises(ValueError):
        m.inflight_series([a], 0, 10, 0)


def test_definitions_cover_every_summary_metric() -> None:
    summaries = {f.name for f in dataclasses.fields(m.RunMetrics) if f.type == "Summary | None"}
    assert "first_token_lag" in summaries and "input_tokens" in summaries
    assert summaries - {"input_tokens", "output_tokens"} <= set(m.DEFINITIONS)
