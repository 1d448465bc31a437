"""``trtclient compare``: key figures of several runs side by side, with relative differences.

  trtclient compare before.json after.json
  trtclient compare ours.json profile_export_genai_perf.json profile_export_aiperf.json
  trtclient compare sweep_a.json sweep_b.json --plots plots/

Reads trtclient bench, sweep and capacity --json files and GenAI-Perf's and AIPerf's summary JSON
exports. Differences are relative to the first file. --plots overlays the curves of sweeps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``compare`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="compare bench/sweep/capacity runs (and GenAI-Perf or AIPerf exports) side by side",
        description=__doc__.replace("``", "").replace("trtclient compare: ", "", 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="JSON summaries, the first is the base"
    )
    p.add_argument("--plots", type=Path, metavar="DIR", help="overlay the sweeps' curves in DIR")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the comparison table."""
    from trtclient.bench.compare import CompareError, check_comparable, compare_table, load_run

    if len(args.files) < 2:
        raise UsageError("compare needs at least two files")
    try:
        runs = [load_run(path) for path in args.files]
        check_comparable(runs)
        table = compare_table(runs)
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    if args.plots is not None:
        if runs[0].kind != "sweep":
            raise UsageError("--plots overlays sweep curves; these files are not sweeps")
        if args.plots.exists() and not args.plots.is_dir():
            raise UsageError(f"--plots {args.plots}: not a directory")
    print(f"compared with {runs[0].name} (latencies in ms)")
    print("\n".join(table), flush=True)
    if args.plots is not None:
        from trtclient.bench.plots import PlotsUnavailable
        from trtclient.bench.sweep_plots import write_sweep_plots

        title = "comparison of " + ", ".join(r.name for r in runs)
        try:
            write_sweep_plots([(r.name, r.summaries) for r in runs], args.plots, title)
        except PlotsUnavailable as exc:
            raise UsageError(str(exc)) from None
        print(f"wrote {args.plots}", file=sys.stderr)
    return 0
