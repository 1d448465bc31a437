"""The CPU engine's paged KV cache: fixed-size blocks, shared across requests when reuse is on.

As in TensorRT-LLM's KV-cache manager, a sequence holds ``ceil((prompt + max_new_tokens) /
tokens_per_block)`` blocks. With ``enable_kv_cache_reuse`` a full block is identified by its tokens and
every token before it (a chained hash), so a later prompt that starts with the same tokens reuses the
blocks instead of recomputing them; only full blocks are reused, and at least the prompt's last token is
always computed. A prompt's full blocks become reusable as soon as its context phase has run (requests
arriving while it still decodes share them); when a sequence ends, its full blocks (prompt and generated
tokens) stay in the cache unreferenced and are evicted least recently used first when new blocks are
needed. Without reuse every block is private and freed at the end.

Free of Triton so it can be tested alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field


def blocks_for(tokens: int, tokens_per_block: int) -> int:
    """Blocks that hold ``tokens`` tokens."""
    return -(-tokens // tokens_per_block)


def block_keys(tokens: Sequence[int], tokens_per_block: int) -> list[int]:
    """One key per full block of ``tokens``; each key depends on every token up to the block's end."""
    keys: list[int] = []
    previous = 0
    for end in range(tokens_per_block, len(tokens) + 1, tokens_per_block):
        previous = hash((previous, tuple(tokens[end - tokens_per_block : end])))
        keys.append(previous)
    return keys


@dataclass
class Allocation:
    """The blocks one sequence holds."""

    shared: list[int] = field(default_factory=list)
    """Keys of the cached blocks it uses: those it reused, then those of its own context it stored."""
    private: int = 0
    """Blocks it holds alone (not cached: the prompt's last partial block and the output)."""
    reused: int = 0
    """Blocks found in the cache when it was admitted."""

    @property
    def total(self) -> int:
        return len(self.shared) + self.private


class KvCache:
    """Blocks in use, cached blocks no sequence uses (LRU), and the reuse counters."""

    def __init__(self, total_blocks: int, tokens_per_block: int, *, reuse: bool) -> None:
        if total_blocks < 1 or tokens_per_block < 1:
            raise ValueError("the KV cache needs at least one block of at least one token")
        self.total_blocks = total_blocks
        self.tokens_per_block = tokens_per_block
        self.reuse = reuse
        self.references: dict[int, int] = {}
        """Cached blocks in use, by key, with the number of sequences using each."""
        self.idle: OrderedDict[int, None] = OrderedDict()
        """Cached blocks no sequence uses, least recently used first: reusable until evicted."""
        self.private = 0
        self.reused_blocks = 0
        """Blocks reused since the start (the ``reused`` gauge)."""
        self.evicted_blocks = 0

    @property
    def used(self) -> int:
        """Blocks held by running sequences."""
        return len(self.references) + self.private

    @property
    def free(self) -> int:
        """Blocks a new sequence can take (cached idle blocks included: they are evicted on demand)."""
        return self.total_blocks - self.used

    def matched(self, prompt: Sequence[int]) -> list[int]:
        """Keys of the cached blocks a prompt would reuse (none without reuse)."""
        if not self.reuse:
            return []
        # at least one prompt token is computed, so the first token has something to come from
        usable = (len(prompt) - 1) // self.tokens_per_block
        found: list[int] = []
        for key in block_keys(prompt[: usable * self.tokens_per_block], self.tokens_per_block):
            if key not in self.references and key not in self.idle:
                break
            found.append(key)
        return found

    def allocate(
        self, prompt: Sequence[int], max_new_tokens: int, *, force: bool = False
    ) -> Allocation | None:
        """Blocks for one sequence, or None when they don't fit (``force``: take them anyway)."""
        shared = self.matched(prompt)
        needed = blocks_for(len(prompt) + max_new_tokens, self.tokens_per_block) - len(shared)
        revived = sum(1 for key in shared if key in self.idle)
        if needed + revived > self.free and not force:
            return None
        for key in shared:
            if key in self.idle:
                del self.idle[key]
            self.references[key] = self.references.get(key, 0) + 1
        self.private += needed
        self._evict(self.total_blocks - self.used - len(self.idle))
        self.reused_blocks += len(shared)
        return Allocation(list(shared), needed, len(shared))

    def store_context(self, allocation: Allocation, prompt: Sequence[int]) -> None:
        """The context phase has run: the prompt's full blocks become reusable by later prompts."""
        if not self.reuse:
            return
        for key in block_keys(prompt, self.tokens_per_block)[len(allocation.shared) :]:
            if key in self.references or key in self.idle:
                continue  # the same tokens were stored by another sequence meanwhile; this copy stays private
            self.references[key] = 1
            allocation.shared.append(key)
            allocation.private -= 1
            self.private -= 1

    def release(self, allocation: Allocation, tokens: Sequence[int]) -> None:
        """A sequence ended: its shared blocks lose a user; with reuse its full blocks stay cached."""
        for key in allocation.shared:
            left = self.references[key] - 1
            if left:
                self.references[key] = left
            else:
                del self.references[key]
                self.idle[key] = None
        self.private -= allocation.private
        if not self.reuse:
            return
        keys = block_keys(tokens, self.tokens_per_block)[: allocation.total]
        for key in keys:
            if key not in self.references and key not in self.idle:
                self.idle[key] = None
        # the first blocks are the most recently used, so eviction takes a prompt's tail before its head
        for key in reversed(keys):
            if key in self.idle:
                self.idle.move_to_end(key)
        self._evict(self.total_blocks - self.used - len(self.idle))

    def _evict(self, room: int) -> None:
        """Drop least recently used idle blocks until the pool's room is not negative."""
        while room < 0 and self.idle:
            self.idle.popitem(last=False)
            self.evicted_blocks += 1
            room += 1
