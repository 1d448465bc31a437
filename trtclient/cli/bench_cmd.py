"""``trtclient bench``: load-test a Triton TensorRT-LLM model and report TTFT, ITL, TPOT, E2E and tokens/s.

With no ``--url`` it starts the embedded Triton (CPU engine, ``--profile``), runs the tutorials' burst —
20 streaming requests of "What is machine learning?" with max_tokens 20, all at once — prints the
report and stops the server. With ``--url`` it targets any Triton serving the TRT-LLM ensemble.

Ctrl-C stops scheduling, cancels the requests in flight and prints the report of what completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError

__all__ = ["register"]

DEFAULT_PROMPT = "What is machine learning?"
DEFAULT_MAX_TOKENS = 20
DEFAULT_BURST = 20
DEFAULT_REQUESTS = 100

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_LENGTH = re.compile(r"^\s*(\d+)\s*(?:(?:,|\+-|±|:)\s*(\d+(?:\.\d+)?))?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "h": 3600.0}


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
    server.add_argument("--model", default="ensemble", help="model to load-test (default: ensemble)")
    server.add_argument("--transport", choices=("http", "grpc"), default="http", help="default: http")
    server.add_argument("--metrics-url", help="Triton /metrics URL (default: port 8002 of --url's host)")
    server.add_argument("--no-server-metrics", action="store_true", help="do not scrape Triton's /metrics")
    server.add_argument(
        "--read-stamps",
        action="store_true",
        help="stamp event arrivals when the client reads them, not with the kernel's receive time",
    )
    server.add_argument(
        "--profile", default="orin-int4", help="embedded server timing profile (default: orin-int4)"
    )
    server.add_argument(
        "--max-batch-size", type=int, default=64, help="embedded server batch size (default: 64)"
    )
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
    shape.add_argument("--rate", type=float, metavar="R", help="open loop: R requests per second")
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
    load.add_argument("--requests", type=int, metavar="N", help="stop after N measured requests")
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
    work.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="Hugging Face tokenizer dir (default, embedded server: its tokenizer)",
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
    out.add_argument("--records", type=Path, metavar="FILE", help="append one JSONL record per request")
    out.add_argument("--plots", type=Path, metavar="DIR", help="write latency.png and timeline.png")
    out.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    progress = out.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="live progress line on stderr (default: if stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(handler=run)


# ---------------------------------------------------------------- argument parsing


def parse_seconds(text: str, flag: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{flag} expects a duration such as 30, 30s, 500ms or 2m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_warmup(text: str | None) -> tuple[int, float]:
    """``--warmup``: ``N`` requests or a duration with a unit (``5s``) → (requests, seconds)."""
    if text is None:
        return 0, 0.0
    if text.strip().isdigit():
        return int(text), 0.0
    return 0, parse_seconds(text, "--warmup")


def parse_length(text: str, flag: str) -> tuple[int, float]:
    """``128`` or ``128,16`` (also ``128+-16``, ``128±16``) → (mean, stddev)."""
    match = _LENGTH.match(text)
    if not match:
        raise UsageError(f"{flag} expects MEAN or MEAN,STDDEV in tokens (e.g. 128 or 128,16), got {text!r}")
    return int(match.group(1)), float(match.group(2) or 0.0)


def parse_slos(items: list[str]) -> dict[str, float]:
    """``ttft=500`` (ms) → ``{"ttft": 500e6}`` (ns)."""
    from trtclient.metrics import SLO_METRICS

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.replace(":", "=", 1).partition("=")
        name = name.strip().removesuffix("_ms")
        if not sep or name not in SLO_METRICS:
            raise UsageError(
                f"--slo expects METRIC=MS with METRIC one of {', '.join(SLO_METRICS)}, got {item!r}"
            )
        try:
            ms = parse_seconds(value.strip().removesuffix("ms") + "ms", "--slo")
        except UsageError:
            raise UsageError(f"--slo {name} needs a number of milliseconds, got {value!r}") from None
        out[name] = ms * 1e9
    return out


#: Inputs the bench sets itself, and the flag that controls each.
RESERVED_PARAMS = {
    "text_input": "--prompt, --dataset or --input-tokens",
    "max_tokens": "--max-tokens (or --output-tokens)",
    "stream": "nothing: the bench always streams",
    "min_tokens": "--force-output-length",
    "min_length": "--force-output-length",
    "end_id": "--end-id",
    "return_num_input_tokens": "nothing: requested automatically when the model has it",
    "return_num_output_tokens": "nothing: requested automatically when the model has it",
    "return_perf_metrics": "nothing: requested automatically on loopback servers",
}


def parse_params(items: list[str]) -> dict[str, Any]:
    """``--param NAME=VALUE`` → inputs; VALUE is JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        if name.strip() in RESERVED_PARAMS:
            raise UsageError(
                f"--param {name.strip()}: the bench sets it; use {RESERVED_PARAMS[name.strip()]}"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[name.strip()] = value
    return out


def _positive(value: float | int | None, flag: str) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")


def build_spec(args: argparse.Namespace, *, default_tokenizer: Callable[[], Path] | None) -> Any:
    """Turn the command line into a :class:`~trtclient.bench.session.BenchSpec`."""
    from trtclient.bench import schedule as sc
    from trtclient.bench.session import BenchSpec
    from trtclient.bench.workload import TokenCounter, WorkloadError

    for flag in ("burst", "concurrency", "rate", "max_concurrency", "requests", "timeout", "max_tokens"):
        _positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.every is not None and args.concurrency is None and args.rate is None:
        every: float | None = parse_seconds(args.every, "--every")
        _positive(every, "--every")
    elif args.every is not None:
        raise UsageError("--every repeats a burst; use it with --burst")
    else:
        every = None
    ramp = parse_seconds(args.ramp_up, "--ramp-up") if args.ramp_up else 0.0
    duration = parse_seconds(args.duration, "--duration") if args.duration else None
    _positive(duration, "--duration")
    if args.rate is None and (args.max_concurrency is not None or args.burstiness != 1.0):
        raise UsageError("--max-concurrency and --burstiness apply to an open loop (--rate)")
    if ramp and args.concurrency is None and args.rate is None:
        raise UsageError("--ramp-up applies to --concurrency and --rate")
    try:
        shape: sc.LoadShape
        if args.concurrency is not None:
            shape = sc.Concurrency(args.concurrency)
        elif args.rate is not None:
            arrival: sc.Arrival = "gamma" if args.burstiness != 1.0 else args.arrival
            shape = sc.Rate(args.rate, arrival, args.burstiness, args.max_concurrency)
        else:
            shape = sc.Burst(args.burst or DEFAULT_BURST, every)
        requests = args.requests
        if requests is None and duration is None:
            if isinstance(shape, sc.Burst) and shape.every_s is None:
                requests = shape.size
            elif isinstance(shape, sc.Burst):
                raise UsageError("--every needs --requests or --duration to know when to stop")
            else:
                requests = DEFAULT_REQUESTS
        stop = sc.Stop(requests=requests, seconds=duration)
        warm_requests, warm_seconds = parse_warmup(args.warmup)
        warmup = sc.Warmup(warm_requests, warm_seconds)
        if (warm_requests or warm_seconds) and isinstance(shape, sc.Burst) and shape.every_s is None:
            raise UsageError("a single burst leaves nothing to measure after a warm-up: add --every T")
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    tokenizer = None
    try:
        tokenizer_dir = args.tokenizer or (default_tokenizer() if default_tokenizer else None)
        if tokenizer_dir is not None:
            tokenizer = TokenCounter.from_dir(tokenizer_dir)
        workload, sets_lengths = _workload(args, tokenizer)
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None
    return BenchSpec(
        shape=shape,
        stop=stop,
        workload=workload,
        model=args.model,
        warmup=warmup,
        ramp_up_s=ramp,
        seed=args.seed,
        tokenizer=tokenizer,
        force_output_length="auto" if args.force is None else args.force,
        workload_sets_lengths=sets_lengths,
        end_id=args.end_id,
        extra_inputs=parse_params(args.param),
        slos_ns=parse_slos(args.slo),
        read_timeout_s=args.timeout,
        transport=args.transport,
        records_path=args.records,
        scrape_metrics=not args.no_server_metrics,
        kernel_stamps=not args.read_stamps,
        headers=parse_headers(args.header),
        verify=_verify(args),
    )


def parse_headers(items: list[str]) -> dict[str, str]:
    """``NAME:VALUE`` strings to a header mapping; the error names the header, never its value."""
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            shown = name if sep else "(no ':')"
            raise UsageError(f"--header takes NAME:VALUE; got a header named {shown!r}")
        headers[name] = value.strip()
    return headers


def _verify(args: argparse.Namespace) -> bool | str:
    if args.insecure and args.cacert:
        raise UsageError("--insecure and --cacert contradict each other; pick one")
    if args.cacert is not None:
        if not args.cacert.is_file():
            raise UsageError(f"--cacert {args.cacert}: no such file")
        return str(args.cacert)
    return not args.insecure


def _workload(args: argparse.Namespace, tokenizer: Any) -> tuple[Any, bool]:
    """The workload and whether it sets each request's output length."""
    from trtclient.bench import workload as wl

    synthetic = args.input_tokens is not None or args.output_tokens is not None
    chosen = [
        name
        for name, on in (
            ("--prompt", args.prompt),
            ("--dataset", args.dataset),
            ("--input-tokens", synthetic),
        )
        if on
    ]
    if len(chosen) > 1:
        raise UsageError(f"choose one workload: {' or '.join(chosen)}")
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS
    if synthetic:
        if args.input_tokens is None or args.output_tokens is None:
            raise UsageError("synthetic prompts need both --input-tokens and --output-tokens")
        if args.max_tokens is not None:
            raise UsageError("--max-tokens does not apply to synthetic prompts (use --output-tokens)")
        if tokenizer is None:
            raise UsageError(
                "synthetic prompts need a tokenizer: pass --tokenizer DIR (a Hugging Face tokenizer)"
            )
        source = _corpus_text()
        i_mean, i_std = parse_length(args.input_tokens, "--input-tokens")
        o_mean, o_std = parse_length(args.output_tokens, "--output-tokens")
        inputs, outputs = wl.Length(i_mean, i_std), wl.Length(o_mean, o_std)
        return wl.SyntheticPrompts(tokenizer, inputs, outputs, seed=args.seed, source_text=source), True
    if args.dataset is not None:
        fmt = args.dataset_format
        if fmt == "auto":
            fmt = "jsonl" if args.dataset.suffix == ".jsonl" else "sharegpt"
        if fmt == "jsonl":
            return wl.JsonlPrompts(
                args.dataset, max_tokens, tokenizer=tokenizer, seed=args.seed, shuffle=args.shuffle
            ), False
        return wl.ShareGptPrompts(
            args.dataset, max_tokens, tokenizer=tokenizer, seed=args.seed
        ), tokenizer is not None
    return wl.FixedPrompt(
        DEFAULT_PROMPT if args.prompt is None else args.prompt, max_tokens, tokenizer
    ), False


def _corpus_text() -> str | None:
    try:
        from trtclient.server.tokenizer import corpus_text
    except ImportError:
        return None
    return corpus_text()


# ---------------------------------------------------------------- running


def check_url(url: str, transport: str, flag: str = "--url") -> str:
    """The URL in canonical form, or one readable line (credentials never echoed)."""
    from trtclient.protocol import normalize_url

    try:
        return normalize_url(url, transport="grpc" if transport == "grpc" else "http")
    except ValueError as exc:
        shown = re.sub(r"//[^/@]*@", "//", url)
        raise UsageError(f"{flag}: invalid server URL {shown!r} ({exc})") from None


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot be written before any load is sent."""
    for flag in ("records", "json", "csv", "html"):
        path: Path | None = getattr(args, flag, None)
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"--{flag} {path}: is a directory; give a file name")
        if not parent.is_dir():
            raise UsageError(f"--{flag} {path}: the directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"--{flag} {path}: the directory {parent} is not writable")
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        raise UsageError(f"--plots {args.plots}: not a directory")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (starting the embedded server when no --url is given) and print the report."""
    check_outputs(args)
    if args.url:
        url = check_url(args.url, args.transport)
        metrics_url = check_url(args.metrics_url, "http", "--metrics-url") if args.metrics_url else None
        spec = build_spec(args, default_tokenizer=None)
        return _bench(args, spec, url, metrics_url, server_info={"server": "external"})
    from trtclient.server.launcher import EmbeddedTriton
    from trtclient.server.tokenizer import default_tokenizer_dir

    _positive(args.max_batch_size, "--max-batch-size")
    spec = build_spec(args, default_tokenizer=default_tokenizer_dir)
    print(f"starting the embedded Triton server (profile {args.profile}) ...", file=sys.stderr, flush=True)
    with EmbeddedTriton(
        profile=args.profile,
        max_batch_size=args.max_batch_size,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    ) as server:
        url = server.grpc_url if args.transport == "grpc" else server.url
        print(f"serving at {server.url} (metrics {server.metrics_url})", file=sys.stderr, flush=True)
        info = {"server": "embedded", "profile": args.profile, "max_batch_size": args.max_batch_size}
        return _bench(args, spec, url, args.metrics_url or server.metrics_url, server_info=info)


def _bench(
    args: argparse.Namespace, spec: Any, url: str, metrics_url: str | None, server_info: dict[str, Any]
) -> int:
    from trtclient.bench.progress import ProgressLine
    from trtclient.bench.report import format_console, write_csv, write_json
    from trtclient.bench.session import BenchError, run_bench

    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    line = ProgressLine(sys.stderr) if show_progress else None

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            # A second Ctrl-C interrupts at once.
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
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
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            if line is not None:
                line.clear()

    try:
        outcome = asyncio.run(main())
    except BenchError as exc:
        raise UsageError(str(exc)) from None
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
    if written:
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    if report.interrupted:
        return 130
    counts = report.metrics.counts
    return 1 if counts.sent and not counts.ok else 0
