"""One benchmark against one server: check the model, pick the request options, run, scrape, report.

:func:`run_bench` is what ``trtclient bench`` runs once it knows the server's URL; tests and benchmarks
call it directly. It reads the model's inputs first, so it only asks for what the server supports:
``min_tokens`` (or ``min_length``) to force output lengths, ``return_num_*_tokens`` for server-side
token counts, ``return_perf_metrics`` for the engine's timestamps (on loopback servers only, where the
clocks compare).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trtclient import rxstamp
from trtclient.bench.lag_causes import explain_lag
from trtclient.bench.preopen import connections_needed, open_connections, prime_fresh_server
from trtclient.bench.progress import Counters
from trtclient.bench.report import Report, client_warnings
from trtclient.bench.runner import RunConfig, Runner, RunResult
from trtclient.bench.scrape import MetricsScraper
from trtclient.bench.url_diagnosis import diagnose
from trtclient.client import AsyncTritonClient
from trtclient.errors import RequestValidationError, TritonError
from trtclient.inputs import ModelInputs
from trtclient.loadtest import metrics as m
from trtclient.loadtest.accumulator import LATENCY_SOURCE, RunAccumulator
from trtclient.loadtest.breakdown import breakdown
from trtclient.loadtest.heap import frozen_heap
from trtclient.loadtest.records import JsonlSink, RequestRecord, new_run_id
from trtclient.loadtest.request_options import Auto, RequestOptions, resolve_options
from trtclient.loadtest.schedule import Burst, Concurrency, LoadShape, Replay, Stop, Warmup
from trtclient.loadtest.workload import Prompt, TokenCounter, Workload, WorkloadError
from trtclient.options import Timeout
from trtclient.prometheus import Sample
from trtclient.timing import EPOCH_OFFSET_NS
from trtclient.urls import redact_url

__all__ = ["BenchError", "BenchOutcome", "BenchSpec", "describe_shape", "run_bench"]


class BenchError(TritonError):
    """The benchmark cannot run as asked (server unreachable, model missing, unsupported input)."""


@dataclass
class BenchSpec:
    """Everything one run needs besides the server's address."""

    shape: LoadShape
    stop: Stop
    workload: Workload
    model: str = "ensemble"
    warmup: Warmup = Warmup()
    ramp_up_s: float = 0.0
    seed: int = 0
    tokenizer: TokenCounter | None = None
    force_output_length: bool | Auto = "auto"
    """``"auto"``: force when the workload sets output lengths and the model has ``min_tokens``."""
    workload_sets_lengths: bool = False
    end_id: int | None = None
    server_token_counts: bool | Auto = "auto"
    perf_metrics: bool | Auto = "auto"
    extra_inputs: dict[str, Any] = field(default_factory=dict)
    slos_ns: dict[str, float] = field(default_factory=dict)
    read_timeout_s: float | None = 300.0
    transport: Literal["http", "grpc"] = "http"
    records_path: Path | None = None
    records_append: bool = False
    """Append to ``records_path`` (each record carries its run's id) instead of starting it afresh."""
    scrape_metrics: bool = True
    scrape_interval_s: float = 0.5
    kernel_stamps: bool = True
    """Stamp event arrivals with the kernel's receive time where available (False: the client's reads)."""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Sent with every request (e.g. an API key); only their names reach reports."""
    verify: bool | str = True
    """TLS verification for https: True (system CAs), False, or a CA bundle path."""
    bounded_memory: bool = False
    """Summaries from streaming histograms, records only to ``records_path``: memory stays flat however
    long the run (the result then holds no records; see :mod:`trtclient.loadtest.accumulator`)."""
    prime_fresh_server: bool = True
    """Send one unmeasured request first when the model has served none (its cold path)."""


@dataclass
class BenchOutcome:
    """A finished (or interrupted) run."""

    report: Report
    result: RunResult
    server_scrapes: list[tuple[int, list[Sample]]] = field(default_factory=list)
    """Each /metrics scrape with its ``now_ns()`` time (for plots of the server over time)."""


def describe_shape(shape: LoadShape) -> str:
    """A short human description of a load shape."""
    if isinstance(shape, Burst):
        every = f", every {shape.every_s:g} s" if shape.every_s else ""
        return f"burst of {shape.size} at once{every}"
    if isinstance(shape, Concurrency):
        return f"closed loop, {shape.concurrency} in flight"
    if isinstance(shape, Replay):
        return f"trace replay, {len(shape.offsets_ns)} arrivals at {shape.speed:g}x"
    extra = f", burstiness {shape.burstiness:g}" if shape.arrival == "gamma" else ""
    cap = f", at most {shape.max_concurrency} in flight" if shape.max_concurrency else ""
    return f"open loop, {shape.rate:g} req/s {shape.arrival}{extra}{cap}"


def _resolve_options(spec: BenchSpec, inputs: ModelInputs, url: str, notes: list[str]) -> RequestOptions:
    try:
        return resolve_options(
            inputs,
            model=spec.model,
            url=url,
            force_output_length=spec.force_output_length,
            lengths_set=spec.workload_sets_lengths,
            end_id=spec.end_id,
            server_token_counts=spec.server_token_counts,
            perf_metrics=spec.perf_metrics,
            extra_inputs=spec.extra_inputs,
            notes=notes,
        )
    except RequestValidationError as exc:
        raise BenchError(str(exc)) from None


def _config(spec: BenchSpec, url: str, options: RequestOptions, extra: Mapping[str, Any]) -> dict[str, Any]:
    shape = spec.shape
    url = redact_url(url)
    load: dict[str, Any] = {"kind": type(shape).__name__.lower(), **vars(shape)}
    if isinstance(shape, Replay):  # the arrival times stay in the trace file
        load = {"kind": "replay", "arrivals": len(shape.offsets_ns), "speed": shape.speed}
    return {
        "description": f"{describe_shape(shape)} · {spec.workload.description} · {spec.model} at {url}",
        "url": url,
        "model": spec.model,
        "transport": spec.transport,
        "header_names": sorted(spec.headers),
        "tls_verify": spec.verify if isinstance(spec.verify, bool) else f"CA bundle {spec.verify}",
        "load": load,
        "ramp_up_s": spec.ramp_up_s,
        "warmup": {"requests": spec.warmup.requests, "seconds": spec.warmup.seconds},
        "stop": {"requests": spec.stop.requests, "seconds": spec.stop.seconds},
        "workload": spec.workload.description,
        "seed": spec.seed,
        "request_options": {
            "force_output_length": options.force_output_length,
            "end_id": options.end_id,
            "server_token_counts": options.server_token_counts,
            "perf_metrics": options.perf_metrics,
            "extra_inputs": dict(options.extra),
        },
        "slos_ms": {k: v / 1e6 for k, v in spec.slos_ns.items()},
        "epoch_offset_ns": EPOCH_OFFSET_NS,
        **extra,
    }


def arrival_clock(records: list[RequestRecord]) -> str | None:
    """What stamped the run's event arrivals: ``"kernel"``, ``"read"``, ``"mixed"``, None (no response)."""
    clocks = {r.arrival_clock for r in records if r.arrival_clock is not None}
    if len(clocks) > 1:
        return "mixed"
    return clocks.pop() if clocks else None


def unforced_length_check(records: list[RequestRecord]) -> list[str]:
    """Output lengths the workload asked for but could not force: how many came back as asked."""
    ok = [r for r in m.measured(records) if r.status == "ok" and r.requested_output_tokens is not None]
    counted = [r for r in ok if r.output_tokens is not None]
    if not counted:
        return []
    exact = sum(1 for r in counted if r.output_tokens == r.requested_output_tokens)
    asked = sum(r.requested_output_tokens or 0 for r in counted) / len(counted)
    got = sum(r.output_tokens or 0 for r in counted) / len(counted)
    return [
        f"output lengths not forced: {exact} of {len(counted)} requests got the length asked "
        f"(asked {asked:.1f} tokens on average, got {got:.1f})"
    ]


async def _model_inputs(client: AsyncTritonClient, url: str, model: str, transport: str) -> ModelInputs:
    try:
        return await client.model_inputs(model)
    except TritonError as exc:
        hint = await asyncio.to_thread(diagnose, url) if transport == "http" else None
        reason = hint or str(exc)
        raise BenchError(f"cannot read model {model!r} from {redact_url(url)}: {reason}") from exc


async def run_bench(
    spec: BenchSpec,
    url: str,
    *,
    metrics_url: str | None = None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Counters], None] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> BenchOutcome:
    """Run ``spec`` against the Triton at ``url``; set ``stop`` to end early with a partial report."""
    notes: list[str] = list(getattr(spec.workload, "notes", []))  # a dataset's skipped entries, lengths
    run_id = new_run_id()
    timeout = Timeout(read=spec.read_timeout_s)
    client = AsyncTritonClient(
        url,
        model=spec.model,
        transport=spec.transport,
        timeout=timeout,
        max_retries=0,
        metrics_url=metrics_url,
        headers=spec.headers,
        verify=spec.verify,
    )
    client.kernel_stamps = spec.kernel_stamps
    client.raw_streams = True  # plain HTTP streams on the client's own connections (the lean path)
    if spec.kernel_stamps:
        rxstamp.keep_enabled()  # now, so that it is on before the first response arrives
    async with client:
        inputs = await _model_inputs(client, url, spec.model, spec.transport)
        options = _resolve_options(spec, inputs, url, notes)
        options.build(Prompt("check", "check", 1))  # a bad --param fails here, before any load
        scraper = None
        if spec.scrape_metrics:
            scraper = MetricsScraper(
                client.metrics, url=redact_url(client.metrics_url), interval_s=spec.scrape_interval_s
            )
            await scraper.start()
        if spec.prime_fresh_server and await prime_fresh_server(
            client, spec.model, options.build(Prompt("warm-up", "warm-up", 1))
        ):
            notes.append("the server had served no request yet: one unmeasured warm-up request went first")
        if spec.transport == "http":
            await open_connections(client, connections_needed(spec.shape))
        sink = (
            JsonlSink(spec.records_path, append=spec.records_append, run_id=run_id)
            if spec.records_path
            else None
        )
        accumulator = RunAccumulator(spec.slos_ns) if spec.bounded_memory else None
        try:
            runner = Runner(
                client,
                spec.workload,
                RunConfig(spec.shape, spec.stop, spec.warmup, spec.ramp_up_s, spec.seed),
                options,
                tokenizer=spec.tokenizer,
                sink=sink,
                on_progress=on_progress,
                accumulator=accumulator,
                keep_records=accumulator is None,
            )
            with frozen_heap():
                result = await runner.run(stop)
        except WorkloadError as exc:
            raise BenchError(str(exc)) from exc
        finally:
            if sink is not None:
                sink.close()
            if scraper is not None:
                await scraper.stop()
    if accumulator is not None:
        run_metrics, clock = accumulator.metrics(), accumulator.arrival_clock
        notes.append(f"latency summaries in bounded memory ({LATENCY_SOURCE})")
    else:
        run_metrics, clock = m.compute_metrics(result.records, spec.slos_ns), arrival_clock(result.records)
        if spec.workload_sets_lengths and not options.force_output_length:
            notes.extend(unforced_length_check(result.records))
    if spec.kernel_stamps and clock in ("read", "mixed"):
        notes.append(
            "event arrivals were stamped when read: kernel receive times need Linux, plain HTTP "
            "and asyncio's own event loop"
        )
    warnings, causes = explain_lag(spec.shape, result.records, client_warnings(run_metrics, result.client))
    notes.extend(causes)
    report = Report(
        config=_config(
            spec, url, options, {"arrival_clock": clock, "run_id": run_id, **(extra_config or {})}
        ),
        metrics=run_metrics,
        client=result.client,
        server=scraper.summary() if scraper is not None else None,
        interrupted=result.interrupted,
        warnings=warnings,
        notes=notes,
        workload=breakdown(result.records),
    )
    scrapes = list(zip(scraper.stamps_ns, scraper.scrapes, strict=True)) if scraper is not None else []
    return BenchOutcome(report=report, result=result, server_scrapes=scrapes)
