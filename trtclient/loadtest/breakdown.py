"""Latency split by what the workload varied: KV-cache hit or miss, conversation turn, LoRA adapter.

Pure functions over records, shared by bench's report and Locust's tables. A group's TTFT and E2E are
summaries of its successful requests (:mod:`~trtclient.loadtest.metrics` definitions); its failures are
counted beside, with the first failure's message, so an adapter the server rejects shows why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord

__all__ = [
    "SPLITS",
    "Group",
    "WorkloadBreakdown",
    "breakdown",
    "format_breakdown",
    "label_order",
    "split_labels",
]

#: The splits, in report order (the field names of :class:`WorkloadBreakdown`).
SPLITS: tuple[str, ...] = ("kv_cache", "turns", "adapters")


@dataclass(frozen=True)
class Group:
    """The requests of one label (``hit``, ``turn 2``, an adapter's name)."""

    label: str
    ok: int
    failed: int
    ttft: m.Summary | None
    e2e: m.Summary | None
    kv_hit_rate: float | None
    """Mean of the engine's per-request hit rate over the group's successful requests that reported one."""
    first_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The group as the JSON summary carries it (latencies in milliseconds)."""
        return {
            "label": self.label,
            "ok": self.ok,
            "failed": self.failed,
            "ttft_ms": None if self.ttft is None else self.ttft.scaled(1e-6).as_dict(),
            "e2e_ms": None if self.e2e is None else self.e2e.scaled(1e-6).as_dict(),
            "kv_hit_rate": self.kv_hit_rate,
            "first_error": self.first_error,
        }


@dataclass(frozen=True)
class WorkloadBreakdown:
    """Every split that applies to a run (an empty list: the run had nothing to split by)."""

    kv_cache: list[Group]
    turns: list[Group]
    adapters: list[Group]

    def to_json(self) -> dict[str, Any]:
        return {
            "kv_cache": [g.to_json() for g in self.kv_cache],
            "turns": [g.to_json() for g in self.turns],
            "adapters": [g.to_json() for g in self.adapters],
        }

    def __bool__(self) -> bool:
        return bool(self.kv_cache or self.turns or self.adapters)


def _group(label: str, records: Sequence[RequestRecord]) -> Group:
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status == "failed"]
    rates = [rate for rate in (m.kv_hit_rate(r) for r in ok) if rate is not None]
    return Group(
        label=label,
        ok=len(ok),
        failed=len(failed),
        ttft=m.summarize(v for v in (m.ttft_ns(r) for r in ok) if v is not None),
        e2e=m.summarize(v for v in (m.e2e_ns(r) for r in ok) if v is not None),
        kv_hit_rate=sum(rates) / len(rates) if rates else None,
        first_error=next((r.error_message for r in failed if r.error_message), None),
    )


def _cache_state(r: RequestRecord) -> str | None:
    rate = m.kv_hit_rate(r)
    if rate is None:
        return None
    return "hit" if rate > 0 else "miss"


def split_labels(r: RequestRecord) -> dict[str, str]:
    """The group a record falls in for each split that applies to it (a key of :data:`SPLITS` -> its
    label: ``hit``/``miss``, ``turn 2``, an adapter's name), for tools that keep groups of their own."""
    labels: dict[str, str] = {}
    state = _cache_state(r)
    if state is not None:
        labels["kv_cache"] = state
    if r.turn is not None:
        labels["turns"] = f"turn {r.turn}"
    if r.adapter is not None:
        labels["adapters"] = r.adapter
    return labels


def label_order(label: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of group labels: numbers inside a label compare as numbers (``turn 2`` before ``turn 10``)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", label) if part
    )


def _split(records: Sequence[RequestRecord], split: str) -> list[Group]:
    groups: dict[str, list[RequestRecord]] = {}
    for r in records:
        label = split_labels(r).get(split)
        if label is not None:
            groups.setdefault(label, []).append(r)
    return [_group(label, groups[label]) for label in sorted(groups, key=label_order)]


def breakdown(records: Iterable[RequestRecord]) -> WorkloadBreakdown:
    """The splits of the measured (non-warm-up) records; a split with a single group is kept."""
    recs = m.measured(records)
    return WorkloadBreakdown(*(_split(recs, split) for split in SPLITS))


def _ms(summary: m.Summary | None, field: str) -> str:
    return "-" if summary is None else f"{getattr(summary, field) * 1e-6:.1f}"


def format_breakdown(split: WorkloadBreakdown) -> list[str]:
    """Console lines: one small table per split."""
    lines: list[str] = []
    for title, groups in (("KV cache", split.kv_cache), ("turn", split.turns), ("adapter", split.adapters)):
        if not groups:
            continue
        lines.append("")
        lines.append(
            f"{'by ' + title:<14}{'ok':>6}{'failed':>8}{'hit rate':>10}"
            f"{'TTFT p50':>11}{'TTFT p99':>11}{'E2E p50':>11}  (ms)"
        )
        for g in groups:
            rate = "-" if g.kv_hit_rate is None else f"{g.kv_hit_rate:.0%}"
            cells = [_ms(g.ttft, "p50"), _ms(g.ttft, "p99"), _ms(g.e2e, "p50")]
            lines.append(
                f"  {g.label:<12}{g.ok:>6}{g.failed:>8}{rate:>10}{cells[0]:>11}{cells[1]:>11}{cells[2]:>11}"
            )
            if g.first_error:
                lines.append(f"    error: {g.first_error[:200]}")
    return lines
