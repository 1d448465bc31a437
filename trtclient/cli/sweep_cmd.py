"""``trtclient sweep``: one bench run per load level, a table with one row per level, curves.

  trtclient sweep --concurrency 1,2,4,8 --requests 40
  trtclient sweep --rate 1:16:2 --duration 30s --warmup 5s --json sweep.json --plots plots/

Each level is a full ``trtclient bench`` run on the same server, with its own warm-up and its own
--requests/--duration. --json writes {"levels": [...]}, each entry in the schema of bench --json.
Ctrl-C stops the current level and prints the levels measured so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trtclient.cli.bench_reuse import (
    borrow_bench_arguments,
    build_spec,
    check_levelled_workload,
    default_tokenizer,
    failure_budget,
    level_args,
    run_until_signal,
    serve_target,
)
from trtclient.cli.common import UsageError

__all__ = ["register"]

#: Bench flags a sweep defines differently (or not at all).
EXCLUDED = {
    "burst",
    "concurrency",
    "rate",
    "every",
    "json",
    "csv",
    "records",
    "plots",
    "html",
    "export_format",
    "append",
}


def register(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="one bench run per concurrency or rate level: a table and curves",
        description=__doc__.replace("``", "").replace("trtclient sweep: ", "", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    levels = p.add_argument_group("levels (one of)")
    shape = levels.add_mutually_exclusive_group(required=True)
    shape.add_argument("--concurrency", metavar="LIST", help="closed loop levels: 1,2,4,8 or 1:32:2")
    shape.add_argument(
        "--rate", "--request-rate", metavar="LIST", help="open-loop rates, req/s: 0.5,1,2 or 1:16:2"
    )
    borrow_bench_arguments(p, EXCLUDED, titles={"load shape (one of; default: --burst 20)": "each level"})
    out = p.add_argument_group("sweep outputs")
    out.add_argument("--json", type=Path, metavar="FILE", help='write {"levels": [bench summaries]}')
    out.add_argument(
        "--plots", type=Path, metavar="DIR", help="write throughput_latency.png and tokens_per_user.png"
    )
    out.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    p.set_defaults(handler=run)


def _levels(args: argparse.Namespace) -> tuple[str, list[float]]:
    from trtclient.bench.levels import LevelError, parse_levels

    kind = "concurrency" if args.concurrency is not None else "rate"
    try:
        return kind, parse_levels(getattr(args, kind), f"--{kind}", integer=kind == "concurrency")
    except LevelError as exc:
        raise UsageError(str(exc)) from None


def check_sweep_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable output paths before any load is sent."""
    for flag in ("json", "html"):
        path: Path | None = getattr(args, flag)
        if path is None:
            continue
        if path.is_dir():
            raise UsageError(f"--{flag} {path}: is a directory; give a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"--{flag} {path}: the directory {parent} does not exist")
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        raise UsageError(f"--plots {args.plots}: not a directory")


def run(args: argparse.Namespace) -> int:
    """Run every level and print the table."""
    from trtclient.bench.live import LiveProgress
    from trtclient.bench.session import BenchError
    from trtclient.bench.sweep import format_sweep, run_levels, sweep_json, write_sweep_json

    kind, levels = _levels(args)
    check_levelled_workload(args, "sweep", kind)
    check_sweep_outputs(args)
    failure_budget(args)
    if args.requests is None and args.duration is None:
        raise UsageError("a sweep needs --requests N or --duration T per level")
    tokenizer = default_tokenizer(args)
    specs = []
    for level in levels:
        value: float | int = int(level) if kind == "concurrency" else level
        specs.append((level, build_spec(level_args(args, **{kind: value}), default_tokenizer=tokenizer)))
    progress = LiveProgress(sys.stderr) if args.progress is not False else None
    with serve_target(args) as target:
        try:
            runs = run_until_signal(
                lambda stop: run_levels(
                    kind,
                    specs,
                    target.url,
                    metrics_url=target.metrics_url,
                    stop=stop,
                    progress=progress,
                    extra_config=target.info,
                )
            )
        except BenchError as exc:
            raise BenchError(f"the first level could not run: {exc}") from None
        finally:
            if progress is not None:
                progress.clear()
    interrupted = len(runs) < len(levels) or any(r.outcome and r.outcome.report.interrupted for r in runs)
    document = sweep_json(kind, runs, interrupted)
    summaries = [entry for entry in document["levels"] if "schema" in entry]
    title = sweep_title(kind, levels, summaries)
    print(title)
    print(format_sweep(runs), flush=True)
    if args.json:
        write_sweep_json(document, args.json)
    if args.plots:
        from trtclient.bench.plots import PlotsUnavailable
        from trtclient.bench.sweep_plots import write_sweep_plots

        try:
            write_sweep_plots([("sweep", summaries)], args.plots, title)
        except PlotsUnavailable as exc:
            raise UsageError(str(exc)) from None
    if args.html:
        from trtclient.bench.html_report import sweep_html, write_html

        write_html(sweep_html(document, title), args.html)
    written = [str(p) for p in (args.json, args.plots, args.html) if p]
    if written:
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    return _exit_code(args, summaries, interrupted)


def _exit_code(args: argparse.Namespace, summaries: list[dict[str, Any]], interrupted: bool) -> int:
    """The shared exit code over all levels: failures summed, an SLO missed at any level."""
    from trtclient.exit_codes import exit_code

    requests = [s["requests"] for s in summaries]
    missed = any(
        s["goodput"] is not None and s["goodput"]["good_requests"] < s["requests"]["ok"] for s in summaries
    )
    return exit_code(
        interrupted=interrupted,
        sent=sum(r["sent"] for r in requests),
        failed=sum(r["failed"] for r in requests),
        measured_ok=sum(r["ok"] for r in requests),
        budget=failure_budget(args),
        slo_missed=args.fail_on_slo and missed,
    )


def sweep_title(kind: str, levels: list[float], summaries: list[dict[str, Any]]) -> str:
    """The sweep's configuration in one line: levels, workload, model, server."""
    values = ",".join(f"{v:g}" for v in levels)
    what = f"{kind} {values}" if kind == "concurrency" else f"rate {values} req/s"
    if not summaries:
        return f"sweep of {what}"
    config = summaries[0]["config"]
    server = config.get("profile") or config.get("url", "")
    per_level = config.get("stop", {})
    stop = (
        f"{per_level.get('requests')} requests"
        if per_level.get("requests")
        else f"{per_level.get('seconds')} s"
    )
    return f"sweep of {what} · {config.get('workload')} · {config.get('model')} ({server}) · {stop} per level"
