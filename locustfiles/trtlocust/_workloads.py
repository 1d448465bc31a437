"""What one Locust process sends: the fixed ``--prompt``, ``--shared-prefix`` prompts, ``--turns``
conversations, a ``--lora`` mix over single prompts, or a ``--trace``'s requests by line, all built by
``trtclient.loadtest`` (the same prompts as ``trtclient bench``). Also the checks the master (or the
standalone runner) makes before any load: the options fit together, the trace reads, the prompts fit the
model's ``max_input_len``. No locust or gevent import.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

from trtclient.loadtest.lora import LoraMix
from trtclient.loadtest.sessions import Conversation, SyntheticSessions
from trtclient.loadtest.shared_prefix import SharedPrefixPrompts
from trtclient.loadtest.trace import TraceEntry, TracePrompts, check_input_lengths, read_trace
from trtclient.loadtest.workload import FixedPrompt, Length, Prompt, TokenCounter, WorkloadError

__all__ = ["ProcessWorkload", "trace_entries", "workload_problem"]

#: Seeds of two worker processes' conversations are this far apart.
_STREAM_SEED_STEP = 1_000_003


@functools.lru_cache(maxsize=4)
def trace_entries(path: str) -> list[TraceEntry]:
    """The trace's entries, read once per process (a bad line raises ``WorkloadError`` naming it)."""
    return read_trace(path)


def _tokenizer(options: argparse.Namespace) -> TokenCounter:
    from trtclient.server.tokenizer import default_tokenizer_dir

    return TokenCounter.from_dir(getattr(options, "tokenizer", "") or default_tokenizer_dir())


def _seed(options: argparse.Namespace) -> int:
    return int(getattr(options, "seed", 0) or 0)


class _Stream:
    """A shared-prefix workload drawing process ``stream``'s sequence (what :class:`LoraMix` wraps)."""

    def __init__(self, inner: SharedPrefixPrompts, stream: int) -> None:
        self.inner = inner
        self.stream = stream
        self.description = inner.description

    def prompts(self) -> Iterator[Prompt]:
        return self.inner.prompts(self.stream)


class ProcessWorkload:
    """This process's prompts; ``stream`` (a worker's number + 1, 0 standalone) makes each worker draw
    its own sequence of prompts, conversations and adapters."""

    def __init__(self, options: argparse.Namespace, stream: int = 0) -> None:
        self.fixed = next(FixedPrompt(options.prompt, options.max_tokens).prompts())
        self.think_time_s = float(getattr(options, "think_time", None) or 0.0)
        self._lock = threading.Lock()
        self._prompts: Iterator[Prompt] | None = None
        self._conversations: Iterator[Conversation] | None = None
        self._trace: list[Prompt] | None = None
        seed = _seed(options)
        trace = getattr(options, "trace", None)
        if trace:
            built = TracePrompts(trace, _tokenizer(options), speed=float(options.trace_speed), seed=seed)
            self._trace = list(itertools.islice(built.prompts(), len(built.entries)))
            return
        turns = getattr(options, "turns", None)
        if turns:
            sessions = SyntheticSessions(
                _tokenizer(options),
                int(turns),
                Length(int(options.input_tokens)),
                Length(int(options.max_tokens)),
                think_time_s=self.think_time_s,
                seed=seed + stream * _STREAM_SEED_STEP,
            )
            self._conversations = sessions.conversations()
            return
        inner: _Stream | FixedPrompt | None = None
        spec = getattr(options, "shared_prefix", None)
        if spec is not None:
            shared = SharedPrefixPrompts(
                _tokenizer(options),
                spec,
                Length(int(options.input_tokens)),
                Length(int(options.max_tokens)),
                seed=seed,
            )
            inner = _Stream(shared, stream)
        adapters = getattr(options, "lora", None)
        if adapters:
            base = inner if inner is not None else FixedPrompt(options.prompt, options.max_tokens)
            self._prompts = LoraMix(base, adapters, seed=seed + stream * _STREAM_SEED_STEP).prompts()
        elif inner is not None:
            self._prompts = inner.prompts()

    @property
    def conversational(self) -> bool:
        """Each user holds a conversation (``--turns``)."""
        return self._conversations is not None

    def next_prompt(self, number: int = 0) -> Prompt:
        """The next single prompt; with a trace, the prompt of the trace's ``number``-th request."""
        if self._trace is not None:
            return self._trace[number % len(self._trace)]
        if self._prompts is None:
            return self.fixed
        with self._lock:
            return next(self._prompts)

    def next_conversation(self) -> Conversation:
        """A new conversation for a user (``--turns`` only)."""
        if self._conversations is None:
            raise RuntimeError("not a --turns workload")
        with self._lock:
            return next(self._conversations)


def workload_problem(
    options: argparse.Namespace, *, open_loop: bool, max_input_len: int | None
) -> str | None:
    """One line saying what is wrong with the workload options (None: they fit), checked before any load;
    ``max_input_len``: the model's, where known (the embedded server's)."""
    turns = getattr(options, "turns", None)
    trace = getattr(options, "trace", None)
    shared = getattr(options, "shared_prefix", None)
    lora = getattr(options, "lora", None)
    if getattr(options, "think_time", None) is not None and not turns:
        return "--think-time applies to conversations: add --turns T"
    if turns:
        if open_loop:
            return "--turns holds one conversation per user, a closed loop: run it with concurrency.py"
        if shared is not None:
            return "--turns builds its prompts from the conversation: drop --shared-prefix"
        if lora:
            return "--lora applies to single prompts, not to --turns conversations"
    if trace:
        if shared is not None or lora:
            return "--trace sets every request's prompt and length: drop --shared-prefix / --lora"
        try:
            check_input_lengths(Path(trace), trace_entries(str(trace)), max_input_len)
        except WorkloadError as exc:
            return str(exc)
    if shared is not None and max_input_len is not None:
        longest = shared.prefix_tokens + int(options.input_tokens)
        if longest > max_input_len:
            return (
                f"--shared-prefix {shared.groups}:{shared.prefix_tokens} with --input-tokens "
                f"{options.input_tokens} makes prompts of {longest} tokens, over the server's max_input_len "
                f"{max_input_len}"
            )
    return None
