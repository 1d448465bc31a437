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
from trtclient.loadtest.sessions import SyntheticSessions
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


@pytest.fixture(scope="module")
def orin_server_without_reuse() -> Iterator[ServerHandle]:
    with EmbeddedTriton(profile="orin-int4", kv_cache_reuse=False) as server:
        yield server.handle


def _first_and_later_turns(records: list[RequestRecord]) -> tuple[float, float]:
    split = {g.label: g for g in breakdown(records).turns}
    assert set(split) == {"turn 1", "turn 2", "turn 3"}
    first = split["turn 1"].ttft
    later = m.summarize(m.ttft_ns(r) or 0 for r in records if r.turn and r.turn > 1)
    assert first is not None and later is not None
    return first.p50, later.p50


@pytest.mark.parametrize("reuse", [True, False])
async def test_later_turns_reach_their_first_token_sooner_only_with_reuse(
    reuse: bool,
    request: pytest.FixtureRequest,
    tokenizer: TokenCounter,
) -> None:
    server: ServerHandle = request.getfixturevalue("orin_server" if reuse else "orin_server_without_reuse")
    chats = SyntheticSessions(
        tokenizer, 3, Length(PREFIX), Length(8), followup=Length(16), seed=5, source_text=corpus_text()
    )
    records = await _run(server, chats, tokenizer, 6)
    assert [r.turn for r in sorted(records, key=lambda r: r.index)] == [1, 2, 3, 1, 2, 3]
    # each turn's prompt is the previous one, its answer and the new message
    by_index = sorted(records, key=lambda r: r.index)
    for before, after in zip(by_index, by_index[1:], strict=False):
        if after.turn != 1:
            assert (after.input_tokens or 0) > (before.input_tokens or 0) + 16
    first, later = _first_and_later_turns(records)
    if reuse:
        assert later < first / 2
        assert all((m.kv_hit_rate(r) or 0) > 0.5 for r in records if r.turn != 1)
    else:
        assert later > first * 0.9
        assert all(m.kv_hit_rate(r) == 0 for r in records)
