"""The capacity search: the highest open-loop request rate whose measured percentiles meet every SLO.

:class:`CapacitySearch` is a pure state machine: it proposes a rate (:meth:`~CapacitySearch.next_rate`),
is told what a run at that rate measured (:meth:`~CapacitySearch.record`), and so on until it answers
(:meth:`~CapacitySearch.answer`). It never runs anything itself, so the same logic drives real runs and
deterministic fakes.

1. **Grow**: from ``start_rate``, multiply by ``growth`` until a rate breaks an SLO (or, when the very
   first rate breaks, divide until one holds).
2. **Bisect** between the highest holding and the lowest breaking rate until they are within
   ``resolution`` of each other (relative).
3. **Repeat borderline steps**: a run whose figure lies within ``margin`` of an SLO's limit is run again,
   up to ``repeats`` times, until a majority agrees; that agreement is the answer's confidence.

A step breaks when any SLO's figure exceeds its limit, when the figure is undefined (no successful
request), when more than ``max_failed_fraction`` of its requests failed, or when the server fell behind:
its requests completed at less than ``1 - max_shortfall`` of the pace they arrived (:func:`pace_ratio`),
so a queue grew all through the step and its percentiles only depend on how long the step ran.
``max_steps`` and ``time_budget_s`` (the sum of the runs' durations) bound the search; when they end
it, the answer is the best bracket found so far. A step that cannot run, or whose every request
failed, ends the search with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SLO_METRICS",
    "SLO_STATISTICS",
    "Answer",
    "CapacitySearch",
    "SearchLimits",
    "Slo",
    "SloError",
    "Step",
    "StepResult",
    "pace_ratio",
    "parse_slo",
    "run_search",
]

#: Metrics an SLO can be set on: the latency blocks of the bench JSON summary.
SLO_METRICS = ("ttft", "ttft_sched", "tth", "itl", "tpot", "e2e", "e2e_sched")
#: Statistics an SLO can be set on.
SLO_STATISTICS = ("p50", "p90", "p95", "p99", "mean", "max")
_SLO = re.compile(r"^\s*([a-z_]+)\s*:\s*([a-z0-9]+)\s*=\s*([0-9.]+)\s*(ms)?\s*$")


class SloError(ValueError):
    """An SLO the user should fix."""


@dataclass(frozen=True)
class Slo:
    """``metric``'s ``statistic`` must stay at or under ``limit_ms``."""

    metric: str
    statistic: str
    limit_ms: float

    @property
    def key(self) -> str:
        """``ttft:p99``."""
        return f"{self.metric}:{self.statistic}"

    def __str__(self) -> str:
        return f"{self.metric} {self.statistic} <= {self.limit_ms:g} ms"


def parse_slo(text: str) -> Slo:
    """``ttft:p99=500`` (milliseconds; a trailing ``ms`` is allowed) → :class:`Slo`."""
    match = _SLO.match(text.lower())
    if not match:
        raise SloError(f"--slo expects METRIC:STAT=MS such as ttft:p99=500, got {text!r}")
    metric, statistic, value = match.group(1), match.group(2), match.group(3)
    if metric not in SLO_METRICS:
        raise SloError(f"--slo {text}: unknown metric {metric!r}; choose one of {', '.join(SLO_METRICS)}")
    if statistic not in SLO_STATISTICS:
        raise SloError(
            f"--slo {text}: unknown statistic {statistic!r}; choose one of {', '.join(SLO_STATISTICS)}"
        )
    try:
        limit = float(value)
    except ValueError:
        raise SloError(f"--slo {text}: {value!r} is not a number of milliseconds") from None
    if not limit > 0:
        raise SloError(f"--slo {text}: the limit must be positive")
    return Slo(metric, statistic, limit)


@dataclass(frozen=True)
class StepResult:
    """What one run at ``rate`` measured."""

    rate: float
    figures_ms: Mapping[str, float | None]
    """SLO key (``ttft:p99``) → the run's figure in ms (None: undefined, no successful request)."""
    sent: int
    failed: int
    seconds: float
    """How long the run took (counts against the time budget)."""
    summary: Mapping[str, Any] = field(default_factory=dict)
    """The run's bench JSON summary, kept in the answer."""
    error: str | None = None
    """Why the run could not happen at all (the search stops)."""
    pace: float | None = None
    """Completion pace over arrival pace (1.0: the server kept up; see :func:`pace_ratio`)."""


@dataclass(frozen=True)
class Step:
    """A judged run."""

    result: StepResult
    passed: bool
    reasons: tuple[str, ...]
    """Why it broke (empty when it held)."""
    borderline: bool
    attempt: int
    """1 for the first run at this rate, 2 for its first repeat, ..."""

    @property
    def rate(self) -> float:
        """The offered rate, req/s."""
        return self.result.rate


@dataclass(frozen=True)
class SearchLimits:
    """How the search grows, bisects, repeats and stops (see the module docstring)."""

    start_rate: float = 1.0
    growth: float = 2.0
    resolution: float = 0.1
    max_steps: int = 12
    time_budget_s: float | None = None
    repeats: int = 3
    margin: float = 0.1
    max_failed_fraction: float = 0.01
    max_shortfall: float = 0.1
    """A step whose requests completed this much slower than they arrived breaks (a growing queue)."""

    def __post_init__(self) -> None:
        if not self.start_rate > 0:
            raise ValueError("--start-rate must be positive")
        if not self.growth > 1:
            raise ValueError("--growth must be above 1")
        if not 0 < self.resolution < 1:
            raise ValueError("--resolution must be between 0 and 1 (e.g. 0.1 for 10%)")
        if self.max_steps < 1:
            raise ValueError("--max-steps must be at least 1")
        if self.repeats < 1:
            raise ValueError("--repeats must be at least 1")
        if not 0 < self.max_shortfall < 1:
            raise ValueError("--max-shortfall must be a share between 0 and 100%")
        if not 0 <= self.max_failed_fraction < 1:
            raise ValueError("--max-failed must be a share below 100%")


@dataclass(frozen=True)
class Verdict:
    """The settled outcome at one rate: how many runs agreed out of how many."""

    rate: float
    passed: bool
    agreed: int
    runs: int
    evidence: Step
    """A run that agrees with the verdict (its figures are the evidence shown)."""

    @property
    def stable(self) -> bool:
        """A strict majority of the runs agreed."""
        return 2 * self.agreed > self.runs


@dataclass(frozen=True)
class Answer:
    """The search's answer with its confidence."""

    max_rate: float | None
    holds: Verdict | None
    """The highest rate that held (``max_rate``)."""
    breaks: Verdict | None
    """The lowest rate that broke."""
    stopped: str
    """Why the search ended."""
    steps: tuple[Step, ...]

    @property
    def gap(self) -> float | None:
        """(breaking − holding) / holding: how tightly the answer is bracketed."""
        if self.holds is None or self.breaks is None:
            return None
        return (self.breaks.rate - self.holds.rate) / self.holds.rate


def nice_rate(rate: float) -> float:
    """``rate`` rounded to three significant digits (rates users read and type again)."""
    if rate <= 0:
        return rate
    digits = 2 - int(math.floor(math.log10(rate)))
    return round(rate, max(0, digits)) if digits > 0 else float(round(rate, digits))


class CapacitySearch:
    """See the module docstring."""

    def __init__(self, slos: Sequence[Slo], limits: SearchLimits | None = None) -> None:
        if not slos:
            raise SloError("give at least one --slo, e.g. --slo ttft:p99=500")
        keys = [s.key for s in slos]
        if len(set(keys)) != len(keys):
            raise SloError(f"--slo given twice for the same figure: {', '.join(sorted(keys))}")
        self.slos = tuple(slos)
        self.limits = limits or SearchLimits()
        self.steps: list[Step] = []
        self.verdicts: dict[float, Verdict] = {}
        self.stopped: str | None = None
        self._pending: list[Step] = []

    # ------------------------------------------------------------ judging

    def judge(self, result: StepResult, attempt: int = 1) -> Step:
        """Whether ``result`` meets every SLO, why not, and whether it is borderline."""
        if result.error is not None:
            return Step(result, False, (f"could not run: {result.error}",), False, attempt)
        reasons: list[str] = []
        borderline = False
        if result.sent == 0:
            reasons.append("no request was sent")
        elif result.failed / result.sent > self.limits.max_failed_fraction:
            reasons.append(
                f"{result.failed} of {result.sent} requests failed "
                f"(more than {self.limits.max_failed_fraction:.0%})"
            )
        if result.pace is not None and result.pace < 1 - self.limits.max_shortfall:
            reasons.append(
                f"the server fell behind: requests completed at {result.pace:.0%} of the pace they arrived"
            )
        for slo in self.slos:
            value = result.figures_ms.get(slo.key)
            if value is None:
                reasons.append(f"{slo.metric} {slo.statistic} undefined (no successful request)")
                continue
            if value > slo.limit_ms:
                reasons.append(f"{slo.metric} {slo.statistic} {value:.0f} ms > {slo.limit_ms:g} ms")
            if abs(value / slo.limit_ms - 1) <= self.limits.margin:
                borderline = True
        return Step(result, not reasons, tuple(reasons), borderline, attempt)

    # ------------------------------------------------------------ the state machine

    @property
    def spent_s(self) -> float:
        """Seconds of runs so far."""
        return math.fsum(s.result.seconds for s in self.steps)

    def _holding(self) -> Verdict | None:
        held = [v for v in self.verdicts.values() if v.passed]
        return max(held, key=lambda v: v.rate) if held else None

    def _breaking(self) -> Verdict | None:
        broke = [v for v in self.verdicts.values() if not v.passed]
        return min(broke, key=lambda v: v.rate) if broke else None

    def next_rate(self) -> float | None:
        """The rate to run next, or None when the search is over (see :attr:`stopped`)."""
        if self.stopped is not None:
            return None
        lim = self.limits
        if len(self.steps) >= lim.max_steps:
            self._stop(f"reached --max-steps {lim.max_steps}")
            return None
        if lim.time_budget_s is not None and self.steps:
            per_step = self.spent_s / len(self.steps)
            if self.spent_s + per_step > lim.time_budget_s:
                self._stop(f"the --time-budget of {lim.time_budget_s:g} s would be exceeded")
                return None
        if self._pending:
            return self._pending[0].rate
        holds, breaks = self._holding(), self._breaking()
        if holds is None and breaks is None:
            return lim.start_rate
        if breaks is None:
            assert holds is not None
            return nice_rate(holds.rate * lim.growth)
        if holds is None:
            return nice_rate(breaks.rate / lim.growth)
        if (breaks.rate - holds.rate) / holds.rate <= lim.resolution:
            self._stop(f"bracketed within {lim.resolution:.0%}")
            return None
        middle = nice_rate((holds.rate + breaks.rate) / 2)
        if not holds.rate < middle < breaks.rate:
            self._stop("the bracket cannot be split further")
            return None
        return middle

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        self._settle_pending()
        return None

    def record(self, result: StepResult) -> Step:
        """Judge a run at the rate :meth:`next_rate` proposed and advance the search."""
        attempt = len(self._pending) + 1
        step = self.judge(result, attempt)
        self.steps.append(step)
        if result.error is not None:
            self._pending = []
            self.stopped = f"the run at {result.rate:g} req/s could not run: {result.error}"
            return step
        if result.sent and result.failed == result.sent:
            # Not a latency verdict: the server (or the way to it) is broken, so lower rates say nothing.
            self._pending = []
            self.verdicts[result.rate] = Verdict(result.rate, False, 1, 1, step)
            self.stopped = f"every request at {result.rate:g} req/s failed ({result.failed} of {result.sent})"
            return step
        if not self._pending and not step.borderline:
            self.verdicts[result.rate] = Verdict(result.rate, step.passed, 1, 1, step)
            return step
        self._pending.append(step)
        votes_for = sum(s.passed for s in self._pending)
        majority = self.limits.repeats // 2 + 1
        if max(votes_for, len(self._pending) - votes_for) >= majority or attempt >= self.limits.repeats:
            self._settle_pending()
        return step

    def _settle_pending(self) -> None:
        if not self._pending:
            return
        runs = self._pending
        held = sum(s.passed for s in runs)
        passed = held > len(runs) - held  # a tie breaks: the answer stays on the safe side
        agreeing = [s for s in runs if s.passed == passed]
        rate = runs[0].rate
        self.verdicts[rate] = Verdict(rate, passed, len(agreeing), len(runs), agreeing[-1])
        self._pending = []

    def answer(self) -> Answer:
        """The answer so far (call after :meth:`next_rate` returned None for the final one)."""
        self._settle_pending()
        holds, breaks = self._holding(), self._breaking()
        return Answer(
            max_rate=holds.rate if holds else None,
            holds=holds,
            breaks=breaks,
            stopped=self.stopped or "not finished",
            steps=tuple(self.steps),
        )


def pace_ratio(intended_ns: Sequence[int], ends_ns: Sequence[int]) -> float | None:
    """(span of the intended starts) / (span of the completions) of a step's requests.

    About 1 when the server keeps up (completions follow arrivals, whatever their randomness); below 1
    when requests complete slower than they arrive. None with fewer than three requests.
    """
    if len(intended_ns) < 3 or len(ends_ns) < 3:
        return None
    arrivals = max(intended_ns) - min(intended_ns)
    completions = max(ends_ns) - min(ends_ns)
    if arrivals <= 0 or completions <= 0:
        return None
    return arrivals / completions


def run_search(search: CapacitySearch, measure: Callable[[float], StepResult]) -> Answer:
    """Drive ``search`` with a synchronous ``measure(rate)`` until it answers."""
    while (rate := search.next_rate()) is not None:
        search.record(measure(rate))
    return search.answer()
