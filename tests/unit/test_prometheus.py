"""Parsing Triton's /metrics text, including the TRT-LLM backend's gauges."""

from __future__ import annotations

import math

import pytest

from trtclient.prometheus import MetricsParseError, find_samples, parse_families, parse_metrics, sample_total

# Shaped like Triton 2.51's exposition plus the TRT-LLM backend families (TB README "Triton Metrics").
TEXT = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 20
nv_inference_request_success{model="tensorrt_llm",version="1"} 20
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="ensemble",reason="OTHER",version="1"} 2
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="ensemble",version="1"} 0
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 3
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 64
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 1
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.25
# TYPE nv_llm_output_token_len histogram
nv_llm_output_token_len_bucket{le="10",model="tensorrt_llm",response_metric_type="total_output_tokens"} 4
nv_llm_output_token_len_bucket{le="+Inf",model="tensorrt_llm",response_metric_type="total_output_tokens"} 20
nv_llm_output_token_len_sum{model="tensorrt_llm",response_metric_type="total_output_tokens"} 400
nv_llm_output_token_len_count{model="tensorrt_llm",response_metric_type="total_output_tokens"} 20
odd_labels{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"} NaN 1700000000000
no_labels +Inf
"""


def test_samples_with_labels_values_and_timestamps() -> None:
    samples = parse_metrics(TEXT)
    assert len(samples) == 14
    first = samples[0]
    assert (first.name, dict(first.labels), first.value) == (
        "nv_inference_request_success",
        {"model": "ensemble", "version": "1"},
        20.0,
    )
    odd = find_samples(samples, "odd_labels")[0]
    assert dict(odd.labels) == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"}
    assert math.isnan(odd.value) and odd.timestamp_ms == 1_700_000_000_000
    assert find_samples(samples, "no_labels")[0].value == math.inf


def test_trt_llm_gauges_are_found_by_category_label() -> None:
    samples = parse_metrics(TEXT)
    active = find_samples(samples, "nv_trt_llm_request_metrics", {"request_type": "active"})
    assert [s.value for s in active] == [3.0]
    assert active[0].label("model") == "tensorrt_llm"
    fraction = find_samples(samples, "nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "fraction"})
    assert fraction[0].value == 0.25


def test_totals_over_matching_series() -> None:
    samples = parse_metrics(TEXT)
    assert sample_total(samples, "nv_inference_request_success") == 40.0
    assert sample_total(samples, "nv_inference_request_success", {"model": "ensemble"}) == 20.0
    assert sample_total(samples, "absent") == 0.0


def test_families_group_histogram_series_with_type_and_help() -> None:
    families = parse_families(TEXT)
    histogram = families["nv_llm_output_token_len"]
    assert histogram.type == "histogram"
    assert {s.name for s in histogram.samples} == {
        "nv_llm_output_token_len_bucket",
        "nv_llm_output_token_len_sum",
        "nv_llm_output_token_len_count",
    }
    success = families["nv_inference_request_success"]
    assert success.type == "counter"
    assert success.help.startswith("Number of successful inference requests")
    assert families["no_labels"].type == "untyped"


@pytest.mark.parametrize(
    "line",
    [
        "metric_without_value",
        'bad{label="unterminated} 1',
        "bad{label=noquote} 1",
        "name notanumber",
        "x 1 2 3",
    ],
)
def test_malformed_lines_name_their_line_number(line: str) -> None:
    with pytest.raises(MetricsParseError, match="line 2"):
        parse_metrics("ok 1\n" + line + "\n")
