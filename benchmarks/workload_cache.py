"""What KV-cache reuse does to TTFT: shared-prefix prompts against unique prompts of the same lengths.

The embedded Triton with the ``orin-int4`` profile, reuse on (its default) and then off
(``enable_kv_cache_reuse`` false). Each server gets, one request at a time (concurrency 1, so TTFT is
prefill, not queueing), 16 prompts of 512 + 32 tokens drawn from 4 shared prefixes of 512 tokens, then
16 unique prompts of 544 tokens, 4 output tokens each. Printed: TTFT p50 of each, and the engine's mean
KV hit rate (reused / total blocks) of the shared-prefix requests that hit.

Then trace replay (:mod:`benchmarks.trace_replay`): how late each send of a replayed trace was against the
trace's time.
"""

from __future__ import annotations

import asyncio

from benchmarks.common import Row
from benchmarks.trace_replay import replay_rows
from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest import metrics as m
from trtclient.loadtest.breakdown import breakdown
from trtclient.loadtest.records import RequestRecord
from trtclient.loadtest.schedule import Concurrency, Stop
from trtclient.loadtest.shared_prefix import SharedPrefixPrompts, SharedPrefixSpec
from trtclient.loadtest.workload import Length, SyntheticPrompts, TokenCounter, Workload
from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir

__all__ = ["run"]

NAME = "workload_cache"
GROUPS, PREFIX, SUFFIX, OUTPUT, REQUESTS = 4, 512, 32, 4, 16


async def _records(url: str, workload: Workload, tokenizer: TokenCounter) -> list[RequestRecord]:
    spec = BenchSpec(
        Concurrency(1), Stop(requests=REQUESTS), workload, tokenizer=tokenizer, workload_sets_lengths=True
    )
    outcome = await run_bench(spec, url, metrics_url=None)
    return outcome.result.records


def _p50_ms(records: list[RequestRecord]) -> float:
    s = m.summarize(v for v in (m.ttft_ns(r) for r in records if r.status == "ok") if v is not None)
    return float("nan") if s is None else s.p50 / 1e6


def run() -> list[Row]:
    tokenizer = TokenCounter.from_dir(default_tokenizer_dir())
    corpus = corpus_text()
    rows: list[Row] = []
    for reuse in (True, False):
        shared = SharedPrefixPrompts(
            tokenizer, SharedPrefixSpec(GROUPS, PREFIX), Length(SUFFIX), Length(OUTPUT), source_text=corpus
        )
        unique = SyntheticPrompts(
            tokenizer, Length(PREFIX + SUFFIX), Length(OUTPUT), seed=1, source_text=corpus
        )
        with EmbeddedTriton(profile="orin-int4", kv_cache_reuse=reuse) as server:
            shared_records = asyncio.run(_records(server.url, shared, tokenizer))
            unique_records = asyncio.run(_records(server.url, unique, tokenizer))
        hits = [g for g in breakdown(shared_records).kv_cache if g.label == "hit"]
        rate = hits[0].kv_hit_rate if hits and hits[0].kv_hit_rate is not None else 0.0
        label = "reuse on" if reuse else "reuse off"
        a, b = _p50_ms(shared_records), _p50_ms(unique_records)
        print(
            f"  {label:<9}  TTFT p50 shared-prefix {a:7.1f} ms, unique {b:7.1f} ms "
            f"(x{b / a:.1f}); hit rate of hits {rate:.0%} ({hits[0].ok if hits else 0} of {REQUESTS} hit)",
            flush=True,
        )
        rows.append(
            Row(NAME, f"TTFT p50 shared-prefix, {label}", a, "ms", f"{GROUPS}x{PREFIX}+{SUFFIX} tokens")
        )
        rows.append(Row(NAME, f"TTFT p50 unique, {label}", b, "ms", f"{PREFIX + SUFFIX} tokens"))
        rows.append(Row(NAME, f"KV hit rate of hits, {label}", rate, "ratio"))
    return rows + replay_rows(tokenizer)
