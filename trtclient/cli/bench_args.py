"""Reading ``trtclient bench``'s command line into a :class:`~trtclient.bench.session.BenchSpec`: durations,
lengths, SLOs, ``--param`` inputs, headers, TLS, the workload, the server URL and the output paths. Every
mistake raises :class:`~trtclient.cli.common.UsageError` with one line saying what to do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError, check_positive, parse_length, parse_seconds
from trtclient.cli.peer_flags import apply_peer_flags
from trtclient.cli.workload_args import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPT,
    add_workload_arguments,
    build_workload,
    lora_mix,
    replay,
)

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PROMPT",
    "DEFAULT_REQUESTS",
    "RESERVED_PARAMS",
    "LONG_RUN_REQUESTS",
    "LONG_RUN_S",
    "add_workload_arguments",
    "bounded_memory",
    "build_spec",
    "check_outputs",
    "check_positive",
    "check_url",
    "parse_headers",
    "parse_length",
    "parse_params",
    "parse_seconds",
    "parse_slos",
    "parse_warmup",
]

DEFAULT_BURST = 20
DEFAULT_REQUESTS = 100


def parse_warmup(text: str | None) -> tuple[int, float]:
    """``--warmup``: ``N`` requests or a duration with a unit (``5s``) → (requests, seconds)."""
    if text is None:
        return 0, 0.0
    if text.strip().isdigit():
        return int(text), 0.0
    return 0, parse_seconds(text, "--warmup")


def parse_slos(items: list[str]) -> dict[str, float]:
    """``ttft=500`` (ms) → ``{"ttft": 500e6}`` (ns)."""
    from trtclient.loadtest.metrics import SLO_METRICS

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
    "return_num_input_tokens": "--no-extra-outputs to leave it out (asked when the model has it)",
    "return_num_output_tokens": "--no-extra-outputs to leave it out (asked when the model has it)",
    "return_perf_metrics": "--no-extra-outputs to leave it out (asked on loopback servers)",
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


def build_spec(
    args: argparse.Namespace,
    *,
    default_tokenizer: Callable[[], Path] | None,
    max_input_len: int | None = None,
) -> Any:
    """Turn the command line into a :class:`~trtclient.bench.session.BenchSpec`.

    ``max_input_len`` (known for the embedded server) lets prompts that could never fit be refused before
    the run, naming the flag or the trace line.
    """
    from trtclient.bench.session import BenchSpec
    from trtclient.loadtest import schedule as sc
    from trtclient.loadtest.workload import TokenCounter, WorkloadError

    apply_peer_flags(args)
    for flag in ("burst", "concurrency", "rate", "max_concurrency", "requests", "timeout", "max_tokens"):
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.every is not None and args.concurrency is None and args.rate is None:
        every: float | None = parse_seconds(args.every, "--every")
        check_positive(every, "--every")
    elif args.every is not None:
        raise UsageError("--every repeats a burst; use it with --burst")
    else:
        every = None
    ramp = parse_seconds(args.ramp_up, "--ramp-up") if args.ramp_up else 0.0
    duration = parse_seconds(args.duration, "--duration") if args.duration else None
    check_positive(duration, "--duration")
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
        tokenizer_dir = _tokenizer_dir(args.tokenizer) or (default_tokenizer() if default_tokenizer else None)
        if tokenizer_dir is not None:
            tokenizer = TokenCounter.from_dir(tokenizer_dir)
        workload, sets_lengths = build_workload(args, tokenizer, max_input_len)
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None
    if args.trace is not None:
        shape, stop = replay(args, workload, duration)
    if args.lora is not None:
        workload = lora_mix(args, workload)
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
        server_token_counts=False if args.no_extra_outputs else "auto",
        perf_metrics=False if args.no_extra_outputs else "auto",
        prime_fresh_server=not args.no_fresh_warmup,
        slos_ns=parse_slos(args.slo),
        read_timeout_s=args.timeout,
        transport=args.transport,
        records_path=args.records,
        records_append=getattr(args, "append", False),
        scrape_metrics=not args.no_server_metrics,
        kernel_stamps=not args.read_stamps,
        headers=parse_headers(args.header),
        verify=_verify(args),
        bounded_memory=bounded_memory(args, stop),
    )


#: A run at least this long (with no request count) or with at least this many requests keeps its
#: summaries in histograms unless ``--exact-summaries`` is given: every record in memory costs about
#: 53 bytes per token, some 2 GB for an hour at 10k tokens/s.
LONG_RUN_S = 600.0
LONG_RUN_REQUESTS = 100_000


def bounded_memory(args: argparse.Namespace, stop: Any) -> bool:
    """``--bounded-memory``, or a long run that writes no output needing every record in memory."""
    if args.bounded_memory:
        return True
    if getattr(args, "exact_summaries", False) or any(
        getattr(args, flag, None) for flag in ("csv", "plots", "html")
    ):
        return False
    requests: int | None = stop.requests
    seconds: float | None = stop.seconds
    return (requests is None or requests >= LONG_RUN_REQUESTS) and (seconds is None or seconds >= LONG_RUN_S)


def _tokenizer_dir(value: Path | None) -> Path | None:
    """``--tokenizer DIR``, or ``embedded``: the embedded server's own tokenizer (built on first use)."""
    if value is None or str(value) != "embedded":
        return value
    try:
        from trtclient.server.tokenizer import default_tokenizer_dir
    except ImportError:
        raise UsageError("--tokenizer embedded needs the embedded server (pip install '.[server]')") from None
    return default_tokenizer_dir()


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


# ---------------------------------------------------------------- running


def check_url(url: str, transport: str, flag: str = "--url") -> str:
    """The URL in canonical form, or one readable line (credentials never echoed)."""
    from trtclient.bench.url_diagnosis import split_api_path
    from trtclient.urls import normalize_url, redact_url

    try:
        canonical = normalize_url(url, transport="grpc" if transport == "grpc" else "http")
    except ValueError as exc:
        shown = re.sub(r"//[^/@]*@", "//", url)
        raise UsageError(f"{flag}: invalid server URL {shown!r} ({exc})") from None
    base, api_path = split_api_path(canonical)
    if api_path is not None:
        print(
            f"note: {flag} takes the server's address, not an API path: {api_path} was left out "
            f"(using {redact_url(base)}; the model comes from --model)",
            file=sys.stderr,
        )
    return base


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot be written before any load is sent."""
    for flag in ("records", "json", "csv", "html"):
        path: Path | None = getattr(args, flag)
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"--{flag} {path}: is a directory; give a file name")
        if not parent.is_dir():
            raise UsageError(f"--{flag} {path}: the directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"--{flag} {path}: the directory {parent} is not writable")
    needs_records = [flag for flag in ("csv", "plots", "html") if getattr(args, flag, None)]
    if args.bounded_memory and needs_records:
        flag = "--" + needs_records[0]
        raise UsageError(
            f"{flag} needs every request's detail in memory, which --bounded-memory does not keep; "
            "drop one of them (--records FILE keeps the detail on disk)"
        )
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        raise UsageError(f"--plots {args.plots}: not a directory")
