"""Latency by workload group, kept per process in histograms and added up on the master: the groups of
``trtclient.loadtest.breakdown`` (KV-cache hit or miss, conversation turn, LoRA adapter), each with its
ok / failed counts, TTFT and E2E histograms, the engine's mean per-request KV hit rate and the first
failure's message. :meth:`WorkloadGroups.breakdown` gives the library's
:class:`~trtclient.loadtest.breakdown.WorkloadBreakdown`, so the tables read as ``trtclient bench``'s.

No locust or gevent import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trtclient.loadtest import metrics as m
from trtclient.loadtest.breakdown import SPLITS, Group, WorkloadBreakdown, label_order, split_labels
from trtclient.loadtest.histogram import Histogram
from trtclient.loadtest.records import RequestRecord

__all__ = ["GroupStats", "WorkloadGroups"]

#: Longest first-failure message carried from a worker.
MAX_ERROR = 300


class GroupStats:
    """One group's counts and histograms (nanoseconds in, as the library's metrics)."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.ttft = Histogram()
        self.e2e = Histogram()
        self.kv_hit_rate_sum = 0.0
        self.kv_reported = 0
        self.first_error: str | None = None

    def add(self, record: RequestRecord) -> None:
        """Count one ok or failed request (a cancelled one is left out, as in the library's breakdown)."""
        if record.status == "failed":
            self.failed += 1
            if self.first_error is None and record.error_message:
                self.first_error = record.error_message[:MAX_ERROR]
            return
        if record.status != "ok":
            return
        self.ok += 1
        for hist, metric in ((self.ttft, m.ttft_ns), (self.e2e, m.e2e_ns)):
            value = metric(record)
            if value is not None:
                hist.add(value)
        rate = m.kv_hit_rate(record)
        if rate is not None:
            self.kv_hit_rate_sum += rate
            self.kv_reported += 1

    def to_wire(self) -> dict[str, Any]:
        """Plain data for msgpack."""
        return {
            "ok": self.ok,
            "failed": self.failed,
            "ttft": self.ttft.to_wire(),
            "e2e": self.e2e.to_wire(),
            "kv_hit_rate_sum": self.kv_hit_rate_sum,
            "kv_reported": self.kv_reported,
            "first_error": self.first_error,
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add another process's :meth:`to_wire`."""
        self.ok += int(data.get("ok", 0))
        self.failed += int(data.get("failed", 0))
        for hist, key in ((self.ttft, "ttft"), (self.e2e, "e2e")):
            if data.get(key):
                hist.merge(Histogram.from_wire(data[key]))
        self.kv_hit_rate_sum += float(data.get("kv_hit_rate_sum", 0.0))
        self.kv_reported += int(data.get("kv_reported", 0))
        error = data.get("first_error")
        if self.first_error is None and isinstance(error, str):
            self.first_error = error

    def group(self, label: str) -> Group:
        """The library's summary of this group."""
        return Group(
            label=label,
            ok=self.ok,
            failed=self.failed,
            ttft=self.ttft.summary(),
            e2e=self.e2e.summary(),
            kv_hit_rate=self.kv_hit_rate_sum / self.kv_reported if self.kv_reported else None,
            first_error=self.first_error,
        )


class WorkloadGroups:
    """Every group of every split (:data:`~trtclient.loadtest.breakdown.SPLITS`) seen so far."""

    def __init__(self) -> None:
        self.splits: dict[str, dict[str, GroupStats]] = {split: {} for split in SPLITS}

    def add(self, record: RequestRecord) -> None:
        """Put one finished request into its group of each split that applies to it."""
        if record.status not in ("ok", "failed"):
            return
        for split, label in split_labels(record).items():
            self._stats(split, label).add(record)

    def _stats(self, split: str, label: str) -> GroupStats:
        groups = self.splits.setdefault(split, {})
        if label not in groups:
            groups[label] = GroupStats()
        return groups[label]

    def __bool__(self) -> bool:
        return any(self.splits.values())

    def to_wire(self) -> dict[str, Any]:
        """Plain data for msgpack: split -> label -> group."""
        return {
            split: {label: g.to_wire() for label, g in groups.items()}
            for split, groups in self.splits.items()
            if groups
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add another process's :meth:`to_wire`."""
        for split, groups in data.items():
            if split in self.splits and isinstance(groups, Mapping):
                for label, wire in groups.items():
                    self._stats(split, str(label)).merge(wire)

    def breakdown(self) -> WorkloadBreakdown:
        """The groups as the library's breakdown (labels in :func:`label_order`)."""
        return WorkloadBreakdown(
            *(
                [
                    self.splits[split][label].group(label)
                    for label in sorted(self.splits[split], key=label_order)
                ]
                for split in SPLITS
            )
        )
