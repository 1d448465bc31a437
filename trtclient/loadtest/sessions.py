"""Multi-turn conversations: each virtual user holds one, and every turn's prompt is the whole history.

Turn k's prompt is turn k−1's prompt, the answer it got, and a new user message, so a server that caches
KV blocks across requests finds the history already computed. The next turn is sent after the previous
answer has fully arrived plus a think time. User messages are synthetic (exact token counts, as
:class:`~trtclient.loadtest.workload.SyntheticPrompts`) or a ShareGPT file's human turns, in order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from trtclient.loadtest.workload import Length, Prompt, SyntheticPrompts, TokenCounter, WorkloadError

__all__ = ["Conversation", "Conversational", "ShareGptSessions", "SyntheticSessions"]

#: Between the history and the next user message.
SEPARATOR = "\n"


@runtime_checkable
class Conversational(Protocol):
    """A workload of conversations (the load engine sends their turns one after another)."""

    description: str
    think_time_s: float

    def conversations(self) -> Iterator[Conversation]:
        """Conversations in a reproducible order, endlessly."""
        ...

    def prompts(self) -> Iterator[Prompt]:
        """Every conversation's first turn (what a workload of single prompts would send)."""
        ...


class Conversation:
    """One conversation: its user messages and output lengths, and the history so far. ``session`` names
    it in the records (default: ``ident``); it differs when a dataset's conversation is held again."""

    def __init__(
        self,
        ident: str,
        messages: Sequence[tuple[str, int]],
        tokenizer: TokenCounter | None = None,
        *,
        session: str | None = None,
    ) -> None:
        self.ident = ident
        self.session = session or ident
        self.messages = list(messages)
        self.tokenizer = tokenizer
        self.history = ""
        self.turn = 0

    def next_prompt(self) -> Prompt | None:
        """The next turn's prompt (None: the conversation is over)."""
        if self.turn >= len(self.messages):
            return None
        message, max_tokens = self.messages[self.turn]
        text = f"{self.history}{SEPARATOR}{message}" if self.history else message
        self.history = text
        self.turn += 1
        counted = self.tokenizer.count(text) if self.tokenizer is not None else None
        return Prompt(
            f"{self.ident}-turn{self.turn}", text, max_tokens, counted, turn=self.turn, session=self.session
        )

    def answered(self, text: str) -> None:
        """The answer to the latest turn: it joins the history."""
        self.history += text


class SyntheticSessions:
    """Conversations of ``turns`` synthetic user messages, answers of ``output`` tokens: the opening
    message of ``message`` tokens (a question with its context), each later one of ``followup`` tokens
    (default: as long as the opening one)."""

    def __init__(
        self,
        tokenizer: TokenCounter,
        turns: int,
        message: Length,
        output: Length,
        *,
        think_time_s: float = 0.0,
        followup: Length | None = None,
        seed: int = 0,
        source_text: str | None = None,
    ) -> None:
        if turns < 1:
            raise WorkloadError(f"--turns must be at least 1, got {turns}")
        self._tok = tokenizer
        self._turns = turns
        self._message = message
        self._followup = followup or message
        self._output = output
        self._seed = seed
        self._builder = SyntheticPrompts(tokenizer, message, output, seed=seed, source_text=source_text)
        self.think_time_s = think_time_s
        self.description = (
            f"conversations of {turns} turns, opening message {message} tokens, later ones {self._followup} "
            f"tokens, answers {output} tokens, think time {think_time_s:g} s"
        )

    def conversations(self) -> Iterator[Conversation]:
        rng = random.Random(self._seed)
        number = 0
        while True:
            lengths = [self._message] + [self._followup] * (self._turns - 1)
            messages = [
                (self._builder.build(length.draw(rng), rng), self._output.draw(rng)) for length in lengths
            ]
            yield Conversation(f"session{number}", messages, self._tok)
            number += 1

    def prompts(self) -> Iterator[Prompt]:
        for conversation in self.conversations():
            prompt = conversation.next_prompt()
            assert prompt is not None
            yield prompt


class ShareGptSessions:
    """A ShareGPT file's conversations: their human turns in order (up to ``turns``), each answer's length
    (by the client's tokenizer, capped at ``max_output_tokens``) as that turn's output length."""

    def __init__(
        self,
        path: str | Path,
        tokenizer: TokenCounter,
        *,
        turns: int | None = None,
        think_time_s: float = 0.0,
        max_output_tokens: int = 1024,
    ) -> None:
        self._tok = tokenizer
        self._items = _load(Path(path), tokenizer, turns, max_output_tokens)
        self.think_time_s = think_time_s
        self.description = (
            f"{len(self._items)} ShareGPT conversations from {path}, think time {think_time_s:g} s"
        )

    def conversations(self) -> Iterator[Conversation]:
        """The file's conversations, again and again; on the n-th pass (n > 1) their sessions are
        named ``ID#n``, so every conversation a run holds has its own session id."""
        lap = 1
        while True:
            for ident, messages in self._items:
                session = ident if lap == 1 else f"{ident}#{lap}"
                yield Conversation(ident, messages, self._tok, session=session)
            lap += 1

    def prompts(self) -> Iterator[Prompt]:
        for conversation in self.conversations():
            prompt = conversation.next_prompt()
            assert prompt is not None
            yield prompt


def _load(
    path: Path, tokenizer: TokenCounter, turns: int | None, cap: int
) -> list[tuple[str, list[tuple[str, int]]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkloadError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, list):
        raise WorkloadError(f"{path}: expected a JSON list of conversations (ShareGPT format)")
    items = []
    for i, entry in enumerate(data):
        messages = _exchanges(entry, tokenizer, cap)[:turns]
        if messages:
            ident = entry.get("id", i) if isinstance(entry, dict) else i
            items.append((str(ident), messages))
    if not items:
        raise WorkloadError(f"{path}: no conversation with a human turn followed by a reply")
    return items


def _exchanges(entry: Any, tokenizer: TokenCounter, cap: int) -> list[tuple[str, int]]:
    turns = entry.get("conversations", entry.get("conversation")) if isinstance(entry, dict) else None
    if not isinstance(turns, list):
        return []
    out = []
    for a, b in zip(turns, turns[1:], strict=False):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            continue
        if a.get("from") in ("human", "user") and b.get("from") in ("gpt", "assistant", "chatgpt"):
            question, answer = a.get("value"), b.get("value")
            if isinstance(question, str) and question.strip() and isinstance(answer, str):
                out.append((question, max(1, min(cap, tokenizer.count(answer)))))
    return out
