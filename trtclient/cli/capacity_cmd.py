"""``trtclient capacity``: the highest open-loop request rate that meets every latency SLO.

  trtclient capacity --slo ttft:p99=500 --slo tpot:p99=50 --duration 30s --warmup 5s

Grows the rate from --start-rate by --growth until an SLO breaks, then bisects until the holding and
breaking rates are within --resolution; each step is a full bench run with its own warm-up and
--requests/--duration. A step whose figure lies within --borderline of a limit is repeated (up to
--repeats runs) until a majority agrees. More than --max-failed of a step's requests failing breaks it,
and so does a server falling behind (requests completing --max-shortfall slower than they arrive).
The answer comes with its evidence, its confidence and the server's /metrics at the bracketing rates.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from trtclient import exit_codes
from trtclient.cli.bench_reuse import (
    borrow_bench_arguments,
    build_spec,
    check_levelled_workload,
    default_tokenizer,
    level_args,
    parse_seconds,
    run_until_signal,
    serve_target,
)
from trtclient.cli.common import UsageError
from trtclient.cli.sweep_cmd import check_sweep_outputs

__all__ = ["register"]

#: Bench flags capacity defines differently (or not at all); its --max-failed breaks a step, and a search
#: that finds no rate meeting every SLO exits SLO_MISSED by itself.
EXCLUDED = {"burst", "concurrency", "rate", "every", "slo", "json", "csv", "records", "plots", "html",
            "max_failures", "fail_on_slo", "goodput", "export_format", "append"}  # fmt: skip


def register(subparsers: Any) -> None:
    """Add the ``capacity`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "capacity",
        help="find the highest request rate that meets latency SLOs, with its confidence",
        description=__doc__.replace("``", "").replace("trtclient capacity: ", "", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search = p.add_argument_group("search")
    search.add_argument(
        "--slo",
        dest="capacity_slo",
        action="append",
        default=[],
        required=True,
        metavar="METRIC:STAT=MS",
        help="e.g. ttft:p99=500 (repeatable); METRIC ttft, ttft_sched, tth, itl, tpot, e2e, e2e_sched; "
        "STAT p50, p90, p95, p99, mean, max",
    )
    search.add_argument("--start-rate", type=float, default=1.0, metavar="R", help="default: 1 req/s")
    search.add_argument("--growth", type=float, default=2.0, metavar="F", help="rate factor (default: 2)")
    search.add_argument(
        "--resolution", type=float, default=0.1, metavar="FRAC", help="bisect to this bracket (default: 0.1)"
    )
    search.add_argument("--max-steps", type=int, default=12, metavar="N", help="at most N runs (default: 12)")
    search.add_argument("--time-budget", metavar="T", help="at most T of runs in all (e.g. 10m)")
    search.add_argument(
        "--repeats", type=int, default=3, metavar="N", help="runs of a borderline step at most (default: 3)"
    )
    search.add_argument(
        "--borderline",
        type=float,
        default=0.1,
        metavar="FRAC",
        help="a figure within this share of its limit is borderline (default: 0.1)",
    )
    search.add_argument(
        "--max-failed",
        default="1%",
        metavar="PCT",
        help="a step with more failed requests breaks (default: 1%%)",
    )
    search.add_argument(
        "--max-shortfall",
        default="10%",
        metavar="PCT",
        help="a step whose requests complete this much slower than they arrive breaks (default: 10%%)",
    )
    borrow_bench_arguments(p, EXCLUDED, titles={"load shape (one of; default: --burst 20)": "each step"})
    out = p.add_argument_group("capacity outputs")
    out.add_argument("--json", type=Path, metavar="FILE", help='write {"max_rate", "slos", "steps": [...]}')
    out.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    out.add_argument("--plots", type=Path, metavar="DIR", help="write the steps' sweep curves")
    p.set_defaults(handler=run)


def _fraction(text: str, flag: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{flag} expects a share such as 10% or 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise UsageError(f"{flag} must be at least 0 and under 100%, got {text!r}")
    return value


def _search(args: argparse.Namespace) -> tuple[Any, Any]:
    from trtclient.bench.capacity import CapacitySearch, SearchLimits, SloError, parse_slo

    budget = parse_seconds(args.time_budget, "--time-budget") if args.time_budget else None
    try:
        slos = [parse_slo(text) for text in args.capacity_slo]
        limits = SearchLimits(
            start_rate=args.start_rate,
            growth=args.growth,
            resolution=args.resolution,
            max_steps=args.max_steps,
            time_budget_s=budget,
            repeats=args.repeats,
            margin=args.borderline,
            max_failed_fraction=_fraction(args.max_failed, "--max-failed"),
            max_shortfall=_fraction(args.max_shortfall, "--max-shortfall"),
        )
        return slos, CapacitySearch(slos, limits)
    except (SloError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Search, then print the answer with its evidence."""
    from trtclient.bench.capacity_report import answer_json, format_answer, write_answer_json
    from trtclient.bench.live import LiveProgress
    from trtclient.bench.session import BenchError

    slos, search = _search(args)
    check_levelled_workload(args, "capacity", "rate")
    check_sweep_outputs(args)
    tokenizer = default_tokenizer(args)

    def spec_for(rate: float) -> Any:
        return build_spec(level_args(args, rate=rate, slo=[]), default_tokenizer=tokenizer)

    spec_for(search.limits.start_rate)  # bad flags fail here, before a server starts
    progress = LiveProgress(sys.stderr) if args.progress is not False else None
    with serve_target(args) as target:
        try:
            run_until_signal(lambda stop: _drive(search, slos, spec_for, target, stop, progress))
        except BenchError as exc:
            raise BenchError(f"the first step could not run: {exc}") from None
        finally:
            if progress is not None:
                progress.clear()
    answer = search.answer()
    print(format_answer(answer, slos), flush=True)
    document = answer_json(answer, slos, search.limits)
    if args.json:
        write_answer_json(document, args.json)
    if args.plots or args.html:
        _figures(args, document)
    written = [str(p) for p in (args.json, args.plots, args.html) if p]
    if written:
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    if search.stopped == "interrupted":
        return exit_codes.INTERRUPTED
    return exit_codes.OK if answer.max_rate is not None else exit_codes.SLO_MISSED


async def _drive(
    search: Any, slos: Any, spec_for: Any, target: Any, stop: asyncio.Event, progress: Any
) -> None:
    from trtclient.bench.capacity import StepResult, pace_ratio
    from trtclient.bench.capacity_report import step_result
    from trtclient.bench.report import to_json
    from trtclient.bench.session import BenchError, run_bench
    from trtclient.bench.sweep import stage_for

    while (rate := search.next_rate()) is not None:
        spec = spec_for(rate)
        if progress is not None:
            budget = search.limits.time_budget_s
            left = None if budget is None else max(0.0, budget - search.spent_s - (spec.stop.seconds or 0))
            label = f"step {len(search.steps) + 1} of at most {search.limits.max_steps} ({rate:g} req/s)"
            progress.begin(stage_for(spec, label, left))
        try:
            outcome = await run_bench(
                spec,
                target.url,
                metrics_url=target.metrics_url,
                stop=stop,
                on_progress=progress.update if progress else None,
                extra_config={**target.info, "capacity_step": len(search.steps) + 1},
            )
        except BenchError as exc:
            if not search.steps:
                raise
            search.record(StepResult(rate, {}, 0, 0, 0.0, error=str(exc)))
            continue
        if outcome.report.interrupted:
            search.stopped = "interrupted"
            return
        measured = [r for r in outcome.result.records if not r.warmup and r.status == "ok"]
        pace = pace_ratio([r.intended_ns for r in measured], [r.end_ns for r in measured if r.end_ns])
        step = search.record(step_result(rate, to_json(outcome.report), slos, pace))
        if progress is not None:
            verdict = "holds" if step.passed else "breaks: " + "; ".join(step.reasons)
            progress.note(f"step {len(search.steps)}: {rate:g} req/s {verdict}")


def _figures(args: argparse.Namespace, document: dict[str, Any]) -> None:
    from trtclient.bench.plots import PlotsUnavailable

    steps = sorted((s for s in document["steps"] if "schema" in s), key=lambda s: s["rate"])
    slos = ", ".join(f"{k} <= {v:g} ms" for k, v in document["slos"].items())
    first = steps[0]["config"] if steps else {}
    server = first.get("profile") or first.get("url")
    title = f"capacity at {slos} · {first.get('workload')} · {first.get('model')} ({server})"
    try:
        if args.plots:
            from trtclient.bench.sweep_plots import write_sweep_plots

            write_sweep_plots([("steps", steps)], args.plots, title)
        if args.html:
            from trtclient.bench.html_report import capacity_html, write_html

            write_html(capacity_html(document, title), args.html)
    except PlotsUnavailable as exc:
        raise UsageError(str(exc)) from None
