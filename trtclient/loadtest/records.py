"""One record per request a load test sends, and the JSONL file they are appended to.

A :class:`RequestRecord` is plain data. Every stamp is a ``trtclient.timing.now_ns()`` reading (a
monotonic clock local to this process); ``epoch_offset_ns`` converts them to nanoseconds since the Unix
epoch (``stamp + epoch_offset_ns``) for comparison with the engine's own timestamps, which are kept as
reported in ``engine_ns``.

Every request the load engine hands to the client ends in exactly one record whose ``status`` is
``"ok"``, ``"failed"`` (with ``error_kind`` and ``error_message``) or ``"cancelled"`` (the run was
interrupted while it was in flight).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, get_args

from trtclient.streaming import ArrivalClock
from trtclient.timing import EPOCH_OFFSET_NS

__all__ = [
    "ArrivalClock",
    "JsonlSink",
    "RequestRecord",
    "Status",
    "TokenSource",
    "new_run_id",
    "read_records",
]

Status = Literal["ok", "failed", "cancelled"]
"""How a request ended."""


TokenSource = Literal["server", "tokenizer", "events"]
"""Where a token count came from, best first: the server's own count (``num_output_tokens`` /
``num_input_tokens``), the client's tokenizer, or the number of content events (output only)."""

_STATUSES: frozenset[str] = frozenset(get_args(Status))
_CONTAINER_FIELDS = ("event_ns", "event_tokens", "other_event_ns", "token_counts", "engine_ns", "kv_cache")


@dataclass
class RequestRecord:
    """Everything measured about one request (all stamps are ``now_ns()`` readings)."""

    index: int
    """Position in the schedule (0-based, warm-up included)."""
    intended_ns: int
    """When the schedule wanted the request sent (open loop and bursts: the arrival time; closed loop:
    the moment its worker became free)."""
    warmup: bool = False
    """Sent during warm-up; kept in the file, left out of every metric."""
    prompt_id: str = ""
    """Which prompt of the workload was used."""
    dispatched_ns: int | None = None
    """When the runner handed the request to the client (after any concurrency ceiling). A paced
    request is handed over ahead of ``intended_ns`` and waits in the client, right before the write."""
    sent_ns: int | None = None
    """When the client started sending the request (``StreamChunk`` iterator's ``sent_ns``)."""
    headers_ns: int | None = None
    """When the response headers arrived."""
    event_ns: list[int] = field(default_factory=list)
    """Arrival of each content event (one carrying output text or output tokens), first byte stamped."""
    event_tokens: list[int] = field(default_factory=list)
    """Output tokens in each content event as the server reported them (empty when it did not)."""
    other_event_ns: list[int] = field(default_factory=list)
    """Arrival of events that carried no content (e.g. a last event with only counts or timings)."""
    arrival_clock: ArrivalClock | None = None
    """What stamped ``event_ns`` and ``other_event_ns``: ``"kernel"`` or ``"read"`` (None: no response)."""
    end_ns: int | None = None
    """When the request ended: the stream's end, the failure, or the cancellation."""
    status: Status = "cancelled"
    http_status: int | None = None
    error_kind: str | None = None
    """``trtclient.errors.error_kind`` of the failure (``"http_503"``, ``"timeout_read"``, ...)."""
    error_message: str | None = None
    input_tokens: int | None = None
    input_tokens_source: TokenSource | None = None
    output_tokens: int | None = None
    output_tokens_source: TokenSource | None = None
    requested_output_tokens: int | None = None
    """``max_tokens`` of the request."""
    forced_output_tokens: bool = False
    """The request asked the server for exactly ``requested_output_tokens`` (``min_tokens``)."""
    token_counts: dict[str, int] = field(default_factory=dict)
    """Every count known, keyed ``"<source>_<input|output>"`` (``"server_output"``, ``"events_output"``)."""
    engine_ns: dict[str, int] = field(default_factory=dict)
    """The engine's timestamps (``first_token_time_ns`` ...), nanoseconds since the epoch, as reported."""
    kv_cache: dict[str, int] = field(default_factory=dict)
    """The engine's KV-cache figures for the request (``kv_cache_reused_blocks``,
    ``kv_cache_alloc_new_blocks``, ``kv_cache_alloc_total_blocks``), as reported."""
    turn: int | None = None
    """Turn of a multi-turn conversation (1 = its first request); None outside conversations."""
    session: str | None = None
    """The conversation the request belongs to (one id per conversation of a run); None outside them."""
    adapter: str | None = None
    """The LoRA adapter the request used (None: the base model)."""
    epoch_offset_ns: int = EPOCH_OFFSET_NS
    """Add to a stamp to get nanoseconds since the Unix epoch."""
    run_id: str = ""
    """The run that sent the request (set by :class:`JsonlSink`; one file may hold several runs)."""

    @property
    def kv_hit_rate(self) -> float | None:
        """Share of the request's KV-cache blocks the engine reused (None: the engine did not say)."""
        total = self.kv_cache.get("kv_cache_alloc_total_blocks")
        reused = self.kv_cache.get("kv_cache_reused_blocks")
        if not total or reused is None:
            return None
        return reused / total

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (a shallow copy: fields are scalars, flat lists and flat dicts),
        with the derived ``kv_hit_rate`` beside ``kv_cache`` (:meth:`from_dict` ignores it).

        ``dataclasses.asdict`` deep-copies recursively and costs several times more per record, which
        matters on the load generator's hot path.
        """
        data = dict(vars(self))
        for name in _CONTAINER_FIELDS:
            data[name] = type(data[name])(data[name])
        data["kv_hit_rate"] = self.kv_hit_rate
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        """Rebuild a record from :meth:`to_dict` output; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("status", "cancelled") not in _STATUSES:
            raise ValueError(f"unknown status {values['status']!r} in record {values.get('index')}")
        return cls(**values)


def new_run_id() -> str:
    """A run id that sorts by start time: ``20261205T001502Z-3f9a1c``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class JsonlSink:
    """Writes records to a JSONL file, one line per record, flushed as each one is written.

    The file is started afresh unless ``append``; every record is stamped with ``run_id`` (a new one by
    default), so records of several runs appended to one file stay apart.
    """

    def __init__(self, path: str | Path, *, append: bool = False, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.run_id = run_id or new_run_id()
        self._file: IO[str] | None = self.path.open("a" if append else "w", encoding="utf-8")
        self.written = 0

    def write(self, record: RequestRecord) -> None:
        """Write one record (stamped with this sink's run id) and flush it to the operating system."""
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        record.run_id = record.run_id or self.run_id
        self._file.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        """Close the file; later writes raise ``ValueError``."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_records(path: str | Path) -> Iterator[RequestRecord]:
    """Read the records of a JSONL file written by :class:`JsonlSink` (blank lines are skipped)."""
    with Path(path).open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield RequestRecord.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a request record ({exc})") from exc
