"""What ``sweep`` and ``capacity`` share with ``bench``: its arguments, its specs and its server.

The bench command's parser is built once and its arguments (server, workload, warm-up, stop, outputs)
are added to the new command as they are, minus the ones the new command defines itself, so every
command accepts the same flags with the same meaning and defaults; the workload flags
(``--shared-prefix``, ``--turns``, ``--lora``, ...) included. :func:`check_levelled_workload` refuses the
workloads a level cannot vary, in one line that says what to run instead.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from trtclient.cli import bench_cmd

# The bench command's argument reading, in one place for sweep and capacity.
from trtclient.cli.bench_args import build_spec, check_url, parse_seconds
from trtclient.cli.bench_cmd import failure_budget
from trtclient.cli.common import UsageError
from trtclient.cli.target import Target, run_until_signal, serve_target

__all__ = [
    "Target",
    "build_spec",
    "check_url",
    "failure_budget",
    "parse_seconds",
    "borrow_bench_arguments",
    "check_levelled_workload",
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


def default_tokenizer(args: argparse.Namespace) -> Callable[[], Path] | None:
    """The embedded server's tokenizer when no ``--url`` is given (as bench does)."""
    if args.url:
        return None
    from trtclient.server.tokenizer import default_tokenizer_dir

    return default_tokenizer_dir


def check_levelled_workload(args: argparse.Namespace, command: str, kind: str) -> None:
    """Refuse workloads that ``command``'s levels of ``kind`` (``"concurrency"`` or ``"rate"``) cannot
    vary: a trace brings its own arrival times, and conversations need one closed-loop user each."""
    if args.trace is not None:
        raise UsageError(
            f"--trace replays the trace's own arrival times, so {command} has no load level to vary: "
            "run trtclient bench --trace FILE, with --trace-speed X to replay it faster or slower"
        )
    if args.turns is not None and kind == "rate":
        what, run = (
            ("capacity searches", "trtclient sweep ") if command == "capacity" else ("--rate sweeps", "")
        )
        raise UsageError(
            f"--turns holds one conversation per user, a closed loop, while {what} open-loop rates: "
            f"sweep the number of users instead, with {run}--concurrency LIST --turns {args.turns}"
        )
