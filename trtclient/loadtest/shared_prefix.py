"""Prompts that share a few long prefixes (a system prompt, a document) and end in a unique suffix.

``groups`` distinct prefixes of ``prefix_tokens`` tokens each; every prompt is one of them (drawn at
random by the seed) followed by a suffix of its own. The whole prompt has exactly ``prefix_tokens`` +
the suffix's drawn length tokens by the client's tokenizer, and its first ``prefix_tokens`` tokens are
exactly the prefix's, so a server that caches KV blocks across requests can reuse them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from trtclient.loadtest.workload import Length, Prompt, SyntheticPrompts, TokenCounter, WorkloadError

__all__ = ["SharedPrefixPrompts", "SharedPrefixSpec", "parse_shared_prefix"]

#: Suffixes tried before a prompt is given up on (a suffix whose first token merges with the prefix's last
#: one is drawn again).
ATTEMPTS = 40


@dataclass(frozen=True)
class SharedPrefixSpec:
    """``--shared-prefix N:P``: N prefixes of P tokens."""

    groups: int
    prefix_tokens: int


def parse_shared_prefix(text: str, flag: str = "--shared-prefix") -> SharedPrefixSpec:
    """``N:P`` with two positive integers; the error names the flag."""
    groups, sep, tokens = text.partition(":")
    try:
        spec = SharedPrefixSpec(int(groups), int(tokens)) if sep else None
    except ValueError:
        spec = None
    if spec is None or spec.groups < 1 or spec.prefix_tokens < 1:
        raise WorkloadError(
            f"{flag} takes N:P (N prefixes of P tokens, both positive integers), got {text!r}"
        )
    return spec


class SharedPrefixPrompts:
    """See the module docstring; ``suffix`` is the unique part's length, ``output`` the answer's."""

    def __init__(
        self,
        tokenizer: TokenCounter,
        spec: SharedPrefixSpec,
        suffix: Length,
        output: Length,
        *,
        seed: int = 0,
        source_text: str | None = None,
    ) -> None:
        self._tok = tokenizer
        self._spec = spec
        self._suffix = suffix
        self._output = output
        self._seed = seed
        self._builder = SyntheticPrompts(tokenizer, suffix, output, seed=seed, source_text=source_text)
        rng = random.Random(f"prefixes-{seed}")
        self.prefixes = [self._builder.build(spec.prefix_tokens, rng) for _ in range(spec.groups)]
        self._prefix_ids = [tokenizer.encode(p) for p in self.prefixes]
        self.description = (
            f"{spec.groups} shared prefixes of {spec.prefix_tokens} tokens + unique suffix of {suffix} "
            f"tokens, output {output} tokens"
        )

    def compose(self, group: int, suffix_tokens: int, rng: random.Random) -> str:
        """Prefix ``group`` and a fresh suffix, exactly ``prefix + suffix_tokens`` tokens long."""
        prefix, prefix_ids = self.prefixes[group], self._prefix_ids[group]
        want = len(prefix_ids) + suffix_tokens
        for _ in range(ATTEMPTS):
            text = f"{prefix} {self._builder.build(suffix_tokens, rng)}"
            ids = self._tok.encode(text)
            if len(ids) == want and ids[: len(prefix_ids)] == prefix_ids:
                return text
        raise WorkloadError(
            f"could not build a prompt of {want} tokens starting with the shared prefix's tokens "
            "with this tokenizer"
        )

    def prompts(self, stream: int = 0) -> Iterator[Prompt]:
        """Prompts drawn by the seed; another ``stream`` (e.g. a worker process's number) draws other
        groups and suffixes over the same prefixes."""
        rng = random.Random(self._seed if not stream else f"{self._seed}-{stream}")
        number = 0
        while True:
            group = rng.randrange(self._spec.groups)
            n = self._suffix.draw(rng)
            text = self.compose(group, n, rng)
            yield Prompt(
                f"prefix{group}-{number}", text, self._output.draw(rng), self._spec.prefix_tokens + n
            )
            number += 1
