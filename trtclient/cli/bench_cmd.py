"""``trtclient bench``: load-test a Triton TensorRT-LLM model and report TTFT, ITL, TPOT, E2E and tokens/s.

With no ``--url`` it starts the embedded Triton (CPU engine, ``--profile``), runs the tutorials' burst —
20 streaming requests of "What is machine learning?" with max_tokens 20, all at once — prints the
report and stops the server. With ``--url`` it targets any Triton serving the TRT-LLM ensemble.

Ctrl-C stops scheduling, cancels the requests in flight and prints the report of what completed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from trtclient.cli.bench_args import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPT,
    add_workload_arguments,
    build_spec,
    check_outputs,
    check_url,
)
from trtclient.cli.common import UsageError
from trtclient.cli.peer_flags import add_peer_flags
from trtclient.cli.target import add_embedded_arguments, run_until_signal, serve_target

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="load-test a model: TTFT, ITL, TPOT, E2E, tokens/s (embedded server by default)",
        description=__doc__.replace("``", "").replace("trtclient bench: ", "", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = p.add_argument_group("server")
    server.add_argument("--url", help="Triton HTTP URL (default: start the embedded server)")
    server.add_argument("--model", "-m", default="ensemble", help="model to load-test (default: ensemble)")
    server.add_argument("--transport", choices=("http", "grpc"), default="http", help="default: http")
    server.add_argument("--metrics-url", help="Triton /metrics URL (default: port 8002 of --url's host)")
    server.add_argument("--no-server-metrics", action="store_true", help="do not scrape Triton's /metrics")
    server.add_argument(
        "--read-stamps",
        action="store_true",
        help="stamp event arrivals when the client reads them, not with the kernel's receive time",
    )
    server.add_argument(
        "--no-extra-outputs",
        action="store_true",
        help="do not ask for return_num_*_tokens and return_perf_metrics (smaller events; token counts "
        "then come from the tokenizer or the events)",
    )
    add_embedded_arguments(server)
    server.add_argument("--timeout", type=float, default=300.0, help="read timeout in seconds (default: 300)")
    server.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="HTTP header sent with every request, e.g. an API key (repeatable; values never reach reports)",
    )
    server.add_argument(
        "--cacert", type=Path, metavar="FILE", help="CA bundle to verify an https server with"
    )
    server.add_argument(
        "--insecure", action="store_true", help="do not verify the https server's certificate"
    )

    load = p.add_argument_group("load shape (one of; default: --burst 20)")
    shape = load.add_mutually_exclusive_group()
    shape.add_argument("--burst", type=int, metavar="N", help="N requests at once")
    shape.add_argument("--concurrency", type=int, metavar="N", help="closed loop: N requests in flight")
    shape.add_argument(
        "--rate", "--request-rate", type=float, metavar="R", help="open loop: R requests per second"
    )
    load.add_argument("--every", metavar="T", help="repeat the burst every T seconds")
    load.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="open-loop arrivals (default: poisson)",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="gamma shape: 1 Poisson, <1 burstier, >1 smoother (implies --arrival gamma)",
    )
    load.add_argument("--max-concurrency", type=int, metavar="N", help="open loop: at most N in flight")
    load.add_argument("--ramp-up", metavar="T", help="ramp the rate or concurrency up over T seconds")
    load.add_argument(
        "--warmup", metavar="N|Ts", help="warm-up excluded from results: N requests or T seconds"
    )
    load.add_argument(
        "--no-fresh-warmup",
        action="store_true",
        help="measure from the first request even on a server that has served none (default: one "
        "unmeasured request goes first there)",
    )
    load.add_argument(
        "--requests", "--request-count", type=int, metavar="N", help="stop after N measured requests"
    )
    load.add_argument("--duration", metavar="T", help="stop after T seconds of measurement (30, 30s, 2m)")
    load.add_argument("--seed", type=int, default=0, help="seed of arrivals and workloads (default: 0)")

    work = p.add_argument_group("workload (default: the tutorial prompt)")
    work.add_argument("--prompt", help=f"fixed prompt (default: {DEFAULT_PROMPT!r})")
    work.add_argument(
        "--max-tokens", type=int, help=f"max_tokens per request (default: {DEFAULT_MAX_TOKENS})"
    )
    work.add_argument("--input-tokens", metavar="MEAN[,STD]", help="synthetic prompts of this many tokens")
    work.add_argument("--output-tokens", metavar="MEAN[,STD]", help="synthetic output lengths")
    work.add_argument("--dataset", type=Path, metavar="FILE", help="prompts from a JSONL or ShareGPT file")
    work.add_argument("--dataset-format", choices=("auto", "jsonl", "sharegpt"), default="auto")
    work.add_argument("--shuffle", action="store_true", help="shuffle a JSONL dataset (seeded)")
    add_workload_arguments(work)
    work.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="Hugging Face tokenizer dir, or 'embedded' for the embedded server's (its default there)",
    )
    force = work.add_mutually_exclusive_group()
    force.add_argument(
        "--force-output-length",
        dest="force",
        action="store_true",
        default=None,
        help="send min_tokens = max_tokens (default: on for synthetic, ShareGPT)",
    )
    force.add_argument("--no-force-output-length", dest="force", action="store_false")
    work.add_argument("--end-id", type=int, help="end_id to send (an id the model never emits forces length)")
    work.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra model input, VALUE parsed as JSON when it can be (repeatable)",
    )

    out = p.add_argument_group("outputs")
    out.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC=MS",
        help="goodput SLO, ms, on ttft, ttft_sched, tpot, e2e, e2e_sched (repeatable)",
    )
    out.add_argument("--json", type=Path, metavar="FILE", help="write the JSON summary")
    out.add_argument("--csv", type=Path, metavar="FILE", help="write one CSV row per request")
    out.add_argument(
        "--records", type=Path, metavar="FILE", help="one JSONL record per request, with the run's id"
    )
    out.add_argument("--append", action="store_true", help="add to --records FILE instead of replacing it")
    out.add_argument("--plots", type=Path, metavar="DIR", help="write latency.png and timeline.png")
    out.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    memory = out.add_mutually_exclusive_group()
    memory.add_argument(
        "--bounded-memory",
        action="store_true",
        help="summaries from streaming histograms (percentiles within 0.5%%), per-request detail only to "
        "--records: memory stays flat on long runs (not with --csv, --plots or --html); the default for "
        "runs of 10 minutes or more, or 100,000 requests or more, that write none of those",
    )
    memory.add_argument(
        "--exact-summaries",
        action="store_true",
        help="keep every request in memory and compute exact percentiles, however long the run",
    )
    out.add_argument(
        "--export-format",
        action="append",
        default=[],
        choices=("genai-perf", "aiperf"),
        help="also write GenAI-Perf's or AIPerf's summary JSON and CSV, beside --json (repeatable)",
    )
    progress = out.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="live progress line on stderr (default: if stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    add_peer_flags(p)
    gate = p.add_argument_group("exit status (for CI; see the exit code table in docs/bench.md)")
    gate.add_argument(
        "--max-failures",
        default="0",
        metavar="N|N%",
        help="failed requests tolerated before the exit code is 3 (default: 0)",
    )
    gate.add_argument(
        "--fail-on-slo",
        action="store_true",
        help="exit 4 when a measured request missed an --slo (goodput below 100%%)",
    )
    p.set_defaults(handler=run)


# ---------------------------------------------------------------- argument parsing


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (starting the embedded server when no --url is given) and print the report."""
    check_outputs(args)
    failure_budget(args)  # a bad --max-failures or --fail-on-slo fails before any load
    if args.url:
        check_url(args.url, args.transport)
        spec = build_spec(args, default_tokenizer=None)
    else:
        from trtclient.server.launcher import EmbeddedTriton
        from trtclient.server.tokenizer import default_tokenizer_dir

        spec = build_spec(
            args, default_tokenizer=default_tokenizer_dir, max_input_len=EmbeddedTriton.max_input_len
        )
    if spec.bounded_memory and not args.bounded_memory:
        print(
            "trtclient bench: a long run keeps its summaries in streaming histograms (percentiles within "
            "0.5%) and every request only in --records, if given; --exact-summaries keeps them all in memory",
            file=sys.stderr,
        )
    with serve_target(args) as target:
        return _bench(args, spec, target.url, target.metrics_url, server_info=target.info)


def _bench(
    args: argparse.Namespace, spec: Any, url: str, metrics_url: str | None, server_info: dict[str, Any]
) -> int:
    from trtclient.bench.progress import ProgressLine
    from trtclient.bench.report import format_console, write_csv, write_json
    from trtclient.bench.session import run_bench

    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    line = ProgressLine(sys.stderr) if show_progress else None

    async def work(stop: asyncio.Event) -> Any:
        try:
            return await run_bench(
                spec,
                url,
                metrics_url=metrics_url,
                stop=stop,
                on_progress=line.update if line else None,
                extra_config=server_info,
            )
        finally:
            if line is not None:
                line.clear()

    outcome = run_until_signal(work)  # a BenchError is exit_codes.ERROR: the run could not be made
    report = outcome.report
    print(format_console(report), flush=True)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(outcome.result.records, args.csv)
    if args.plots:
        from trtclient.bench.plots import PlotsUnavailable, write_plots

        try:
            write_plots(outcome.result.records, args.plots)
        except PlotsUnavailable as exc:
            raise UsageError(str(exc)) from None
    if args.html:
        from trtclient.bench.html_report import bench_html, write_html
        from trtclient.bench.plots import PlotsUnavailable
        from trtclient.bench.report import to_json

        try:
            write_html(bench_html(to_json(report), outcome.result.records, outcome.server_scrapes), args.html)
        except PlotsUnavailable as exc:
            raise UsageError(str(exc)) from None
    written = [str(p) for p in (args.json, args.csv, args.records, args.plots, args.html) if p]
    if args.export_format:
        from trtclient.bench.peer_export import write_peer_export
        from trtclient.bench.report import to_json

        summary = to_json(report)
        for fmt in dict.fromkeys(args.export_format):
            written += [str(p) for p in write_peer_export(summary, fmt, args.json)]
    if written:
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    return run_exit_code(report.metrics, report.interrupted, failure_budget(args), args.fail_on_slo)


def failure_budget(args: argparse.Namespace) -> Any:
    """``--max-failures`` read, with ``--fail-on-slo`` checked against ``--slo``."""
    from trtclient.exit_codes import parse_max_failures

    if getattr(args, "fail_on_slo", False) and not (args.slo or getattr(args, "goodput", None)):
        raise UsageError("--fail-on-slo needs at least one --slo METRIC=MS to hold the run to")
    try:
        return parse_max_failures(args.max_failures)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def slo_missed(metrics: Any) -> bool:
    """True when SLOs were set and some measured request missed one."""
    return metrics.good_requests is not None and metrics.good_requests < metrics.counts.ok


def run_exit_code(metrics: Any, interrupted: bool, budget: Any, fail_on_slo: bool = False) -> int:
    """The shared exit code (trtclient.exit_codes) of one run's metrics."""
    from trtclient.exit_codes import exit_code

    c = metrics.counts
    return exit_code(
        interrupted=interrupted,
        sent=c.sent,
        failed=c.failed,
        measured_ok=c.ok,
        budget=budget,
        slo_missed=fail_on_slo and slo_missed(metrics),
    )
