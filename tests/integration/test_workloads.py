"""Workload shapes against the real embedded Triton with the orin-int4 profile, where timing matters.

The CPU engine's KV cache reuses the full blocks a prompt shares with an earlier one
(``enable_kv_cache_reuse``, on in the embedded server) and prefills only the rest, so prompts that share a
long prefix get their first token sooner than unique prompts of the same length. Requests go one at a
time (concurrency 1): each TTFT is then the prefill alone, not queueing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.breakdown import breakdown
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Concurrency, Stop
from trtclient.loadtest.shared_prefix import SharedPrefixPrompts, SharedPrefixSpec
from trtclient.loadtest.workload import Length, SyntheticPrompts, TokenCounter, Workload
from trtclient.server.launcher import EmbeddedTriton, ServerHandle
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir

pytestmark = pytest.mark.integration

PREFIX, SUFFIX, OUTPUT, BLOCK = 512, 32, 4, 64


@pytest.fixture(scope="module")
def orin_server() -> Iterator[ServerHandle]:
    with EmbeddedTriton(profile="orin-int4") as server:
        yield server.handle


@pytest.fixture(scope="module")
def tokenizer() -> TokenCounter:
    return TokenCounter.from_dir(default_tokenizer_dir())


async def _run(
    server: ServerHandle, workload: Workload, tokenizer: TokenCounter, n: int
) -> list[RequestRecord]:
    spec = BenchSpec(
        Concurrency(1), Stop(requests=n), workload, tokenizer=tokenizer, workload_sets_lengths=True
    )
    outcome = await run_bench(spec, server.url, metrics_url=None)
    assert outcome.report.metrics.counts.ok == n
    return outcome.result.records


async def test_shared_prefixes_cut_ttft_and_report_the_expected_hit_rate(
    orin_server: ServerHandle, tokenizer: TokenCounter
) -> None:
    corpus = corpus_text()
    shared = SharedPrefixPrompts(
        tokenizer, SharedPrefixSpec(2, PREFIX), Length(SUFFIX), Length(OUTPUT), seed=3, source_text=corpus
    )
    unique = SyntheticPrompts(tokenizer, Length(PREFIX + SUFFIX), Length(OUTPUT), seed=4, source_text=corpus)
    shared_records = await _run(orin_server, shared, tokenizer, 8)
    unique_records = await _run(orin_server, unique, tokenizer, 8)

    assert all(r.input_tokens == PREFIX + SUFFIX for r in shared_records + unique_records)
    split = breakdown(shared_records)
    hits = next(g for g in split.kv_cache if g.label == "hit")
    misses = [g for g in split.kv_cache if g.label == "miss"]
    # the first request of each prefix misses, every later one finds all the prefix's full blocks
    assert hits.ok >= 6 and sum(g.ok for g in misses) <= 2
    expected = (PREFIX // BLOCK) / -(-(PREFIX + SUFFIX + OUTPUT) // BLOCK)
    assert hits.kv_hit_rate == pytest.approx(expected, abs=0.02)
    assert all(m.kv_hit_rate(r) == 0 for r in unique_records)

    shared_p50 = m.summarize(m.ttft_ns(r) or 0 for r in shared_records)
    unique_p50 = m.summarize(m.ttft_ns(r) or 0 for r in unique_records)
    assert shared_p50 is not None and unique_p50 is not None
    assert shared_p50.p50 < unique_p50.p50 / 2
