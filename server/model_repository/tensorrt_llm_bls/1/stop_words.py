"""Stop words found in the text, as upstream's BLS finds them (on top of the engine's token match).

A whole answer is cut after the first stop word found in its generated text. In a stream, a stop word is
found when consecutive text deltas add up to exactly that word; later deltas of that sequence are dropped.
Once every row of the request has a stopped sequence, the BLS asks the engine to stop the request. Free of
Triton, so it can be tested alone. Source: docs/upstream-contract.md (BLS).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StopWordWatch:
    """The stop-word state of one BLS request."""

    words: list[list[str]]
    """Stop words of each row (empty strings are ignored)."""
    prompts: list[str]
    """Text of each row's prompt: a whole answer that echoes it is searched after it."""
    streaming: bool
    exclude_input: bool
    prefixes: dict[tuple[int, int], str] = field(default_factory=dict)
    stopped: set[tuple[int, int]] = field(default_factory=set)

    def is_stopped(self, row: int, sequence: int) -> bool:
        return (row, sequence) in self.stopped

    @property
    def every_row_stopped(self) -> bool:
        rows = {row for row, _ in self.stopped}
        return len(rows) == len(self.prompts)

    def check(self, row: int, sequence: int, text: str) -> str:
        """The text to send for this response (cut after a stop word when one ends in it)."""
        words = [w for w in (self.words[row] if row < len(self.words) else []) if w]
        if not words:
            return text
        key = (row, sequence)
        if self.streaming:
            prefix = self.prefixes.get(key, "")
            for word in words:
                if word.startswith(prefix + text):
                    prefix += text
                    if word == prefix:
                        self.stopped.add(key)
                    break
                prefix = ""  # as upstream: a word that does not continue the match resets it
            self.prefixes[key] = prefix
            return text
        start = 0 if self.exclude_input else len(self.prompts[row])
        for word in words:
            found = text.find(word, start)
            if found != -1:
                self.stopped.add(key)
                return text[: found + len(word)]
        return text
