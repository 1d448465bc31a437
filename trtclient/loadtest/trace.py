"""Trace replay: requests at recorded arrival times with recorded lengths, in the Mooncake trace format.

A trace is JSONL, one request per line: ``timestamp`` (milliseconds, from any origin, non-decreasing),
``input_length`` and ``output_length`` (tokens) and, in the Mooncake format, ``hash_ids``: the ids of the
prompt's blocks of :data:`HASH_BLOCK_TOKENS` tokens, equal ids meaning equal content. Requests whose
``hash_ids`` start alike get prompts that start with the same text, so the server's prefix cache sees
the sharing the trace recorded. Every prompt has exactly ``input_length`` tokens by the client's
tokenizer. Prompts are built before the run, so building never delays a send.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtclient.loadtest.schedule import Replay
from trtclient.loadtest.workload import Length, Prompt, SyntheticPrompts, TokenCounter, WorkloadError

__all__ = [
    "HASH_BLOCK_TOKENS",
    "TraceEntry",
    "TracePrompts",
    "check_input_lengths",
    "read_trace",
    "trace_shape",
]

#: Tokens per ``hash_ids`` block in Mooncake's traces.
HASH_BLOCK_TOKENS = 512
_ATTEMPTS = 40


@dataclass(frozen=True)
class TraceEntry:
    """One request of a trace."""

    line: int
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = ()


def _number(obj: dict[str, Any], key: str, where: str, *, integer: bool) -> float:
    value = obj.get(key)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if value is None or isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise WorkloadError(f"{where}: {key!r} must be {kind}, got {value!r}")
    return float(value)


def read_trace(path: str | Path) -> list[TraceEntry]:
    """The entries of a JSONL trace; a bad line raises :class:`WorkloadError` naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: cannot read it ({exc})") from exc
    entries: list[TraceEntry] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: expected an object with timestamp, input_length, output_length")
        stamp = _number(obj, "timestamp", where, integer=False)
        inputs = int(_number(obj, "input_length", where, integer=True))
        outputs = int(_number(obj, "output_length", where, integer=True))
        if stamp < 0:
            raise WorkloadError(f"{where}: timestamp {stamp:g} is negative")
        if entries and stamp < entries[-1].timestamp_ms:
            raise WorkloadError(
                f"{where}: timestamp {stamp:g} is earlier than line {entries[-1].line}'s "
                f"{entries[-1].timestamp_ms:g}; sort the trace by timestamp"
            )
        if inputs < 1 or outputs < 1:
            raise WorkloadError(f"{where}: input_length and output_length must be at least 1")
        hashes = obj.get("hash_ids", [])
        if not isinstance(hashes, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hashes
        ):
            raise WorkloadError(f"{where}: hash_ids must be a list of integers")
        entries.append(TraceEntry(number, stamp, inputs, outputs, tuple(hashes)))
    if not entries:
        raise WorkloadError(f"{path} holds no requests")
    return entries


def check_input_lengths(path: str | Path, entries: list[TraceEntry], max_input_len: int | None) -> None:
    """Refuse, naming the line, an entry longer than the model's ``max_input_len`` (None: not known)."""
    if max_input_len is None:
        return
    for e in entries:
        if e.input_length > max_input_len:
            raise WorkloadError(
                f"{path}:{e.line}: input_length {e.input_length} exceeds the model's "
                f"max_input_len {max_input_len}"
            )


def trace_shape(entries: list[TraceEntry], speed: float) -> Replay:
    """Arrival times: each entry's timestamp from the first one's, divided by the speed."""
    first = entries[0].timestamp_ms
    return Replay(tuple(round((e.timestamp_ms - first) * 1e6 / speed) for e in entries), speed)


class TracePrompts:
    """The trace's requests as prompts, in trace order; :meth:`shape` gives their arrival times."""

    def __init__(
        self,
        path: str | Path,
        tokenizer: TokenCounter,
        *,
        speed: float = 1.0,
        max_input_len: int | None = None,
        seed: int = 0,
        source_text: str | None = None,
    ) -> None:
        if not speed > 0:
            raise WorkloadError(f"--trace-speed must be positive, got {speed:g}")
        self.entries = read_trace(path)
        check_input_lengths(path, self.entries, max_input_len)
        self.speed = speed
        self._tok = tokenizer
        self._builder = SyntheticPrompts(tokenizer, Length(1), Length(1), seed=seed, source_text=source_text)
        self._blocks: dict[int, str] = {}
        self._rng = random.Random(seed)
        self._prompts = [self._prompt(i, e) for i, e in enumerate(self.entries)]
        seconds = (self.entries[-1].timestamp_ms - self.entries[0].timestamp_ms) / 1000 / speed
        self.description = f"trace {path} ({len(self.entries)} requests over {seconds:.1f} s at {speed:g}x)"

    def shape(self) -> Replay:
        """Arrival times: each entry's timestamp from the first one's, divided by the speed."""
        return trace_shape(self.entries, self.speed)

    def _block(self, hash_id: int) -> str:
        if hash_id not in self._blocks:
            self._blocks[hash_id] = self._builder.build(HASH_BLOCK_TOKENS, random.Random(hash_id))
        return self._blocks[hash_id]

    def _prompt(self, index: int, entry: TraceEntry) -> Prompt:
        n = entry.input_length
        shared = min(len(entry.hash_ids), (n - 1) // HASH_BLOCK_TOKENS)
        prefix = " ".join(self._block(h) for h in entry.hash_ids[:shared])
        text = ""
        for _ in range(_ATTEMPTS):
            rest = n - (self._tok.count(prefix) if prefix else 0)
            if rest < 1:
                prefix = ""  # the blocks re-encoded longer than the trace says: no shared prefix then
                continue
            tail = self._builder.build(rest, self._rng)
            text = f"{prefix} {tail}" if prefix else tail
            if self._tok.count(text) == n:
                return Prompt(f"trace-{entry.line}", text, entry.output_length, n)
        raise WorkloadError(f"line {entry.line}: could not build a prompt of exactly {n} tokens")

    def prompts(self) -> Iterator[Prompt]:
        while True:
            yield from self._prompts
