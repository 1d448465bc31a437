"""The live progress line: one line on stderr, rewritten in place while a run goes on."""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from trtclient.timing import now_ns

__all__ = ["Counters", "ProgressLine"]

#: How many of the latest TTFTs :class:`Counters` keeps.
RECENT_TTFTS = 200


@dataclass
class Counters:
    """Running totals the runner keeps up to date."""

    started_ns: int = 0
    sent: int = 0
    ok: int = 0
    failed: int = 0
    cancelled: int = 0
    in_flight: int = 0
    output_tokens: int = 0
    recent_ttft_ns: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_TTFTS))
    """TTFTs of the latest successful requests, for a live median."""


class ProgressLine:
    """Renders :class:`Counters` as one line, rewritten with a carriage return."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._width = 0

    @staticmethod
    def render(c: Counters, at_ns: int) -> str:
        """The text of the line at time ``at_ns``."""
        seconds = max(0.0, (at_ns - c.started_ns) / 1e9)
        rate = c.output_tokens / seconds if seconds > 0 else 0.0
        parts = [
            f"{seconds:6.1f}s",
            f"sent {c.sent}",
            f"ok {c.ok}",
            f"failed {c.failed}",
            f"in flight {c.in_flight}",
            f"{rate:,.0f} tok/s",
        ]
        if c.cancelled:
            parts.insert(4, f"cancelled {c.cancelled}")
        return "  ".join(parts)

    def update(self, c: Counters) -> None:
        """Rewrite the line."""
        text = self.render(c, now_ns())
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erase the line."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
