"""What ``sweep`` and ``capacity`` share with ``bench``: its arguments, its specs and its server.

The bench command's parser is built once and its arguments (server, workload, warm-up, stop, outputs)
are added to the new command as they are, minus the ones the new command defines itself, so every
command accepts the same flags with the same meaning and defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import signal
import sys
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trtclient.cli import bench_cmd

# The bench command's argument reading, in one place for sweep and capacity.
from trtclient.cli.bench_args import build_spec, check_url, parse_seconds
from trtclient.cli.bench_cmd import failure_budget
from trtclient.cli.common import UsageError

__all__ = [
    "Target",
    "build_spec",
    "check_url",
    "failure_budget",
    "parse_seconds",
    "borrow_bench_arguments",
    "default_tokenizer",
    "level_args",
    "run_until_signal",
    "serve_target",
]

T = TypeVar("T")


class _Capture:
    """Stands in for ``add_subparsers()`` to catch the parser ``bench_cmd.register`` builds."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(add_help=False)

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self.parser


def borrow_bench_arguments(
    parser: argparse.ArgumentParser, exclude: Collection[str], titles: dict[str, str] | None = None
) -> None:
    """Add the bench command's arguments to ``parser``, except those whose ``dest`` is in ``exclude``.

    Argument groups keep their titles (or take ``titles[old]``) and mutually exclusive pairs stay so.
    """
    capture = _Capture()
    bench_cmd.register(capture)
    source = capture.parser
    groups: dict[int, Any] = {}
    for group in source._action_groups:
        actions = [a for a in group._group_actions if a.dest not in exclude and a.dest != "help"]
        if not actions:
            continue
        title = (titles or {}).get(group.title or "", group.title)
        target = parser.add_argument_group(title, None if title != group.title else group.description)
        for action in actions:
            target._add_action(action)
            groups[id(action)] = target
    for mutex in source._mutually_exclusive_groups:
        actions = [a for a in mutex._group_actions if a.dest not in exclude]
        if len(actions) < 2:
            continue
        new = groups[id(actions[0])].add_mutually_exclusive_group()
        new._group_actions.extend(actions)


def level_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    """A copy of ``args`` for one level: the bench's load flags set as ``changes`` say."""
    out = copy.copy(args)
    for name in ("burst", "concurrency", "rate", "every", "records"):
        setattr(out, name, None)
    for name, value in changes.items():
        setattr(out, name, value)
    return out


@dataclass
class Target:
    """The server the levels run against."""

    url: str
    metrics_url: str | None
    info: dict[str, Any] = field(default_factory=dict)


def default_tokenizer(args: argparse.Namespace) -> Callable[[], Path] | None:
    """The embedded server's tokenizer when no ``--url`` is given (as bench does)."""
    if args.url:
        return None
    from trtclient.server.tokenizer import default_tokenizer_dir

    return default_tokenizer_dir


@contextmanager
def serve_target(args: argparse.Namespace) -> Iterator[Target]:
    """``--url`` as given, or the embedded Triton started for the whole command and stopped after it."""
    if args.url:
        url = check_url(args.url, args.transport)
        metrics = check_url(args.metrics_url, "http", "--metrics-url") if args.metrics_url else None
        yield Target(url, metrics, {"server": "external"})
        return
    from trtclient.server.launcher import EmbeddedTriton

    if not args.max_batch_size > 0:
        raise UsageError(f"--max-batch-size must be positive, got {args.max_batch_size}")
    print(f"starting the embedded Triton server (profile {args.profile}) ...", file=sys.stderr, flush=True)
    with EmbeddedTriton(
        profile=args.profile,
        max_batch_size=args.max_batch_size,
        kv_cache_reuse=args.kv_cache_reuse,
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
