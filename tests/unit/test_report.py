"""Reports: the JSON summary's schema, the CSV, the console table, the client warnings, /metrics summaries."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from trtclient.bench.report import (
    SCHEMA,
    ClientLoad,
    Report,
    client_warnings,
    format_console,
    format_server,
    to_json,
    write_csv,
    write_json,
)
from trtclient.bench.scrape import summarize_scrapes
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord
from trtclient.prometheus import parse_metrics

MS = 1_000_000


def rec(
    index: int, *, sent: int, events: list[int], end: int, status: str = "ok", **kw: object
) -> RequestRecord:
    return RequestRecord(
        index=index,
        intended_ns=kw.pop("intended", sent),  # type: ignore[arg-type]
        sent_ns=sent,
        headers_ns=sent + MS // 2,
        event_ns=events,
        end_ns=end,
        status=status,  # type: ignore[arg-type]
        output_tokens=len(events),
        output_tokens_source="events",
        **kw,  # type: ignore[arg-type]
    )


RECORDS = [
    rec(0, sent=0, events=[10 * MS, 20 * MS, 30 * MS], end=31 * MS),
    rec(1, sent=5 * MS, events=[25 * MS, 35 * MS], end=40 * MS, intended=2 * MS),
    rec(2, sent=6 * MS, events=[], end=7 * MS, status="failed", error_kind="http_503", error_message="full"),
]


def report(records: list[RequestRecord] = RECORDS, **kw: object) -> Report:
    metrics = m.compute_metrics(records, kw.pop("slos", None))  # type: ignore[arg-type]
    return Report(config={"description": "test run"}, metrics=metrics, client=ClientLoad(0.2, 1.0), **kw)  # type: ignore[arg-type]


def test_json_summary_has_the_documented_shape_in_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_json(report(slos={"ttft": 15 * MS}), path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == "trtclient.bench/1"
    assert data["requests"] == {"sent": 3, "ok": 2, "failed": 1, "cancelled": 0, "warmup": 0}
    assert data["failures"] == {"http_503": 1}
    assert data["ttft_ms"]["mean"] == pytest.approx((10 + 20) / 2)
    assert data["ttft_sched_ms"]["max"] == pytest.approx(23)
    assert data["itl_ms"]["count"] == 3 and data["itl_ms"]["max"] == pytest.approx(10)
    assert data["e2e_ms"]["p50"] == pytest.approx((31 + 35) / 2)
    assert data["duration_s"] == pytest.approx(0.040)
    assert data["output_tokens_per_s"] == pytest.approx(5 / 0.040)
    assert data["goodput"] == {
        "slos_ms": {"ttft": 15.0},
        "good_requests": 1,
        "requests_per_s": pytest.approx(1 / 0.040),
        "fraction": 0.5,
    }
    assert data["first_token_lag_ms"] is None  # no engine timestamps: null, not absent
    assert data["client"] == {"cpu_s": 0.2, "wall_s": 1.0, "cpu_cores": 0.2}
    assert set(data["definitions"]) == set(m.DEFINITIONS)


def test_compat_block_maps_by_definition_not_by_name() -> None:
    data = to_json(report())
    vllm, genai = data["compat"]["vllm"], data["compat"]["genai_perf_aiperf"]
    assert vllm["mean_tpot_ms"] == data["tpot_ms"]["mean"]
    assert vllm["p99_itl_ms"] == data["itl_ms"]["p99"]
    assert vllm["median_e2el_ms"] == data["e2e_ms"]["p50"]
    # GenAI-Perf/AIPerf's "inter token latency" is our TPOT; their chunk gaps are our ITL
    assert genai["inter_token_latency_ms_avg"] == data["tpot_ms"]["mean"]
    assert genai["inter_chunk_latency_ms_p90"] == data["itl_ms"]["p90"]
    assert genai["output_token_throughput_per_sec"] == data["output_tokens_per_s"]


def test_csv_has_one_row_per_request_with_derived_metrics(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(list(reversed(RECORDS)), path)
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert [r["index"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["ttft_ms"] == "10.000" and rows[0]["tpot_ms"] == "10.500"
    assert rows[1]["schedule_lag_ms"] == "3.000" and rows[1]["intended_s"] == "0.002"
    assert rows[2]["status"] == "failed" and rows[2]["error_kind"] == "http_503" and rows[2]["ttft_ms"] == ""
    assert [(r["kv_hit_rate"], r["turn"], r["adapter"]) for r in rows] == [("", "", "")] * 3


def test_csv_rows_carry_the_kv_hit_rate_turn_and_adapter(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    first = dataclasses.replace(
        RECORDS[0],
        kv_cache={"kv_cache_reused_blocks": 3, "kv_cache_alloc_total_blocks": 4},
        turn=2,
        adapter="support",
    )
    write_csv([first], path)
    with path.open() as file:
        (row,) = list(csv.DictReader(file))
    assert (row["kv_hit_rate"], row["turn"], row["adapter"]) == ("0.750", "2", "support")


def test_csv_rows_carry_the_conversation_the_adapter_and_the_kv_figures(tmp_path: Path) -> None:
    kv = {"kv_cache_reused_blocks": 1, "kv_cache_alloc_new_blocks": 3, "kv_cache_alloc_total_blocks": 4}
    records = [
        rec(0, sent=0, events=[MS], end=2 * MS, kv_cache=kv, turn=2, session="session3", adapter="chat"),
        rec(1, sent=0, events=[MS], end=2 * MS),
    ]
    path = tmp_path / "r.csv"
    write_csv(records, path)
    with path.open() as file:
        first, plain = list(csv.DictReader(file))
    assert (first["session"], first["turn"], first["adapter"]) == ("session3", "2", "chat")
    assert (first["kv_reused_blocks"], first["kv_new_blocks"], first["kv_total_blocks"]) == ("1", "3", "4")
    assert first["kv_hit_rate"] == "0.250"
    blanks = (
        "session",
        "turn",
        "adapter",
        "kv_reused_blocks",
        "kv_new_blocks",
        "kv_total_blocks",
        "kv_hit_rate",
    )
    assert all(plain[k] == "" for k in blanks)


def test_console_report_reads_at_a_glance() -> None:
    text = format_console(report(notes=["lengths not forced"], warnings=["client busy"]))
    lines = text.splitlines()
    assert lines[0] == "test run"
    assert "3 sent: 2 ok, 1 failed (http_503 1), 0 cancelled" in text
    assert any(line.lstrip().startswith("TTFT ") for line in lines)
    assert "first token engine->client" not in text  # rows only for metrics that exist
    assert "note: lengths not forced" in text and "warning: client busy" in text
    assert "partial results" not in text and "arrivals stamped" not in text  # clock unknown: no claim
    assert "partial results" in format_console(report(interrupted=True))


@pytest.mark.parametrize(
    ("clock", "shown"),
    [("kernel", "on receipt (kernel)"), ("read", "when read"), ("mixed", "on receipt or when read")],
)
def test_console_says_what_stamped_the_arrivals(clock: str, shown: str) -> None:
    metrics = m.compute_metrics(RECORDS, None)
    config = {"description": "test run", "arrival_clock": clock}
    text = format_console(Report(config=config, metrics=metrics, client=ClientLoad(0.2, 1.0)))
    (line,) = [line for line in text.splitlines() if line.startswith("client ")]
    assert line.endswith(f", arrivals stamped {shown}")


def test_console_without_any_success_says_so() -> None:
    failed = [rec(0, sent=0, events=[], end=MS, status="failed", error_kind="connect")]
    text = format_console(report(failed))
    assert "0 ok, 1 failed (connect 1)" in text
    assert "TTFT" not in text and "schedule lag" in text


def test_console_shows_length_mismatches_and_count_disagreements() -> None:
    records = [
        rec(0, sent=0, events=[MS, 2 * MS], end=3 * MS, requested_output_tokens=3, forced_output_tokens=True),
        rec(1, sent=0, events=[MS], end=2 * MS, token_counts={"server_output": 2, "events_output": 1}),
    ]
    text = format_console(report(records))
    assert "output length forced on 1 requests: 1 of 1 differ (#0: asked 3, got 2)" in text
    assert "token counts disagree (server_output vs events_output) on 1 of 1 requests" in text


def test_client_warnings_for_cpu_and_for_lag_that_matters() -> None:
    def with_lag(lag_ms: float, ttft_ms: float) -> m.RunMetrics:
        r = rec(0, sent=round(lag_ms * MS), intended=0, events=[round((lag_ms + ttft_ms) * MS)], end=10**12)
        return m.compute_metrics([r])

    quiet = ClientLoad(cpu_s=0.5, wall_s=1.0)
    assert client_warnings(with_lag(1, 50), quiet) == []
    assert "0.90 CPU cores" in client_warnings(with_lag(1, 50), ClientLoad(cpu_s=0.9, wall_s=1.0))[0]
    assert "schedule lag p99 is 12.0 ms" in client_warnings(with_lag(12, 50), quiet)[0]
    assert client_warnings(with_lag(12, 2000), quiet) == []  # 12 ms on a 2 s TTFT is noise
    assert ClientLoad(1.0, 0.0).cores == 0.0


def page(success: int, queue_us: int, infer_us: int, request_us: int, pending: int, active: int) -> str:
    return f"""# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="ensemble",version="1"}} {success}
nv_inference_request_failure{{model="ensemble",reason="OTHER",version="1"}} 1
nv_inference_queue_duration_us{{model="ensemble",version="1"}} {queue_us}
nv_inference_compute_infer_duration_us{{model="ensemble",version="1"}} {infer_us}
nv_inference_request_duration_us{{model="ensemble",version="1"}} {request_us}
nv_inference_request_success{{model="idle",version="1"}} 0
nv_inference_pending_request_count{{model="ensemble",version="1"}} {pending}
nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="active",version="1"}} {active}
nv_gpu_utilization{{gpu_uuid="x"}} 0.5
"""


def test_metrics_summary_differences_counters_and_summarises_gauges() -> None:
    first, last = page(10, 1000, 5000, 9000, 0, 2), page(30, 5000, 25000, 49000, 4, 6)
    summary = summarize_scrapes([parse_metrics(first), parse_metrics(last)])
    ensemble = summary["models"]["ensemble"]
    assert summary["scrapes"] == 2
    assert ensemble["requests"] == 20 and ensemble["failures"] == 0
    assert ensemble["queue_ms_per_request"] == pytest.approx(4000 / 20 / 1000)
    assert ensemble["compute_infer_ms_per_request"] == pytest.approx(20000 / 20 / 1000)
    assert ensemble["request_ms_per_request"] == pytest.approx(40000 / 20 / 1000)
    assert (ensemble["pending_max"], ensemble["pending_mean"]) == (4, 2)
    assert summary["models"]["idle"]["queue_ms_per_request"] is None  # nothing completed
    gauge = summary["trt_llm"]["tensorrt_llm:nv_trt_llm_request_metrics{request_type=active}"]
    assert gauge == {"min": 2, "mean": 4, "max": 6, "last": 6}
    lines = format_server(summary)
    assert any(line.lstrip().startswith("ensemble ") for line in lines)
    assert not any(line.lstrip().startswith("idle ") for line in lines)  # no traffic: no row
    assert summarize_scrapes([]) == {"scrapes": 0, "models": {}, "trt_llm": {}}
    assert format_server({"error": "connection refused"}) == [
        "server /metrics: not available (connection refused)"
    ]


def test_no_cpu_warning_for_a_run_of_milliseconds() -> None:
    metrics = m.compute_metrics([rec(0, sent=0, intended=0, events=[50 * MS], end=10**12)])
    busy_but_brief = ClientLoad(cpu_s=0.009, wall_s=0.01)
    assert busy_but_brief.cores >= 0.85
    assert client_warnings(metrics, busy_but_brief) == []
    assert client_warnings(metrics, ClientLoad(cpu_s=0.9, wall_s=1.0)) != []


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1234.4, "1234"), (100.0, "100"), (35.74, "35.7"), (2.014, "2.01"), (0.01234, "0.0123"), (0.0, "0")],
)
def test_report_figures_have_three_significant_digits(value: float, shown: str) -> None:
    from trtclient.bench.report import _fmt

    assert _fmt(value) == shown
