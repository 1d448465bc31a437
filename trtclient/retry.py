"""Retry maths: which failures may be retried, and capped exponential backoff with jitter."""

from __future__ import annotations

from dataclasses import dataclass

from trtclient import errors
from trtclient.constants import (
    RETRY_INITIAL_DELAY,
    RETRY_JITTER,
    RETRY_MAX_DELAY,
)

__all__ = [
    "RetryPolicy",
    "retry_delay",
    "should_retry",
]


@dataclass(frozen=True)
class RetryPolicy:
    """Opt-in retries of connection failures and 503 answers that arrived before any event."""

    max_retries: int = 0
    initial_delay: float = RETRY_INITIAL_DELAY
    max_delay: float = RETRY_MAX_DELAY
    jitter: float = RETRY_JITTER

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise errors.RequestValidationError(
                f"max_retries must be an int >= 0, not {self.max_retries!r}", field="max_retries"
            )


def should_retry(exc: BaseException, *, events_received: int = 0) -> bool:
    """Whether a failed attempt may be retried: nothing was streamed yet, and the failure is a
    connection failure (incl. connect timeout) or a 503. Reads that timed out, disconnects after
    sending and every other status are final: the server may already have done the work."""
    if events_received:
        return False
    if isinstance(exc, errors.TritonConnectionError | errors.ConnectTimeoutError):
        return True
    return isinstance(exc, errors.ServiceUnavailableError) and exc.grpc_code is None


def retry_delay(attempt: int, policy: RetryPolicy, *, rand: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): capped exponential backoff with jitter.

    ``rand`` in [0, 1) takes up to ``policy.jitter`` off the delay; a server's Retry-After (seconds)
    is honoured up to ``policy.max_delay``.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, policy.max_delay)
    base = min(policy.max_delay, policy.initial_delay * (2.0**attempt))
    return base * (1.0 - policy.jitter * rand)
