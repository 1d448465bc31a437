"""The spellings GenAI-Perf and AIPerf users type, accepted by ``bench`` (and ``sweep``/``capacity``).

Simple renames are extra option strings on our own flags (``--request-rate`` is ``--rate``,
``--request-count`` is ``--requests``, ``-m`` is ``--model``). The flags that split what we take as one
value (``--synthetic-input-tokens-mean`` and ``-stddev`` make ``--input-tokens MEAN,STD``), or that name
metrics their way (``--goodput time_to_first_token:100``), are read here into ours by
:func:`apply_peer_flags`, which refuses a peer spelling given together with ours.
"""

from __future__ import annotations

import argparse
from typing import Any

from trtclient.cli.common import UsageError

__all__ = ["GOODPUT_METRICS", "add_peer_flags", "apply_peer_flags"]

#: GenAI-Perf/AIPerf ``--goodput`` metric names -> ours (their inter-token latency is our TPOT).
GOODPUT_METRICS = {
    "time_to_first_token": "ttft",
    "inter_token_latency": "tpot",
    "request_latency": "e2e",
    "ttft": "ttft",
    "tpot": "tpot",
    "e2e": "e2e",
}

_LENGTHS = (
    ("input_tokens", "--input-tokens", "--synthetic-input-tokens-mean", "--synthetic-input-tokens-stddev"),
    ("output_tokens", "--output-tokens", "--output-tokens-mean", "--output-tokens-stddev"),
)


def add_peer_flags(parser: argparse.ArgumentParser) -> None:
    """The GenAI-Perf/AIPerf flags that are not plain renames, in their own help group."""
    group = parser.add_argument_group(
        "GenAI-Perf / AIPerf spellings (also: --request-rate, --request-count, -m)"
    )
    for _, ours, mean, stddev in _LENGTHS:
        group.add_argument(mean, dest=_dest(mean), type=int, metavar="N", help=f"{ours} MEAN")
        group.add_argument(stddev, dest=_dest(stddev), type=float, metavar="N", help=f"{ours} ...,STD")
    group.add_argument("--streaming", action="store_true", help="accepted as is: bench always streams")
    group.add_argument("--warmup-request-count", type=int, metavar="N", help="the same as --warmup N")
    group.add_argument(
        "--goodput",
        nargs="+",
        default=[],
        metavar="METRIC:MS",
        help="goodput SLOs their way, e.g. time_to_first_token:500 inter_token_latency:20 (= --slo)",
    )


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def apply_peer_flags(args: argparse.Namespace) -> None:
    """Fold the peer spellings in ``args`` into our own flags (in place); refuse contradictions."""
    for ours, flag, mean_flag, std_flag in _LENGTHS:
        mean: Any = getattr(args, _dest(mean_flag), None)
        std: Any = getattr(args, _dest(std_flag), None)
        if mean is None and std is None:
            continue
        if getattr(args, ours) is not None:
            raise UsageError(f"give either {flag} or {mean_flag}/{std_flag.rsplit('-', 1)[-1]}, not both")
        if mean is None:
            raise UsageError(f"{std_flag} needs {mean_flag}")
        setattr(args, ours, f"{mean},{std or 0:g}")
        setattr(args, _dest(mean_flag), None)
        setattr(args, _dest(std_flag), None)
    warm = getattr(args, "warmup_request_count", None)
    if warm is not None:
        if args.warmup is not None:
            raise UsageError("give either --warmup or --warmup-request-count, not both")
        args.warmup, args.warmup_request_count = str(warm), None
    goodput = getattr(args, "goodput", None) or []
    for item in goodput:
        name, sep, value = item.partition(":")
        if not sep or name.strip() not in GOODPUT_METRICS:
            raise UsageError(
                f"--goodput expects METRIC:MS with METRIC one of {', '.join(GOODPUT_METRICS)}, got {item!r}"
            )
        args.slo = [*args.slo, f"{GOODPUT_METRICS[name.strip()]}={value.strip()}"]
    if goodput:
        args.goodput = []
