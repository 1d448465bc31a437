"""The workload part of bench's command line: shared prefixes, conversations, trace replay, LoRA mixes,
and the plain prompt workloads (fixed prompt, synthetic lengths, JSONL / ShareGPT datasets).

:func:`add_workload_arguments` adds the workload-shape flags to bench's parser (``sweep`` and
``capacity`` reuse that parser, so they get them too); :func:`build_workload` turns the command line into
a workload, raising :class:`~trtclient.cli.common.UsageError` with one line naming the flag or line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError, check_positive, parse_length, parse_seconds
from trtclient.constants import CLI_MAX_TOKENS

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PROMPT",
    "add_workload_arguments",
    "build_workload",
    "lora_mix",
    "replay",
]

DEFAULT_PROMPT = "What is machine learning?"
DEFAULT_MAX_TOKENS = CLI_MAX_TOKENS


def add_workload_arguments(work: Any) -> None:
    """The workload-shape flags (shared prefixes, sessions, trace replay, LoRA) on bench's parser group;
    ``sweep`` and ``capacity`` take bench's parser, so they get them too."""
    work.add_argument(
        "--shared-prefix",
        metavar="N:P",
        help="N distinct prefixes of P tokens shared by the prompts; --input-tokens is the unique suffix",
    )
    work.add_argument(
        "--turns",
        type=int,
        metavar="T",
        help="multi-turn: each user (--concurrency) holds conversations of T turns, each turn's prompt the "
        "history plus a new message (--input-tokens long, or a ShareGPT --dataset's human turns)",
    )
    work.add_argument(
        "--think-time",
        metavar="S",
        help="multi-turn: pause after each answer before the next turn (2, 500ms)",
    )
    work.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="replay a JSONL trace (Mooncake: timestamp ms, input_length, output_length, hash_ids) open loop",
    )
    work.add_argument(
        "--trace-speed",
        type=float,
        default=1.0,
        metavar="X",
        help="replay the trace X times as fast (default: 1)",
    )
    work.add_argument(
        "--lora",
        metavar="NAME_OR_ID:WEIGHT,...",
        help="LoRA mix: each request takes an adapter by weight, sent as lora_task_id (a number: an adapter "
        "the server holds; a name: introduced with stand-in weights on first use, needs --transport grpc)",
    )
    work.add_argument(
        "--followup-tokens",
        metavar="MEAN[,STD]",
        help="multi-turn: length of the user messages after the first (default: --input-tokens)",
    )


def build_workload(
    args: argparse.Namespace, tokenizer: Any, max_input_len: int | None = None
) -> tuple[Any, bool]:
    """The workload and whether it sets each request's output length (``WorkloadError`` passes through)."""
    from trtclient.loadtest import workload as wl

    synthetic = args.input_tokens is not None or args.output_tokens is not None
    chosen = [
        name
        for name, on in (
            ("--prompt", args.prompt),
            ("--dataset", args.dataset),
            ("--input-tokens", synthetic),
            ("--trace", args.trace),
        )
        if on
    ]
    if len(chosen) > 1:
        raise UsageError(f"choose one workload: {' or '.join(chosen)}")
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS
    if args.trace is not None:
        if tokenizer is None:
            raise UsageError("--trace needs a tokenizer: pass --tokenizer DIR (a Hugging Face tokenizer)")
        from trtclient.loadtest.trace import TracePrompts

        check_positive(args.trace_speed, "--trace-speed")
        return TracePrompts(
            args.trace,
            tokenizer,
            speed=args.trace_speed,
            max_input_len=max_input_len,
            seed=args.seed,
            source_text=_corpus_text(),
        ), True
    if args.turns is not None or args.think_time is not None or args.followup_tokens is not None:
        return _sessions(args, tokenizer, synthetic), True
    if args.shared_prefix is not None and not synthetic:
        raise UsageError("--shared-prefix N:P needs --input-tokens S (the unique suffix) and --output-tokens")
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
        if args.shared_prefix is not None:
            from trtclient.loadtest.shared_prefix import SharedPrefixPrompts, parse_shared_prefix

            shared = parse_shared_prefix(args.shared_prefix)
            longest = shared.prefix_tokens + i_mean + round(3 * i_std)
            if max_input_len is not None and longest > max_input_len:
                raise UsageError(
                    f"--shared-prefix {args.shared_prefix} with --input-tokens {args.input_tokens} makes "
                    f"prompts of up to {longest} tokens, over the server's max_input_len {max_input_len}"
                )
            return SharedPrefixPrompts(
                tokenizer, shared, inputs, outputs, seed=args.seed, source_text=source
            ), True
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
            args.dataset, max_tokens, tokenizer=tokenizer, seed=args.seed, max_input_len=max_input_len
        ), tokenizer is not None
    return wl.FixedPrompt(
        DEFAULT_PROMPT if args.prompt is None else args.prompt, max_tokens, tokenizer
    ), False


def lora_mix(args: argparse.Namespace, workload: Any) -> Any:
    from trtclient.loadtest.lora import LoraMix, parse_lora
    from trtclient.loadtest.sessions import Conversational
    from trtclient.loadtest.workload import WorkloadError

    if isinstance(workload, Conversational):
        raise UsageError("--lora applies to single prompts, not to --turns conversations")
    try:
        mix = LoraMix(workload, parse_lora(args.lora), seed=args.seed)
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None
    if mix.needs_binary_inputs and args.transport != "grpc":
        raise UsageError(
            "--lora with adapter names sends FP16 lora_weights, which Triton's HTTP generate endpoint cannot "
            "carry: add --transport grpc, or name adapters the server holds by their lora_task_id"
        )
    return mix


def replay(args: argparse.Namespace, trace: Any, duration: float | None) -> tuple[Any, Any]:
    """The trace's arrival times as the load shape; it stops at the trace's end unless told sooner."""
    from trtclient.loadtest import schedule as sc

    given = [
        f for f in ("burst", "concurrency", "rate", "every", "max_concurrency", "ramp_up") if getattr(args, f)
    ]
    if given:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        raise UsageError(f"--trace sets the arrival times itself: drop {flags}")
    requests = min(args.requests, len(trace.entries)) if args.requests else len(trace.entries)
    return trace.shape(), sc.Stop(requests=requests, seconds=duration)


def _sessions(args: argparse.Namespace, tokenizer: Any, synthetic: bool) -> Any:
    """``--turns T [--think-time S]``: synthetic conversations, or a ShareGPT file's."""
    from trtclient.loadtest import sessions
    from trtclient.loadtest.workload import Length

    if args.turns is None:
        raise UsageError("--think-time and --followup-tokens apply to conversations: add --turns T")
    check_positive(args.turns, "--turns")
    think = parse_seconds(args.think_time, "--think-time") if args.think_time is not None else 0.0
    if args.concurrency is None:
        raise UsageError(
            "--turns runs conversations, one per user: give the number of users with --concurrency N"
        )
    if args.shared_prefix is not None or args.prompt is not None:
        raise UsageError("--turns builds its prompts from the conversation: drop --shared-prefix / --prompt")
    if tokenizer is None:
        raise UsageError("conversations need a tokenizer: pass --tokenizer DIR (a Hugging Face tokenizer)")
    if args.dataset is not None and not synthetic:
        return sessions.ShareGptSessions(args.dataset, tokenizer, turns=args.turns, think_time_s=think)
    if args.input_tokens is None or args.output_tokens is None:
        raise UsageError("--turns needs --input-tokens (each user message) and --output-tokens, or --dataset")
    i_mean, i_std = parse_length(args.input_tokens, "--input-tokens")
    o_mean, o_std = parse_length(args.output_tokens, "--output-tokens")
    followup = None
    if args.followup_tokens is not None:
        f_mean, f_std = parse_length(args.followup_tokens, "--followup-tokens")
        followup = Length(f_mean, f_std)
    return sessions.SyntheticSessions(
        tokenizer,
        args.turns,
        Length(i_mean, i_std),
        Length(o_mean, o_std),
        think_time_s=think,
        followup=followup,
        seed=args.seed,
        source_text=_corpus_text(),
    )


def _corpus_text() -> str | None:
    try:
        from trtclient.server.tokenizer import corpus_text
    except ImportError:
        return None
    return corpus_text()
