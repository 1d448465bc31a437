"""A sweep: one ordinary bench run per load level, on one server, each with its own warm-up and stop.

Every level is a full :func:`~trtclient.bench.session.run_bench` run, so a level's JSON entry is exactly
what ``trtclient bench --json`` writes for that load (schema ``trtclient.bench/1``). A level that cannot
run at all (the server went away) is kept as ``{"level": ..., "error": ...}`` and the sweep goes on;
the first level failing that way stops the sweep, since nothing was measured yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtclient.bench.figures import format_rows, key_figures
from trtclient.bench.live import LiveProgress, Stage
from trtclient.bench.report import to_json
from trtclient.bench.session import BenchError, BenchOutcome, BenchSpec, run_bench

__all__ = [
    "SWEEP_SCHEMA",
    "LevelRun",
    "format_sweep",
    "level_line",
    "run_levels",
    "stage_for",
    "sweep_json",
    "write_sweep_json",
]

SWEEP_SCHEMA = "trtclient.sweep/1"


@dataclass
class LevelRun:
    """One level: its bench outcome, or why it could not run."""

    kind: str
    """``"concurrency"`` or ``"rate"``."""
    level: float
    outcome: BenchOutcome | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``c=4`` or ``2 req/s``."""
        return f"c={self.level:g}" if self.kind == "concurrency" else f"{self.level:g} req/s"

    def entry(self) -> dict[str, Any]:
        """The level's JSON entry: the bench summary, or ``{"level", "error"}``."""
        if self.outcome is None:
            return {"level": {"kind": self.kind, "value": self.level}, "error": self.error}
        return to_json(self.outcome.report)


def stage_for(spec: BenchSpec, label: str, remaining_after_s: float | None) -> Stage:
    """The progress stage of one run of ``spec``."""
    return Stage(
        label=label,
        warmup_requests=spec.warmup.requests,
        warmup_s=spec.warmup.seconds,
        measure_requests=spec.stop.requests,
        measure_s=spec.stop.seconds,
        remaining_after_s=remaining_after_s,
    )


async def run_levels(
    kind: str,
    levels: Sequence[tuple[float, BenchSpec]],
    url: str,
    *,
    metrics_url: str | None = None,
    stop: asyncio.Event | None = None,
    progress: LiveProgress | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> list[LevelRun]:
    """Run each level in order; stop early when ``stop`` is set (the runs so far are returned)."""
    stop = stop or asyncio.Event()
    runs: list[LevelRun] = []
    spent: list[float] = []
    for k, (level, spec) in enumerate(levels, start=1):
        if stop.is_set():
            break
        run = LevelRun(kind, level)
        per_level = sum(spent) / len(spent) if spent else spec.stop.seconds
        after = None if per_level is None else per_level * (len(levels) - k)
        if progress is not None:
            progress.begin(stage_for(spec, f"level {k} of {len(levels)} ({run.label})", after))
        try:
            run.outcome = await run_bench(
                spec,
                url,
                metrics_url=metrics_url,
                stop=stop,
                on_progress=progress.update if progress else None,
                extra_config={**(extra_config or {}), "sweep_level": {"kind": kind, "value": level}},
            )
        except BenchError as exc:
            if not runs:
                raise
            run.error = str(exc)
        runs.append(run)
        if run.outcome is not None:
            spent.append(run.outcome.result.client.wall_s)
        if progress is not None:
            progress.note(level_line(run))
    return runs


def level_line(run: LevelRun) -> str:
    """One line saying how a level went (for logs while the sweep goes on)."""
    if run.outcome is None:
        return f"{run.label}: could not run ({run.error})"
    figs = key_figures(to_json(run.outcome.report))
    counts = run.outcome.report.metrics.counts
    ttft = figs["ttft_p99"]
    ttft_text = "-" if ttft is None else f"{ttft:.0f} ms"
    return (
        f"{run.label}: {counts.ok} ok, {counts.failed} failed, {figs['requests_per_s'] or 0:.2f} req/s, "
        f"{figs['output_tokens_per_s'] or 0:.0f} tok/s, TTFT p99 {ttft_text}"
    )


def sweep_json(kind: str, runs: Sequence[LevelRun], interrupted: bool = False) -> dict[str, Any]:
    """The sweep's JSON document: ``{"schema", "kind", "interrupted", "levels": [...]}``."""
    return {
        "schema": SWEEP_SCHEMA,
        "kind": kind,
        "interrupted": interrupted,
        "levels": [run.entry() for run in runs],
    }


def write_sweep_json(document: Mapping[str, Any], path: str | Path) -> None:
    """Write a sweep's JSON document."""
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def format_sweep(runs: Sequence[LevelRun]) -> str:
    """The console table: one row per level (latencies in ms)."""
    if not runs:
        return "no level ran"
    header = "concurrency" if runs[0].kind == "concurrency" else "rate"
    rows = [(run.label, key_figures(run.entry())) for run in runs if run.outcome is not None]
    lines = [f"sweep over {header}: {len(runs)} levels (latencies in ms)", *format_rows(header, rows)]
    lines += [f"  {run.label}: could not run ({run.error})" for run in runs if run.outcome is None]
    return "\n".join(lines)
