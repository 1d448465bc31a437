"""The benchmarks' fast loopback source: Triton's generate API shape, run as its own process."""

from __future__ import annotations

import pytest

from benchmarks.sse_source import SSESource  # noqa: E402
from trtclient import TritonClient


def test_source_serves_streams_generate_and_metadata_then_stops() -> None:
    source = SSESource(tokens=5, text_bytes=3).start()
    process = source.process
    assert process is not None
    try:
        with TritonClient(source.url) as client:
            assert client.is_server_ready()
            inputs = client.model_inputs()
            assert inputs.supports("min_tokens") and inputs.supports("return_num_output_tokens")
            with client.generate_stream("a b c", max_tokens=99, return_perf_metrics=True) as stream:
                chunks = list(stream)
            assert [c.text for c in chunks] == [" ww"] * 5
            first = chunks[0].response
            last = chunks[-1].response.last_token_time_ns
            assert first.arrival_time_ns is not None and first.first_token_time_ns is not None
            assert last is not None
            assert first.arrival_time_ns <= first.first_token_time_ns <= last
            counted = list(
                client.generate_stream("a b c", return_num_output_tokens=True, return_num_input_tokens=True)
            )
            assert [c.response.num_output_tokens for c in counted] == [1] * 5
            assert counted[0].response.num_input_tokens == 3
            assert client.generate("a", return_num_output_tokens=True).num_output_tokens == 5
    finally:
        source.stop()
    assert process.poll() is not None
    with pytest.raises(RuntimeError, match="not running"):
        _ = source.url


def test_tokens_default_to_the_requests_max_tokens() -> None:
    with SSESource() as source, TritonClient(source.url) as client:
        assert len(list(client.generate_stream("hi", max_tokens=7))) == 7
