"""What ``trtclient capacity`` prints and writes: the answer with its evidence, confidence and server state.

The JSON document (schema ``trtclient.capacity/1``) is ``{"max_rate", "slos", "confidence", "server_at",
"stopped", "steps": [{"rate", "passed", "attempt", "borderline", "reasons", ...bench summary...}]}``;
each step carries the whole ``trtclient.bench/1`` summary of its run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtclient.bench.capacity import Answer, SearchLimits, Slo, Step, StepResult, Verdict
from trtclient.bench.figures import COLUMNS, fmt, key_figures, stat

__all__ = [
    "CAPACITY_SCHEMA",
    "answer_json",
    "evidence_line",
    "format_answer",
    "server_state",
    "step_result",
    "write_answer_json",
]

CAPACITY_SCHEMA = "trtclient.capacity/1"


def step_result(
    rate: float, summary: Mapping[str, Any], slos: Sequence[Slo], pace: float | None = None
) -> StepResult:
    """A run's bench JSON summary (and its :func:`~trtclient.bench.capacity.pace_ratio`) as a step."""
    requests = summary.get("requests") or {}
    return StepResult(
        rate=rate,
        figures_ms={s.key: stat(summary, s.metric, s.statistic) for s in slos},
        sent=int(requests.get("sent", 0)),
        failed=int(requests.get("failed", 0)),
        seconds=float((summary.get("client") or {}).get("wall_s", 0.0)),
        summary=summary,
        pace=pace,
    )


def _figures(step: Step, slos: Sequence[Slo]) -> str:
    parts = []
    for s in slos:
        value = step.result.figures_ms.get(s.key)
        parts.append(f"{s.metric} {s.statistic} {'-' if value is None else f'{value:.0f}'} ms")
    failed = step.result.failed
    if failed:
        parts.append(f"{failed} of {step.result.sent} failed")
    return ", ".join(parts)


def evidence_line(answer: Answer, slos: Sequence[Slo]) -> str:
    """``4 req/s holds: ttft p99 431 ms; 4.5 req/s breaks: ttft p99 688 ms``."""
    parts = []
    if answer.holds is not None:
        parts.append(f"{answer.holds.rate:g} req/s holds: {_figures(answer.holds.evidence, slos)}")
    if answer.breaks is not None:
        parts.append(f"{answer.breaks.rate:g} req/s breaks: {_figures(answer.breaks.evidence, slos)}")
    return "; ".join(parts)


def _agreement(v: Verdict, word: str) -> str:
    return f"{v.rate:g} req/s {word} in {v.agreed} of {v.runs} run{'s' if v.runs > 1 else ''}"


def server_state(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The server's /metrics over a step: per-model queue and compute time, pending and TRT-LLM gauges."""
    server = summary.get("server_metrics")
    if not isinstance(server, Mapping) or server.get("error"):
        return None
    models = {
        name: {
            k: m.get(k)
            for k in ("queue_ms_per_request", "compute_infer_ms_per_request", "pending_max", "pending_mean")
        }
        for name, m in (server.get("models") or {}).items()
        if m.get("requests") or m.get("failures")
    }
    gauges = {
        name: {"mean": g.get("mean"), "max": g.get("max")}
        for name, g in (server.get("trt_llm") or {}).items()
    }
    return {"models": models, "trt_llm": gauges}


def _state_text(state: Mapping[str, Any] | None) -> str:
    if state is None:
        return "no /metrics"
    parts = []
    for name, m in state["models"].items():
        queue, pending = m.get("queue_ms_per_request"), m.get("pending_max")
        parts.append(f"{name} queue {fmt(queue)} ms/request, pending max {fmt(pending)}")
    for name, g in state["trt_llm"].items():
        parts.append(f"{name} max {fmt(g.get('max'))}")
    return "; ".join(parts) or "no requests seen"


def format_answer(answer: Answer, slos: Sequence[Slo]) -> str:
    """The answer, its evidence, its confidence, the server's state and every step, as text."""
    targets = ", ".join(str(s) for s in slos)
    lines = []
    if answer.max_rate is None:
        lines.append(f"capacity: no rate tried meets {targets}")
    else:
        lines.append(f"capacity: {answer.max_rate:g} req/s meets {targets}")
    evidence = evidence_line(answer, slos)
    if evidence:
        lines.append(f"  {evidence}")
    confidence = []
    if answer.gap is not None:
        confidence.append(f"bracketed within {answer.gap:.0%}")
    elif answer.breaks is None:
        confidence.append("no rate tried broke an SLO: the capacity is higher still")
    if answer.holds is not None:
        confidence.append(_agreement(answer.holds, "held"))
    if answer.breaks is not None:
        confidence.append(_agreement(answer.breaks, "broke"))
    lines.append(f"  confidence: {'; '.join(confidence)}")
    for verdict in (answer.holds, answer.breaks):
        if verdict is not None:
            state = server_state(verdict.evidence.result.summary)
            lines.append(f"  server at {verdict.rate:g} req/s: {_state_text(state)}")
    lines.append(f"  search ended: {answer.stopped} after {len(answer.steps)} steps")
    lines.append("")
    lines.extend(format_steps(answer.steps))
    return "\n".join(lines)


def format_steps(steps: Sequence[Step]) -> list[str]:
    """One row per step: rate, verdict, the key figures (ms), why it broke."""
    header = ["step", "rate", "verdict", *(title for _, title in COLUMNS), "why"]
    rows = []
    for n, step in enumerate(steps, start=1):
        figs = key_figures(step.result.summary)
        verdict = "holds" if step.passed else "breaks"
        if step.attempt > 1:
            verdict += f" (run {step.attempt})"
        elif step.borderline:
            verdict += " (borderline)"
        rows.append(
            [
                str(n),
                f"{step.rate:g}",
                verdict,
                *(fmt(figs.get(k)) for k, _ in COLUMNS),
                "; ".join(step.reasons),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for i, row in enumerate([header, *rows]):
        cells = [
            c.ljust(w) if j in (2, len(row) - 1) else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _verdict_json(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"rate": v.rate, "passed": v.passed, "agreed": v.agreed, "runs": v.runs, "stable": v.stable}


def answer_json(answer: Answer, slos: Sequence[Slo], limits: SearchLimits) -> dict[str, Any]:
    """The JSON document (see the module docstring)."""
    return {
        "schema": CAPACITY_SCHEMA,
        "max_rate": answer.max_rate,
        "slos": {s.key: s.limit_ms for s in slos},
        "evidence": evidence_line(answer, slos),
        "confidence": {
            "holds": _verdict_json(answer.holds),
            "breaks": _verdict_json(answer.breaks),
            "gap": answer.gap,
        },
        "server_at": {
            "holds": server_state(answer.holds.evidence.result.summary) if answer.holds else None,
            "breaks": server_state(answer.breaks.evidence.result.summary) if answer.breaks else None,
        },
        "stopped": answer.stopped,
        "search": {
            "start_rate": limits.start_rate,
            "growth": limits.growth,
            "resolution": limits.resolution,
            "max_steps": limits.max_steps,
            "time_budget_s": limits.time_budget_s,
            "repeats": limits.repeats,
            "borderline_margin": limits.margin,
            "max_failed_fraction": limits.max_failed_fraction,
            "max_shortfall": limits.max_shortfall,
        },
        "steps": [
            {
                "rate": s.rate,
                "passed": s.passed,
                "attempt": s.attempt,
                "borderline": s.borderline,
                "reasons": list(s.reasons),
                "pace": s.result.pace,
                **({"error": s.result.error} if s.result.error else {}),
                **s.result.summary,
            }
            for s in answer.steps
        ],
    }


def write_answer_json(document: Mapping[str, Any], path: str | Path) -> None:
    """Write the capacity JSON document."""
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
