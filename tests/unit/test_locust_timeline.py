"""The live chart's series (``locustfiles/trtlocust/_timeline.py``): TTFT percentiles of what reached the
statistics between two points, output tokens/s by the second tokens arrived, a new series per test.
Imported without locust or gevent; records are built from exact integer nanoseconds."""

from __future__ import annotations

import pytest
from trtlocust import _stats as ts
from trtlocust._timeline import Timeline, bucket_percentile_ms

from trtclient.loadtest.records import RequestRecord

T0 = 1_700_000_000  # an epoch second


def rec(ttft_ms: int, first_s: int = 0, gaps_ms: tuple[int, ...] = ()) -> RequestRecord:
    """A successful request sent at T0 + first_s - ttft, first event ttft later, then gaps."""
    first = (T0 + first_s) * 1_000_000_000
    sent = first - ttft_ms * 1_000_000
    events = [first]
    for gap in gaps_ms:
        events.append(events[-1] + gap * 1_000_000)
    return RequestRecord(
        index=0,
        intended_ns=sent,
        sent_ns=sent,
        end_ns=events[-1],
        event_ns=events,
        status="ok",
        output_tokens=len(events),
        epoch_offset_ns=0,
    )


def test_percentile_of_buckets_is_the_nearest_rank_in_ms() -> None:
    assert bucket_percentile_ms({}, 50) is None
    buckets = {10_000: 9, 200_000: 1}  # microseconds
    assert bucket_percentile_ms(buckets, 50) == 10.0
    assert bucket_percentile_ms(buckets, 90) == 10.0
    assert bucket_percentile_ms(buckets, 95) == 200.0


def test_points_hold_the_ttft_of_what_arrived_since_the_previous_point() -> None:
    stats = ts.RunStats()
    timeline = Timeline(interval_s=2)
    for _ in range(19):
        stats.add_record(rec(20))
    stats.add_record(rec(300))
    timeline.sample(stats, T0 + 2.5)
    for _ in range(4):
        stats.add_record(rec(50, first_s=2))
    timeline.sample(stats, T0 + 4.5)
    timeline.sample(stats, T0 + 6.5)  # nothing new
    points = timeline.series(stats)["points"]
    assert [p["ttft_count"] for p in points] == [20, 4, 0]
    assert (points[0]["ttft_p50_ms"], points[0]["ttft_p95_ms"]) == (20.0, 20.0)
    assert (points[1]["ttft_p50_ms"], points[1]["ttft_p95_ms"]) == (50.0, 50.0)
    assert points[2]["ttft_p50_ms"] is None and points[2]["ttft_p95_ms"] is None
    assert [p["t"] for p in points] == [T0 + 2.5, T0 + 4.5, T0 + 6.5]


def test_tokens_per_second_count_the_complete_seconds_before_each_point() -> None:
    stats = ts.RunStats()
    timeline = Timeline(interval_s=2)
    timeline.sample(stats, T0 + 2.5)
    # one request whose 11 events arrive 100 ms apart from T0 + 0.5 s: 5 in second 0, 6 in second 1
    r = rec(10, gaps_ms=(100,) * 10)
    r.event_ns = [e + 500_000_000 for e in r.event_ns]
    r.end_ns = r.event_ns[-1]
    stats.add_record(r)
    # the request came in after the first point was taken: recomputed on read, the point grows
    points = timeline.series(stats)["points"]
    assert points[0]["output_tokens_per_s"] == pytest.approx(sum(stats.tokens_by_second.values()) / 2)
    assert sum(stats.tokens_by_second.values()) == pytest.approx(11)
    timeline.sample(stats, T0 + 4.5)
    assert timeline.series(stats)["points"][1]["output_tokens_per_s"] == 0.0


def test_new_statistics_start_a_new_series_and_old_points_drop() -> None:
    first = ts.RunStats()
    first.add_record(rec(20))
    timeline = Timeline(interval_s=1, max_points=3)
    for i in range(5):
        timeline.sample(first, T0 + i)
    assert len(timeline.series(first)["points"]) == 3
    second = ts.RunStats()
    assert timeline.series(second)["points"] == []
    second.add_record(rec(30))
    timeline.sample(second, T0 + 10)
    points = timeline.series(second)["points"]
    assert len(points) == 1 and points[0]["ttft_count"] == 1 and points[0]["ttft_p50_ms"] == 30.0
    with pytest.raises(ValueError, match="whole number of seconds"):
        Timeline(interval_s=0)
