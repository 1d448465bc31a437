"""The bounded-memory summaries (``trtclient/loadtest/accumulator.py``, ``histogram.py``) against the
exact computation over the same records: exact figures equal, percentiles within the stated error."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from trtclient.loadtest import metrics as m
from trtclient.loadtest.accumulator import RunAccumulator, counter_summary
from trtclient.loadtest.histogram import RELATIVE_ERROR, Histogram
from trtclient.loadtest.records import RequestRecord

MS = 1_000_000


def make_records(n: int, seed: int = 7) -> list[RequestRecord]:
    """Requests with spread-out latencies (sub-millisecond to seconds), some failed, cancelled or warm-up."""
    rng = random.Random(seed)
    records = []
    for index in range(n):
        intended = index * 3 * MS
        sent = intended + rng.randint(0, 2 * MS)
        first = sent + int(rng.lognormvariate(math.log(40 * MS), 1.0))
        gaps = [int(rng.lognormvariate(math.log(0.8 * MS), 0.7)) for _ in range(rng.randint(0, 40))]
        events = [first]
        for gap in gaps:
            events.append(events[-1] + gap)
        status = rng.choices(["ok", "failed", "cancelled"], [90, 7, 3])[0]
        tokens = len(events) + rng.choice([0, 0, 1])
        records.append(
            RequestRecord(
                index=index,
                intended_ns=intended,
                warmup=index < 5,
                sent_ns=sent,
                headers_ns=sent + MS // 2,
                event_ns=events,
                end_ns=events[-1] + 100_000,
                status=status,  # type: ignore[arg-type]
                error_kind="timeout" if status == "failed" else None,
                output_tokens=tokens,
                output_tokens_source="events",
                input_tokens=rng.randint(5, 9),
                input_tokens_source="tokenizer",
                requested_output_tokens=len(events),
                forced_output_tokens=True,
                token_counts={"events_output": len(events), "tokenizer_output": tokens},
                engine_ns={"first_token_time_ns": first - rng.randint(0, 300_000)},
                epoch_offset_ns=0,
                arrival_clock="kernel",
            )
        )
    return records


def within_stated_error(approx: float, exact_sorted: list[float], q: float) -> bool:
    """The histogram's percentile is the (rounded) value of a rank next to the interpolated one."""
    h = (len(exact_sorted) - 1) * q / 100
    low, high = exact_sorted[math.floor(h)], exact_sorted[math.ceil(h)]
    slack = 500 + RELATIVE_ERROR * high  # half a microsecond below 1 ms, half a third digit above
    return low - slack <= approx <= high + slack


def test_exact_figures_equal_and_percentiles_within_the_bound() -> None:
    records = make_records(2000)
    slos = {"ttft": 60 * MS}
    exact = m.compute_metrics(records, slos)
    acc = RunAccumulator(slos)
    for r in records:
        acc.add(r)
    got = acc.metrics()
    for name in ("counts", "window_ns", "requests_per_s", "output_tokens_per_s", "failures",
                 "output_token_sources", "input_token_sources", "token_disagreements", "length_check",
                 "good_requests", "goodput_per_s", "input_tokens", "output_tokens"):  # fmt: skip
        assert getattr(got, name) == pytest.approx(getattr(exact, name)), name
    assert exact.counts.failed and exact.length_check.mismatched and exact.good_requests  # not vacuous
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.status == "ok"]
    samples: dict[str, list[float]] = {
        "ttft": [float(v) for r in ok if (v := m.ttft_ns(r)) is not None],
        "itl": [float(g) for r in ok for g in m.itl_ns(r)],
        "tpot": [t for r in ok if (t := m.tpot_ns(r)) is not None],
        "schedule_lag": [float(v) for r in measured if (v := m.schedule_lag_ns(r)) is not None],
        "first_token_lag": [float(v) for r in ok if (v := m.engine_first_token_lag_ns(r)) is not None],
    }
    for name, unsorted in samples.items():
        values = sorted(unsorted)
        e, a = getattr(exact, name), getattr(got, name)
        assert a.count == e.count == len(values), name
        assert (a.min, a.max) == (e.min, e.max), name
        assert a.mean == pytest.approx(e.mean, rel=1e-9), name
        assert a.std == pytest.approx(e.std, rel=1e-6), name
        for q, field in zip(m.PERCENTILES, ("p50", "p90", "p95", "p99"), strict=True):
            assert within_stated_error(getattr(a, field), values, q), (name, field)
    assert acc.arrival_clock == "kernel"


def test_memory_does_not_grow_with_the_number_of_samples() -> None:
    h = Histogram()
    rng = random.Random(1)
    for _ in range(200_000):
        h.add(rng.lognormvariate(math.log(20 * MS), 1.5))
    keys = len(h.buckets)
    for _ in range(200_000):
        h.add(rng.lognormvariate(math.log(20 * MS), 1.5))
    assert h.count == 400_000
    assert len(h.buckets) < 900 * 8  # at most 900 keys per decade
    assert len(h.buckets) - keys < keys // 5  # the second 200k samples add few new keys


def test_histograms_of_parts_merge_into_the_histogram_of_all() -> None:
    rng = random.Random(3)
    values = [rng.randint(1, 10**9) for _ in range(5000)]
    whole, left, right = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(values):
        whole.add(v)
        (left if i % 3 else right).add(v)
    left.merge(Histogram.from_wire(right.to_wire()))
    assert left.buckets == whole.buckets and left.count == whole.count
    assert len(whole.buckets) > 1000  # spread over many buckets, not one
    merged, alone = left.summary(), whole.summary()
    assert merged is not None and alone is not None
    assert dataclasses.replace(merged, mean=0.0, std=0.0) == dataclasses.replace(alone, mean=0.0, std=0.0)
    assert merged.mean == pytest.approx(alone.mean) and merged.std == pytest.approx(alone.std)


def test_token_counts_are_summarised_exactly() -> None:
    values = [3, 9, 9, 1, 4, 4, 4, 12]
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    assert counter_summary(counts) == m.summarize(values)
    assert counter_summary({}) is None


def test_an_unknown_slo_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no SLO metric named nope"):
        RunAccumulator({"nope": 1.0})
