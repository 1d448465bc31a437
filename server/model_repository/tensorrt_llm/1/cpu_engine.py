"""A CPU stand-in for a TensorRT-LLM in-flight-batching engine, free of Triton so it can be tested alone.

The scheduler behaves like TRT-LLM's batch manager: requests wait in a queue; each iteration admits queued
requests while the batch has room (``max_batch_size`` sequences) and the paged KV cache (``kv_cache``:
``kv_cache_tokens`` in blocks of ``tokens_per_block``) can hold their prompt plus their maximum output,
bounded by ``max_num_tokens`` context tokens per iteration; newly admitted requests run their context phase
(whose time grows with the prompt tokens not already cached, when block reuse is on) and produce their
first token; every other active sequence decodes one token. An iteration lasts the profile's context time
of its new prompts plus one decoding step, whose time grows with the batch size. Requests that don't fit wait.

Tokens come from a Markov chain over the corpus the default tokenizer was trained on, seeded per sequence,
so the text reads as text and repeats exactly for the same seed.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # loaded from its file, as Triton does
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_settings import EngineSettings, Limits, RequestError, Timing, _interpolate  # noqa: E402, F401
from kv_cache import Allocation, KvCache  # noqa: E402
from lora_cache import LoraCache  # noqa: E402

WordList = list[tuple[int, ...]]


class Generator:
    """Next-token choice: a second-order Markov chain with first-order and start-token fallbacks."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.next2: dict[str, list[int]] = tables["next2"]
        self.next1: dict[str, list[int]] = tables["next1"]
        self.starts: list[int] = tables["starts"]
        # After some text, a new sentence starts with a space: " The", not "The".
        self.spaced_starts: list[int] = tables.get("spaced_starts") or self.starts
        self.vocab_size = int(tables["vocab_size"])

    def candidates(self, history: list[int]) -> list[int]:
        if len(history) >= 2:
            found = self.next2.get(f"{history[-2]},{history[-1]}")
            if found:
                return found
        if history:
            found = self.next1.get(str(history[-1]))
            if found:
                return found
        return self.spaced_starts if history else self.starts

    def choose(
        self, history: list[int], rng: random.Random, *, greedy: bool, banned: set[int]
    ) -> tuple[int, float]:
        """The next token and its log probability under the chain (its share of the candidate pool)."""
        for pool in (self.candidates(history), self.spaced_starts, self.starts):
            allowed = [t for t in pool if t not in banned] if banned else pool
            if allowed:
                if greedy:
                    token = max(sorted(set(allowed)), key=allowed.count)
                else:
                    token = allowed[rng.randrange(len(allowed))]
                return token, math.log(allowed.count(token) / len(allowed))
        for token in range(3, self.vocab_size):
            if token not in banned:
                return token, math.log(1.0 / self.vocab_size)
        raise RequestError("bad_words exclude every token of the vocabulary")


@dataclass
class RequestSpec:
    """One request as the engine sees it (already validated)."""

    prompt: list[int]
    max_new_tokens: int
    end_id: int
    streaming: bool
    exclude_input: bool
    num_sequences: int = 1
    min_tokens: int = 0
    seed: int = 0
    greedy: bool = False
    stop_words: WordList = field(default_factory=list)
    bad_words: WordList = field(default_factory=list)
    lora_task_id: int | None = None
    handle: Any = None
    """Opaque caller data (the Triton response sender and output options)."""
    arrival_ns: int = 0
    first_scheduled_ns: int = 0
    remaining: int = 0
    cancelled: bool = False
    stopped: bool = False
    """Set by a stop request: every sequence ends at the next iteration with what it has so far."""


@dataclass
class Sequence:
    request: RequestSpec
    index: int
    rng: random.Random
    generated: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    first_token_ns: int = 0
    last_token_ns: int = 0
    finished: bool = False
    started: bool = False
    sent_first: bool = False
    blocks: Allocation | None = None
    """The KV-cache blocks it holds while it runs."""
    kv_reused_blocks: int = 0
    kv_total_blocks: int = 0

    @property
    def kv_tokens(self) -> int:
        return len(self.request.prompt) + self.request.max_new_tokens


@dataclass
class Emission:
    """Tokens one sequence produced in an iteration, to be sent as one response."""

    sequence: Sequence
    tokens: list[int]
    sequence_finished: bool
    request_finished: bool
    generated: int = 0
    """How many of ``tokens`` are generated ones (the rest is the echoed prompt)."""


def validate(spec: RequestSpec, limits: Limits, beam_width: int) -> None:
    """Reject what TRT-LLM would reject, with a message a user understands."""
    n = len(spec.prompt)
    if beam_width != 1:
        raise RequestError(
            f"beam_width {beam_width} is not supported by the CPU engine (it decodes with beam width 1); "
            "send beam_width 1 or omit it"
        )
    if n == 0:
        raise RequestError("the prompt is empty: text_input must contain at least one token")
    if spec.max_new_tokens <= 0:
        raise RequestError(f"max_tokens must be at least 1, got {spec.max_new_tokens}")
    if n > limits.max_input_len:
        raise RequestError(
            f"prompt length ({n} tokens) exceeds the engine's max_input_len ({limits.max_input_len})"
        )
    if n + spec.max_new_tokens > limits.max_seq_len:
        raise RequestError(
            f"prompt length ({n}) plus max_tokens ({spec.max_new_tokens}) exceeds the engine's "
            f"max_seq_len ({limits.max_seq_len}); lower max_tokens to at most {limits.max_seq_len - n}"
        )
    if spec.num_sequences < 1:
        raise RequestError(f"num_return_sequences must be at least 1, got {spec.num_sequences}")
    if spec.num_sequences > limits.max_batch_size:
        raise RequestError(
            f"num_return_sequences ({spec.num_sequences}) exceeds max_batch_size ({limits.max_batch_size})"
        )
    if spec.min_tokens < 0:
        raise RequestError(f"min_tokens must not be negative, got {spec.min_tokens}")


class Scheduler:
    """The in-flight batching loop's bookkeeping; the caller owns the thread and the clock."""

    def __init__(
        self,
        settings: EngineSettings,
        clock_ns: Callable[[], int] = time.time_ns,
        *,
        kv_cache_reuse: bool = False,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.timing = settings.timing
        self.generator = Generator(settings.tables)
        self.clock_ns = clock_ns
        self.waiting: deque[Sequence] = deque()
        self.active: list[Sequence] = []
        limits = settings.limits
        self.kv_cache = KvCache(
            max(1, limits.kv_cache_tokens // limits.tokens_per_block),
            limits.tokens_per_block,
            reuse=kv_cache_reuse,
        )
        self.lora = LoraCache(settings.lora_cache_adapters, settings.lora_load_ms / 1000.0)
        self.lora_load_seconds = 0.0
        """Time the latest iteration spends loading LoRA adapters into the device cache."""
        self.iterations = 0
        self.context_requests = 0
        """Sequences that ran their context phase in the latest iteration."""
        self.context_tokens = 0

    def submit(self, spec: RequestSpec) -> None:
        spec.remaining = spec.num_sequences
        for i in range(spec.num_sequences):
            rng = random.Random((spec.seed * 1_000_003 + i) & 0xFFFFFFFFFFFF)
            self.waiting.append(Sequence(spec, i, rng))

    @property
    def kv_used(self) -> int:
        """KV-cache blocks held by running sequences."""
        return self.kv_cache.used

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.active

    def admit(self) -> list[Sequence]:
        """Move queued sequences into the batch while there is room; return the new ones."""
        admitted: list[Sequence] = []
        context_tokens = 0
        now = self.clock_ns()
        while self.waiting:
            seq = self.waiting[0]
            if seq.request.cancelled:
                self.waiting.popleft()
                continue
            if len(self.active) + 1 > self.limits.max_batch_size:
                break
            prompt = seq.request.prompt
            cached = len(self.kv_cache.matched(prompt)) * self.limits.tokens_per_block
            new_context = 0 if seq.index > 0 else len(prompt) - cached
            if admitted and context_tokens + new_context > self.limits.max_num_tokens:
                break
            allocation = self.kv_cache.allocate(
                prompt, seq.request.max_new_tokens, force=not self.active and not admitted
            )
            if allocation is None:
                break
            self.waiting.popleft()
            seq.blocks = allocation
            seq.kv_reused_blocks, seq.kv_total_blocks = allocation.reused, allocation.total
            context_tokens += new_context
            self.active.append(seq)
            admitted.append(seq)
            if not seq.request.first_scheduled_ns:
                seq.request.first_scheduled_ns = now
        self.context_requests = len(admitted)
        self.context_tokens = context_tokens
        self.lora_load_seconds = sum(
            self.lora.acquire(s.request.lora_task_id)
            for s in admitted
            if s.index == 0 and s.request.lora_task_id is not None
        )
        return admitted

    def iteration_seconds(self, admitted: list[Sequence]) -> float:
        """How long this iteration takes: context phase of new prompts plus one decoding step.

        The context phase of all prompts admitted together runs as one batch, so its time is the profile's
        context time for their total count of tokens not found in the KV cache (the batch-1 table read as a
        function of tokens).
        """
        new_tokens = sum(self._uncached(s) for s in admitted if s.index == 0)
        context = self.timing.context_seconds(new_tokens) if new_tokens else 0.0
        decoding = [s for s in self.active if s.started]
        step = 0.0
        if decoding:
            mean = sum(len(s.request.prompt) + len(s.generated) for s in decoding) / len(decoding)
            step = self.timing.step_seconds(len(decoding), mean)
        return context + step + self.lora_load_seconds

    def step(self) -> None:
        """Produce one token for every active sequence (the first token for newly admitted ones)."""
        self.iterations += 1
        for seq in self.active:
            if not seq.started and seq.blocks is not None:
                self.kv_cache.store_context(seq.blocks, seq.request.prompt)
            seq.started = True
            spec = seq.request
            if spec.stopped:
                seq.finished = True
                continue
            token, log_prob = self._next_token(seq)
            if token == spec.end_id:
                seq.finished = True
                continue
            seq.generated.append(token)
            seq.log_probs.append(log_prob)
            seq.pending.append(token)
            if len(seq.generated) >= spec.max_new_tokens or self._hit_stop_word(seq):
                seq.finished = True

    def collect(self) -> list[Emission]:
        """Take the responses this iteration produced and retire finished sequences."""
        now = self.clock_ns()
        emissions: list[Emission] = []
        still_active: list[Sequence] = []
        for seq in self.active:
            spec = seq.request
            if seq.pending or seq.finished:
                if seq.pending:
                    if not seq.first_token_ns:
                        seq.first_token_ns = now
                    seq.last_token_ns = now
                send_now = spec.streaming or seq.finished
                tokens: list[int] = []
                generated = 0
                if send_now:
                    generated = len(seq.pending) if spec.streaming else len(seq.generated)
                    tokens = seq.pending if spec.streaming else self._final_tokens(seq)
                    seq.pending = []
                if seq.finished:
                    spec.remaining -= 1
                    self._release(seq)
                if send_now and (tokens or seq.finished):
                    emissions.append(Emission(seq, tokens, seq.finished, spec.remaining == 0, generated))
            if not seq.finished:
                still_active.append(seq)
        self.active = still_active
        return emissions

    def cancel(self, spec: RequestSpec) -> bool:
        """Drop every sequence of a cancelled request; True if it was still running or queued."""
        if spec.cancelled:
            return False
        spec.cancelled = True
        for seq in [s for s in self.active if s.request is spec]:
            self.active.remove(seq)
            self._release(seq)
        self.waiting = deque(s for s in self.waiting if s.request is not spec)
        return True

    def _uncached(self, seq: Sequence) -> int:
        """Prompt tokens its context phase computes (those not reused from the KV cache)."""
        reused = seq.blocks.reused if seq.blocks is not None else 0
        return len(seq.request.prompt) - reused * self.limits.tokens_per_block

    def _release(self, seq: Sequence) -> None:
        if seq.blocks is not None:
            self.kv_cache.release(seq.blocks, seq.request.prompt + seq.generated)
            seq.blocks = None

    def stop(self, spec: RequestSpec) -> None:
        """End a request at the next iteration, keeping what it generated (TRT-LLM's stop request)."""
        spec.stopped = True

    def _final_tokens(self, seq: Sequence) -> list[int]:
        spec = seq.request
        return seq.generated if spec.exclude_input else spec.prompt + seq.generated

    def _next_token(self, seq: Sequence) -> tuple[int, float]:
        spec = seq.request
        n = len(seq.generated)
        may_end = n >= spec.min_tokens
        if may_end and self.settings.eos_probability and seq.rng.random() < self.settings.eos_probability:
            return spec.end_id, math.log(self.settings.eos_probability)
        history = spec.prompt + seq.generated
        banned = self._banned(history, spec.bad_words)
        if not may_end:
            banned.add(spec.end_id)
        return self.generator.choose(history, seq.rng, greedy=spec.greedy, banned=banned)

    @staticmethod
    def _banned(history: list[int], bad_words: WordList) -> set[int]:
        banned: set[int] = set()
        for word in bad_words:
            prefix = word[:-1]
            if not prefix or tuple(history[-len(prefix) :]) == prefix:
                banned.add(word[-1])
        return banned

    @staticmethod
    def _hit_stop_word(seq: Sequence) -> bool:
        generated = seq.generated
        return any(
            len(word) <= len(generated) and tuple(generated[-len(word) :]) == word
            for word in seq.request.stop_words
        )


def parse_word_list(flat: list[int], offsets: list[int]) -> WordList:
    """Decode TRT-LLM's ``[2, N]`` word-list layout: concatenated ids, then end offsets padded with -1."""
    words: WordList = []
    start = 0
    for end in offsets:
        if end < 0:
            break
        if end > start:
            words.append(tuple(int(t) for t in flat[start:end]))
        start = end
    return words
