"""The exit codes every load test shares (bench, sweep, capacity and the Locust scenarios), defined once.

A CI job can gate on them: 0 when all went well, a distinct code for each way a run can go wrong.
``--max-failures N`` or ``N%`` tolerates some failed requests (default: none); ``--fail-on-slo`` turns a
missed ``--slo`` into a failure. The same table is in the README and in ``docs/bench.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ERROR",
    "EXIT_CODES",
    "FAILURES",
    "INTERRUPTED",
    "OK",
    "SLO_MISSED",
    "USAGE",
    "FailureBudget",
    "exit_code",
    "parse_max_failures",
]

OK = 0
"""The run completed, failures within ``--max-failures`` and (with ``--fail-on-slo``) every SLO met."""
ERROR = 1
"""The run could not be made: the server could not be reached, the model is missing or refused the
request options, or no request could be measured at all."""
USAGE = 2
"""A mistake on the command line (unknown flag, bad value): nothing was sent."""
FAILURES = 3
"""More requests failed than ``--max-failures`` allows (default 0)."""
SLO_MISSED = 4
"""``--fail-on-slo`` and an ``--slo`` was missed (capacity: no rate met every SLO)."""
INTERRUPTED = 130
"""Ctrl-C or SIGTERM: the partial report was still printed and written."""

#: (code, name, meaning): the one table the documentation repeats.
EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (OK, "ok", "the run completed within --max-failures and, with --fail-on-slo, every SLO"),
    (ERROR, "error", "the run could not be made (server, model or request options)"),
    (USAGE, "usage", "a command-line mistake; nothing was sent"),
    (FAILURES, "failures", "more failed requests than --max-failures allows (default 0)"),
    (SLO_MISSED, "slo_missed", "--fail-on-slo and an --slo was missed (capacity: no rate met them)"),
    (INTERRUPTED, "interrupted", "Ctrl-C or SIGTERM; the partial report was still written"),
)


@dataclass(frozen=True)
class FailureBudget:
    """How many failed requests a run tolerates: a count, or a share of the requests sent."""

    count: int = 0
    fraction: float | None = None
    """Set for ``N%``: the share (0..1) of the requests sent that may fail."""

    def exceeded(self, failed: int, sent: int) -> bool:
        """True when ``failed`` of ``sent`` requests is more than this budget allows."""
        if self.fraction is not None:
            return failed > self.fraction * sent
        return failed > self.count

    def __str__(self) -> str:
        return f"{self.fraction * 100:g}%" if self.fraction is not None else str(self.count)


def parse_max_failures(text: str) -> FailureBudget:
    """``5`` (requests) or ``2%`` / ``2.5%`` (of those sent); ValueError with a readable reason."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            share = float(raw[:-1]) / 100
            if not 0 <= share <= 1:
                raise ValueError
            return FailureBudget(fraction=share)
        count = int(raw)
        if count < 0:
            raise ValueError
        return FailureBudget(count=count)
    except ValueError:
        raise ValueError(
            f"--max-failures expects a number of requests (5) or a share of those sent (2%), got {text!r}"
        ) from None


def exit_code(
    *,
    interrupted: bool,
    sent: int,
    failed: int,
    measured_ok: int,
    budget: FailureBudget = FailureBudget(),
    slo_missed: bool = False,
) -> int:
    """The exit code of a finished run: interrupted first, then failures, then SLOs, then nothing measured."""
    if interrupted:
        return INTERRUPTED
    if budget.exceeded(failed, sent):
        return FAILURES
    if slo_missed:
        return SLO_MISSED
    if sent and not measured_ok:
        return ERROR
    return OK
