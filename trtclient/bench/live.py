"""Live progress of long work (sweeps, capacity searches): phase, position, time, tok/s and TTFT p50.

On a terminal it is one line rewritten in place; elsewhere (CI logs, pipes) a plain line every
``interval_s`` seconds, so a log shows that the run is alive without one line per update.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from trtclient.bench.progress import Counters
from trtclient.loadtest.metrics import percentile
from trtclient.timing import now_ns

__all__ = ["LiveProgress", "Stage"]

#: Seconds over which the live tokens/s is averaged.
RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class Stage:
    """Where long work is: ``"level 2 of 5 (c=4)"`` and what that part runs."""

    label: str
    warmup_requests: int = 0
    warmup_s: float = 0.0
    measure_requests: int | None = None
    measure_s: float | None = None
    remaining_after_s: float | None = None
    """Estimated seconds of the work left after this part (None: unknown)."""


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class LiveProgress:
    """Renders :class:`Counters` of the current :class:`Stage` (see the module docstring)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        terminal: bool | None = None,
        interval_s: float = 5.0,
        clock_ns: Callable[[], int] = now_ns,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.interval_s = interval_s
        self.clock_ns = clock_ns
        self.started_ns = clock_ns()
        self.stage = Stage("starting")
        self._last_print_ns = 0
        self._tokens: deque[tuple[int, int]] = deque()
        self._width = 0

    def begin(self, stage: Stage) -> None:
        """A new part of the work starts (its counters start from zero)."""
        self.stage = stage
        self._tokens.clear()

    def render(self, c: Counters, at_ns: int) -> str:
        """The progress text at ``at_ns``."""
        st = self.stage
        run_s = max(0.0, (at_ns - c.started_ns) / 1e9) if c.started_ns else 0.0
        warming = (st.warmup_s and run_s < st.warmup_s) or (
            st.warmup_requests and c.sent <= st.warmup_requests
        )
        phase = "warm-up" if warming else "measuring"
        rate = self._token_rate(c, at_ns)
        ttfts = sorted(c.recent_ttft_ns)
        ttft = f"TTFT p50 {percentile(ttfts, 50) / 1e6:.0f} ms" if ttfts else "TTFT p50 -"
        parts = [
            f"{st.label}: {phase}",
            f"elapsed {_clock((at_ns - self.started_ns) / 1e9)}",
        ]
        left = self._remaining(c, run_s)
        if left is not None:
            parts.append(f"~{_clock(left)} left")
        parts += [f"ok {c.ok}", f"failed {c.failed}", f"{rate:,.0f} tok/s", ttft]
        return "  ".join(parts)

    def _token_rate(self, c: Counters, at_ns: int) -> float:
        """Output tokens/s over the last few seconds (the run so far when it is younger)."""
        self._tokens.append((at_ns, c.output_tokens))
        while len(self._tokens) > 1 and at_ns - self._tokens[0][0] > RATE_WINDOW_S * 1e9:
            self._tokens.popleft()
        then_ns, then_tokens = self._tokens[0]
        if then_ns == at_ns:
            then_ns, then_tokens = c.started_ns, 0
        span = (at_ns - then_ns) / 1e9
        return (c.output_tokens - then_tokens) / span if span > 0 else 0.0

    def _remaining(self, c: Counters, run_s: float) -> float | None:
        st = self.stage
        this: float | None = None
        if st.measure_s is not None:
            this = max(0.0, st.warmup_s + st.measure_s - run_s)
        elif st.measure_requests is not None and c.ok + c.failed and run_s > 0:
            total = st.measure_requests + st.warmup_requests
            this = max(0.0, (total - c.ok - c.failed) * run_s / (c.ok + c.failed))
        if this is None or st.remaining_after_s is None:
            return this
        return this + st.remaining_after_s

    def update(self, c: Counters) -> None:
        """Called by the runner a few times a second; prints as the module docstring says."""
        at = self.clock_ns()
        text = self.render(c, at)
        if self.terminal:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        elif (at - self._last_print_ns) / 1e9 >= self.interval_s:
            self.stream.write(text + "\n")
            self._last_print_ns = at
        else:
            return
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line that stays (a level's result), printed above the live line."""
        self.clear()
        self.stream.write(message + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the live line (terminal only)."""
        if self.terminal and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
