"""Prometheus text exposition (Triton's ``/metrics``) parsed into samples.

Triton serves its counters and gauges on port 8002: the generic ``nv_inference_*`` families with
``model``/``version`` labels, and the TRT-LLM backend's ``nv_trt_llm_*`` gauges with one category
label each (e.g. ``nv_trt_llm_request_metrics{request_type="active"}``; ``triton-protocol.md`` §1.6).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["MetricFamily", "Sample", "find_samples", "parse_families", "parse_metrics", "sample_total"]


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: metric name, labels, value and optional timestamp (ms)."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp_ms: int | None = None

    def label(self, key: str, default: str = "") -> str:
        """One label's value."""
        return self.labels.get(key, default)


@dataclass
class MetricFamily:
    """A metric family: its ``# TYPE`` (counter, gauge, histogram...), ``# HELP`` and samples."""

    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


class MetricsParseError(ValueError):
    """A line of the exposition could not be parsed (line number and text in the message)."""


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, in order."""
    samples: list[Sample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        samples.append(_parse_sample(line, number))
    return samples


def parse_families(text: str) -> dict[str, MetricFamily]:
    """Samples grouped by family, with TYPE and HELP (histogram/summary suffixes join their family)."""
    families: dict[str, MetricFamily] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].strip().split(None, 2)
            if len(parts) >= 2 and parts[0] in ("TYPE", "HELP"):
                family = families.setdefault(parts[1], MetricFamily(parts[1]))
                rest = parts[2] if len(parts) > 2 else ""
                if parts[0] == "TYPE":
                    family.type = rest.strip() or "untyped"
                else:
                    family.help = _unescape_help(rest)
            continue
        sample = _parse_sample(line, number)
        name = _family_name(sample.name, families)
        families.setdefault(name, MetricFamily(name)).samples.append(sample)
    return families


def find_samples(
    samples: Iterable[Sample], name: str, labels: Mapping[str, str] | None = None
) -> list[Sample]:
    """The samples of one metric whose labels include all of ``labels``."""
    wanted = dict(labels or {})
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items())]


def sample_total(samples: Iterable[Sample], name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the matching samples' values (0.0 when none match)."""
    return math.fsum(s.value for s in find_samples(samples, name, labels))


def _family_name(sample_name: str, families: Mapping[str, MetricFamily]) -> str:
    if sample_name in families:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if sample_name.endswith(suffix):
            base = sample_name[: -len(suffix)]
            if base in families:
                return base
    return sample_name


def _parse_sample(line: str, number: int) -> Sample:
    brace = line.find("{")
    space = line.find(" ")
    labels: dict[str, str] = {}
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        rest = _parse_labels(line, brace + 1, labels, number)
    else:
        if space == -1:
            raise MetricsParseError(f"line {number}: no value in {line!r}")
        name, rest = line[:space], line[space:]
    if not name:
        raise MetricsParseError(f"line {number}: no metric name in {line!r}")
    parts = rest.split()
    if not parts or len(parts) > 2:
        raise MetricsParseError(f"line {number}: expected a value and an optional timestamp in {line!r}")
    try:
        value = float(parts[0])
        timestamp = int(parts[1]) if len(parts) == 2 else None
    except ValueError:
        raise MetricsParseError(f"line {number}: bad number in {line!r}") from None
    return Sample(name, labels, value, timestamp)


def _parse_labels(line: str, pos: int, labels: dict[str, str], number: int) -> str:
    """Read ``key="value",...}`` from ``pos``; return the text after the closing brace."""
    end = len(line)
    while True:
        while pos < end and line[pos] in " ,":
            pos += 1
        if pos >= end:
            raise MetricsParseError(f"line {number}: unterminated labels in {line!r}")
        if line[pos] == "}":
            return line[pos + 1 :]
        eq = line.find("=", pos)
        if eq == -1 or eq + 1 >= end or line[eq + 1] != '"':
            raise MetricsParseError(f"line {number}: bad label in {line!r}")
        key = line[pos:eq].strip()
        pos = eq + 2
        value: list[str] = []
        while True:
            if pos >= end:
                raise MetricsParseError(f"line {number}: unterminated label value in {line!r}")
            char = line[pos]
            if char == "\\" and pos + 1 < end:
                nxt = line[pos + 1]
                value.append("\n" if nxt == "n" else nxt)
                pos += 2
                continue
            if char == '"':
                pos += 1
                break
            value.append(char)
            pos += 1
        labels[key] = "".join(value)


def _unescape_help(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\\\", "\\")
