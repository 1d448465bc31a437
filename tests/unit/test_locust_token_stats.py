"""The Locust scenarios' token statistics (``locustfiles/trtlocust/_stats.py`` and ``_tables.py``):
histograms finer than Locust's buckets, their merge from workers into the master, and the tables
written at the end.

These modules import neither locust nor gevent (and the kit's face loads the rest lazily), so they are
imported here without monkey-patching the test process. Records are built from small integer
nanoseconds, so values are exact.
"""

from __future__ import annotations

import csv
import io
import math
import random
import statistics
from pathlib import Path
from typing import Any

import msgpack
import pytest
from trtlocust import _stats as ts
from trtlocust import _tables as tables

from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord

ROOT = Path(__file__).resolve().parents[2]


def over_the_wire(data: dict[str, Any]) -> dict[str, Any]:
    """What the master receives: Locust sends worker reports with msgpack, these options."""
    result: dict[str, Any] = msgpack.loads(msgpack.dumps(data), raw=False, strict_map_key=False)
    return result


def nearest_rank(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(1, math.ceil(q / 100 * len(sorted_values))) - 1]


def rec(
    *,
    intended: int = 0,
    sent: int | None = 1_000_000,
    events: list[int] | None = None,
    end: int | None = None,
    status: str = "ok",
    tokens: int | None = None,
    kind: str | None = None,
    offset: int = 0,
    engine_first: int | None = None,
) -> RequestRecord:
    ev = [3_000_000, 5_000_000, 9_000_000] if events is None else events
    return RequestRecord(
        index=0,
        intended_ns=intended,
        sent_ns=sent,
        event_ns=ev if status == "ok" else [],
        end_ns=(ev[-1] + 1_000_000 if ev else 2_000_000) if end is None else end,
        status=status,  # type: ignore[arg-type]
        error_kind=kind,
        output_tokens=(len(ev) if tokens is None else tokens) if status == "ok" else None,
        output_tokens_source="events" if status == "ok" else None,
        engine_ns={} if engine_first is None else {"first_token_time_ns": engine_first},
        epoch_offset_ns=offset,
    )


# ---------------------------------------------------------------- buckets and histograms


@pytest.mark.parametrize("value_ns", [1, 499, 501, 999_400, 999_600, 1_234_567, 9_876_543_210, 3.3e12])
def test_bucket_keeps_three_significant_digits_of_microseconds(value_ns: float) -> None:
    key_ns = ts.bucket_us(value_ns) * 1000
    if value_ns < 999_500:
        assert abs(key_ns - value_ns) <= 500  # exact to the microsecond below 1 ms
    else:
        assert abs(key_ns - value_ns) / value_ns <= 0.005
    assert ts.bucket_us(-value_ns) == -ts.bucket_us(value_ns)


def test_locust_would_round_a_9_6_ms_gap_to_10_ms_these_buckets_do_not() -> None:
    assert ts.bucket_us(9_630_000) == 9_630


def test_percentiles_mean_and_spread_against_the_raw_samples() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(16, 1.0) for _ in range(5000)]  # ~9 ms median, ns
    h = ts.Histogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for q in (1, 50, 90, 95, 99, 99.9):
        exact = nearest_rank(ordered, q)
        assert abs(h.percentile(q) - exact) <= 0.005 * exact + 500, q
    s = h.summary()
    assert s is not None
    assert s.count == 5000
    assert s.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert s.std == pytest.approx(statistics.pstdev(values), rel=1e-6)
    assert (s.min, s.max) == (ordered[0], ordered[-1])
    assert h.percentile(0) == ordered[0] and h.percentile(100) == ordered[-1]


def test_empty_histogram_has_no_summary_and_refuses_percentiles() -> None:
    h = ts.Histogram()
    assert h.summary() is None
    with pytest.raises(ValueError):
        h.percentile(50)


def test_workers_histograms_merged_on_the_master_equal_one_histogram_of_every_sample() -> None:
    rng = random.Random(3)
    samples = [rng.expovariate(1 / 5e6) for _ in range(3000)]
    whole = ts.Histogram()
    for v in samples:
        whole.add(v)
    master = ts.Histogram()
    for part in (samples[:1000], samples[1000:1100], samples[1100:]):
        worker = ts.Histogram()
        for v in part:
            worker.add(v)
        master.merge(ts.Histogram.from_wire(over_the_wire(worker.to_wire())))
    assert master.buckets == whole.buckets
    assert master.count == whole.count == 3000
    assert (master.min_ns, master.max_ns) == (whole.min_ns, whole.max_ns)
    assert master.sum_ns == pytest.approx(whole.sum_ns, rel=1e-12)
    for q in (50, 90, 99):
        assert master.percentile(q) == whole.percentile(q)


# ---------------------------------------------------------------- run statistics


def test_one_request_gives_the_trtclient_metric_values() -> None:
    r = rec(intended=400_000, engine_first=2_000_000)  # engine ns with offset 0: 1 ms before arrival
    stats = ts.RunStats()
    stats.add_record(r)
    h = stats.histograms
    expected = {
        "ttft": m.ttft_ns(r),
        "tpot": m.tpot_ns(r),
        "e2e": m.e2e_ns(r),
        "ttft_sched": m.ttft_sched_ns(r),
        "schedule_lag": m.schedule_lag_ns(r),
        "first_token_lag": m.engine_first_token_lag_ns(r),
    }
    for name, value in expected.items():
        assert value is not None
        assert (h[name].count, h[name].min_ns, h[name].max_ns) == (1, value, value), name
    assert sorted([h["itl"].min_ns, h["itl"].max_ns]) == sorted(m.itl_ns(r))
    assert h["itl"].count == 2
    assert (stats.ok, stats.output_tokens) == (1, 3)


def test_failed_and_cancelled_requests_are_counted_beside_never_in_latencies() -> None:
    stats = ts.RunStats()
    stats.add_record(rec())
    stats.add_record(rec(status="failed", kind="http_503"))
    stats.add_record(rec(status="failed", kind="http_503"))
    stats.add_record(rec(status="failed", kind="timeout_read"))
    stats.add_record(rec(status="cancelled", sent=None))
    assert (stats.ok, stats.failed, stats.cancelled, stats.sent) == (1, 3, 1, 5)
    assert stats.failures == {"http_503": 2, "timeout_read": 1}
    assert stats.histograms["ttft"].count == stats.histograms["e2e"].count == 1
    assert stats.histograms["schedule_lag"].count == 4  # every request that was sent


def test_workers_reports_add_up_to_the_same_totals_as_one_process() -> None:
    rng = random.Random(11)
    records = []
    for i in range(60):
        status = rng.choice(["ok", "ok", "ok", "failed", "cancelled"])
        first = 2_000_000 + rng.randrange(5_000_000)
        gaps = [rng.randrange(100_000, 9_000_000) for _ in range(rng.randrange(0, 6))]
        events = [first + sum(gaps[:k]) for k in range(len(gaps) + 1)]
        records.append(
            rec(
                intended=i * 1_000_000,
                sent=i * 1_000_000 + 500_000 + first // 100,
                events=events,
                status=status,
                kind="http_500" if status == "failed" else None,
                offset=rng.choice([0, 7]),
            )
        )
    alone = ts.RunStats()
    for r in records:
        alone.add_record(r)
    master = ts.RunStats()
    workers = [ts.RunStats() for _ in range(3)]
    for i, r in enumerate(records):
        worker = workers[i % 3]
        worker.add_record(r)
        if i % 7 == 0:  # a periodic report in the middle of the run
            master.merge(over_the_wire(worker.take()))
    for worker in workers:
        master.merge(over_the_wire(worker.take()))
    assert (master.ok, master.failed, master.cancelled) == (alone.ok, alone.failed, alone.cancelled)
    assert master.failures == alone.failures
    assert master.output_tokens == alone.output_tokens
    assert (master.first_start_ns, master.last_end_ns) == (alone.first_start_ns, alone.last_end_ns)
    assert master.tokens_by_second == pytest.approx(alone.tokens_by_second)
    for name, h in alone.histograms.items():
        assert master.histograms[name].buckets == h.buckets, name
        assert master.histograms[name].count == h.count, name


def test_take_hands_over_everything_once() -> None:
    stats = ts.RunStats()
    stats.add_record(rec())
    stats.scheduled = 4
    stats.unsent = 1
    first = stats.take()
    assert (first["ok"], first["scheduled"], first["unsent"]) == (1, 4, 1)
    second = stats.take()
    assert (second["ok"], second["scheduled"], second["histograms"]) == (0, 0, {})
    total = ts.merged([first, second])
    assert (total.ok, total.scheduled, total.unsent, total.histograms["ttft"].count) == (1, 4, 1, 1)


def test_window_spans_processes_by_the_epoch_not_their_own_clocks() -> None:
    # Process a's perf counter is 10 s behind process b's; each record's offset puts it on the epoch.
    a = rec(intended=0, sent=0, events=[1_000_000], end=2_000_000, offset=10_000_000_000)
    b = rec(
        intended=10_500_000_000, sent=10_500_000_000, events=[10_600_000_000], end=10_700_000_000, offset=0
    )
    stats = ts.merged([_wire_of(a), _wire_of(b)])
    assert stats.first_start_ns == 10_000_000_000
    assert stats.last_end_ns == 10_700_000_000
    assert stats.window_s == pytest.approx(0.7)


def _wire_of(r: RequestRecord) -> dict[str, Any]:
    stats = ts.RunStats()
    stats.add_record(r)
    return over_the_wire(stats.take())


def test_throughput_figures() -> None:
    stats = ts.RunStats()
    stats.add_record(rec(intended=0, events=[1_000_000, 3_000_000, 5_000_000, 7_000_000], end=8_000_000))
    stats.add_record(rec(intended=2_000_000, events=[4_000_000, 6_000_000], end=10_000_000, tokens=5))
    assert stats.window_s == pytest.approx(0.010)
    assert stats.requests_per_s() == pytest.approx(2 / 0.010)
    assert stats.output_tokens_per_s() == pytest.approx(9 / 0.010)
    # tpot = (end - first event) / (tokens - 1): 7/3 ms and 6/4 ms; the per-user rate is 1 / tpot
    assert stats.tokens_per_s_per_user(50) == pytest.approx(1e9 / 1.5e6, rel=0.005)
    assert stats.tokens_per_s_per_user(10) == pytest.approx(1e9 / (7e6 / 3), rel=0.005)
    figures = {name: value for name, value, _ in stats.throughput()}
    assert figures["output_tokens"] == 9 and figures["requests_ok"] == 2


def test_current_rate_counts_tokens_by_the_second_their_event_arrived() -> None:
    second = 1_800_000_000
    offset = second * 1_000_000_000
    r = rec(
        intended=0, sent=0, events=[100_000_000, 600_000_000, 1_200_000_000], end=1_300_000_000, offset=offset
    )
    r.event_tokens = [1, 2, 4]
    stats = ts.RunStats()
    stats.add_record(r)
    assert stats.tokens_by_second == pytest.approx({second: 3.0, second + 1: 4.0})
    assert stats.current_tokens_per_s(second + 2.5) == pytest.approx(3.5)  # both complete seconds
    assert stats.current_tokens_per_s(second + 30) == 0.0  # nothing in the last ten seconds


# ---------------------------------------------------------------- tables


def filled() -> Any:
    stats = ts.RunStats()
    stats.add_record(rec(intended=0))
    stats.add_record(rec(intended=0, events=[2_000_000, 2_500_000], tokens=2))
    stats.add_record(rec(status="failed", kind="http_400"))
    return stats


def test_csv_files_hold_the_histograms_in_milliseconds(tmp_path: Path) -> None:
    stats = filled()
    latency, throughput, _workload = tables.write_csv(stats, str(tmp_path / "run"), "ensemble")
    assert latency.name == "run_tokens.csv" and throughput.name == "run_throughput.csv"
    rows = {row["Metric"]: row for row in csv.DictReader(io.StringIO(latency.read_text()))}
    assert list(rows) == ["TTFT", "ITL", "TPOT", "E2E", "ttft_sched", "schedule_lag"]
    assert rows["TTFT"]["Name"] == "ensemble"
    assert rows["TTFT"]["Count"] == "2"
    assert float(rows["TTFT"]["Min"]) == pytest.approx(1.0)  # sent 1 ms, first event 2 ms
    assert float(rows["ITL"]["Max"]) == pytest.approx(4.0)
    assert float(rows["ITL"]["Min"]) == pytest.approx(0.5)
    figures = {row["Name"]: row["Value"] for row in csv.DictReader(io.StringIO(throughput.read_text()))}
    assert (figures["requests_ok"], figures["requests_failed"], figures["failed_http_400"]) == ("2", "1", "1")
    assert figures["output_tokens"] == "5"


def test_html_section_goes_before_the_end_of_the_body(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text("<html><body><div id='root'></div></body></html>")
    tables.add_to_html_report(page, filled(), "ensemble")
    text = page.read_text()
    assert text.index('id="trtclient-token-metrics"') < text.index("</body>")
    assert "<td>Time to first token (TTFT)</td>" in text and "first content event arrival - send" in text
    assert text.index("<td>Inter-token latency (ITL)</td>") < text.index("<td>End to end (E2E)</td>")
    assert "<td>Requests failed</td>" in text and "<td>Failed: http_400</td>" in text


def test_summary_and_totals_lines_say_the_same_counts() -> None:
    stats = filled()
    lines = tables.summary_lines(stats, "ensemble")
    assert any(line.startswith("TTFT") for line in lines)
    assert "requests ok 2, failed 1, cancelled 0; output tokens 5" in lines[-1]
    assert tables.totals_line(stats).startswith(
        "ok=2 failed=1 cancelled=0 scheduled=0 unsent=0 output_tokens=5 n_ttft=2"
    )


def test_ttft_splits_by_kv_cache_hit_and_the_hit_rate_survives_merging() -> None:
    def kv(reused: int, first_event: int) -> RequestRecord:
        r = rec(events=[first_event, first_event + 1_000_000])
        r.kv_cache = {"kv_cache_reused_blocks": reused, "kv_cache_alloc_total_blocks": 4}
        return r

    worker_a, worker_b = ts.RunStats(), ts.RunStats()
    worker_a.add_record(kv(3, 11_000_000))
    worker_a.add_record(kv(0, 51_000_000))
    worker_b.add_record(kv(2, 21_000_000))
    worker_b.add_record(rec())  # no KV figures: in neither split
    master = ts.merged([over_the_wire(w.take()) for w in (worker_a, worker_b)])
    hit, miss = master.histograms["ttft_kv_hit"], master.histograms["ttft_kv_miss"]
    assert (hit.count, miss.count) == (2, 1)
    assert miss.percentile(50) == pytest.approx(50_000_000, rel=1e-3)
    figures = {name: value for name, value, _ in master.throughput()}
    assert figures["kv_hit_rate_mean"] == pytest.approx((0.75 + 0 + 0.5) / 3)
    rows = {row["metric"] for row in tables.latency_table(master, "ensemble")}
    assert {"ttft_kv_hit", "ttft_kv_miss"} <= rows


def test_tables_list_rows_in_reading_order_with_readable_names() -> None:
    stats = filled()
    r = rec(events=[11_000_000, 12_000_000])
    r.kv_cache = {"kv_cache_reused_blocks": 1, "kv_cache_alloc_total_blocks": 4}
    stats.add_record(r)
    latency = tables.latency_table(stats, "ensemble")
    assert [row["metric"] for row in latency] == [
        "TTFT",
        "ttft_kv_hit",
        "ITL",
        "TPOT",
        "E2E",
        "ttft_sched",
        "schedule_lag",
    ]
    assert [row["title"] for row in latency][:5] == [
        "Time to first token (TTFT)",
        "TTFT, KV-cache reused",
        "Inter-token latency (ITL)",
        "Time per output token (TPOT)",
        "End to end (E2E)",
    ]
    throughput = tables.throughput_table(stats, now_s=1.0)
    names = [row["name"] for row in throughput]
    assert names[:5] == [
        "output_tokens_per_s_current",
        "output_tokens_per_s",
        "output_tokens_per_s_per_user_p50",
        "output_tokens_per_s_per_user_p10",
        "requests_per_s",
    ]
    assert names.index("requests_failed") + 1 == names.index("failed_http_400")
    assert names.index("failed_http_400") < names.index("requests_cancelled")
    assert names[-1].startswith("token_count_source_")
    titles = {row["name"]: row["title"] for row in throughput}
    assert titles["output_tokens_per_s_current"] == "Output tokens/s, last 10 s"
    assert titles["failed_http_400"] == "Failed: http_400"
    # every figure the statistics can hold has a name of its own, not its key
    assert all(row["title"] != row["name"] for row in throughput)
    assert set(tables.LATENCY_ORDER) == set(ts.HISTOGRAMS) == set(tables.LATENCY_TITLES)
