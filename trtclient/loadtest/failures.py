"""Why requests failed: per failure kind, how many and the server's most common messages.

Locust shows a failures table; a load test that only counts ``http_400: 12`` leaves the user guessing.
:func:`failure_reasons` groups the failed records by ``error_kind`` and keeps, for each kind, the few
most common ``error_message`` texts (the server's own words, e.g. "prompt length exceeds max_input_len").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from trtclient.loadtest.records import RequestRecord

__all__ = ["FailureReason", "failure_reasons", "MESSAGES_KEPT", "MESSAGE_CHARS"]

#: Messages kept per kind, most common first.
MESSAGES_KEPT = 3
#: A message longer than this is cut (with "...") so one bad answer cannot flood the report.
MESSAGE_CHARS = 200


@dataclass(frozen=True)
class FailureReason:
    """One failure kind: its count and its most common messages with their counts."""

    kind: str
    count: int
    messages: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, object]:
        """The JSON form: ``{"count": n, "messages": [{"message": ..., "count": ...}]}``."""
        return {"count": self.count, "messages": [{"message": m, "count": n} for m, n in self.messages]}


def _clean(message: str | None) -> str:
    text = " ".join((message or "").split()) or "(no message)"
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def failure_reasons(records: Iterable[RequestRecord], kept: int = MESSAGES_KEPT) -> list[FailureReason]:
    """The failed records' kinds, most frequent first, each with its ``kept`` most common messages
    (ties in text order, so the answer does not depend on the order requests ended)."""
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.status == "failed":
            by_kind[r.error_kind or "unknown"][_clean(r.error_message)] += 1
    reasons = [
        FailureReason(kind, sum(texts.values()), tuple(sorted(texts.items(), key=_most_first)[:kept]))
        for kind, texts in by_kind.items()
    ]
    return sorted(reasons, key=lambda reason: (-reason.count, reason.kind))
