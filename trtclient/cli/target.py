"""The server a load command runs against, and the event loop it runs in, shared by bench, sweep and
capacity: ``--url`` as given, or the embedded Triton started for the whole command; Ctrl-C or SIGTERM
ask the run to stop (a second Ctrl-C aborts at once)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trtclient.cli.bench_args import check_url
from trtclient.cli.common import check_positive

__all__ = ["Target", "add_embedded_arguments", "run_until_signal", "serve_target"]

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """The server the load runs against."""

    url: str
    metrics_url: str | None
    info: dict[str, Any] = field(default_factory=dict)


def add_embedded_arguments(group: Any) -> None:
    """The embedded server's flags (used when no ``--url`` is given)."""
    group.add_argument(
        "--profile", default="orin-int4", help="embedded server timing profile (default: orin-int4)"
    )
    group.add_argument(
        "--max-batch-size", type=int, default=64, help="embedded server batch size (default: 64)"
    )
    group.add_argument(
        "--no-kv-cache-reuse",
        dest="kv_cache_reuse",
        action="store_false",
        help="embedded server: turn off KV-cache block reuse (on by default), to compare",
    )
    group.add_argument(
        "--kv-cache-free-gpu-mem-fraction",
        type=float,
        metavar="F",
        help="embedded server: share of the profile's free device memory the KV pool takes (default 0.9)",
    )
    group.add_argument(
        "--kv-cache-tokens",
        type=int,
        metavar="N",
        help="embedded server: KV pool size in tokens (default: derived from the fraction)",
    )


@contextmanager
def serve_target(args: argparse.Namespace) -> Iterator[Target]:
    """``--url`` as given, or the embedded Triton started for the whole command and stopped after it."""
    if args.url:
        url = check_url(args.url, args.transport)
        metrics = check_url(args.metrics_url, "http", "--metrics-url") if args.metrics_url else None
        yield Target(url, metrics, {"server": "external"})
        return
    from trtclient.server.launcher import EmbeddedTriton

    check_positive(args.max_batch_size, "--max-batch-size")
    check_positive(args.kv_cache_tokens, "--kv-cache-tokens")
    print(f"starting the embedded Triton server (profile {args.profile}) ...", file=sys.stderr, flush=True)
    with EmbeddedTriton(
        profile=args.profile,
        max_batch_size=args.max_batch_size,
        kv_cache_reuse=args.kv_cache_reuse,
        kv_cache_free_gpu_mem_fraction=args.kv_cache_free_gpu_mem_fraction,
        kv_cache_tokens=args.kv_cache_tokens,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    ) as server:
        url = server.grpc_url if args.transport == "grpc" else server.url
        print(f"serving at {server.url} (metrics {server.metrics_url})", file=sys.stderr, flush=True)
        info = {
            "server": "embedded",
            "profile": args.profile,
            "max_batch_size": args.max_batch_size,
            "kv_cache_reuse": args.kv_cache_reuse,
        }
        yield Target(url, args.metrics_url or server.metrics_url, info)


def run_until_signal(work: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``work(stop)`` in a fresh event loop; Ctrl-C or SIGTERM set ``stop`` (a second Ctrl-C aborts)."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            return await work(stop)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(main())
