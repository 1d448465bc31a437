"""What a load test sends: a fixed prompt, synthetic prompts of given token lengths, or prompts from a file.

Every workload yields :class:`Prompt` objects endlessly (cycling through a file), in an order fixed by its
seed, so two runs with the same arguments send the same requests in the same order.
"""

from __future__ import annotations

import collections
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "FixedPrompt",
    "JsonlPrompts",
    "Length",
    "Prompt",
    "ShareGptPrompts",
    "SyntheticPrompts",
    "TokenCounter",
    "Workload",
    "WorkloadError",
]


class WorkloadError(ValueError):
    """A workload cannot be built (missing file, bad line, impossible length); the message says which."""


@dataclass(frozen=True)
class Prompt:
    """One request's content."""

    id: str
    text: str
    max_tokens: int
    input_tokens: int | None = None
    """Length of ``text`` in tokens by the client's tokenizer, when there is one."""
    turn: int | None = None
    """Turn of a multi-turn conversation (1 = first); None outside conversations."""
    session: str | None = None
    """The conversation this turn belongs to (one id per conversation of a run); None outside them."""
    adapter: str | None = None
    """LoRA adapter to use (its name as the user gave it); None: the base model."""
    fields: tuple[tuple[str, Any], ...] = ()
    """Extra request fields of this prompt alone (e.g. ``lora_task_id``)."""


class Workload(Protocol):
    """A source of prompts."""

    description: str

    def prompts(self) -> Iterator[Prompt]:
        """Prompts in a reproducible order, endlessly."""
        ...


class TokenCounter:
    """The client-side tokenizer (a Hugging Face ``tokenizer.json``), special tokens left out of counts."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer

    @classmethod
    def from_dir(cls, directory: str | Path) -> TokenCounter:
        """Load ``DIR/tokenizer.json`` (raises :class:`WorkloadError` when it is missing or unreadable)."""
        from tokenizers import Tokenizer

        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise WorkloadError(f"no tokenizer.json in {directory}; pass a Hugging Face tokenizer directory")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # the tokenizers library raises plain Exception
            raise WorkloadError(f"cannot load {path}: {exc}") from exc

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the token ids."""
        return str(self._tok.decode(list(ids), skip_special_tokens=True))

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self.encode(text))

    def vocab_size(self) -> int:
        """Size of the vocabulary, special tokens included."""
        return int(self._tok.get_vocab_size())


@dataclass(frozen=True)
class Length:
    """A token length drawn from a normal distribution, rounded and kept within ``[minimum, ∞)``."""

    mean: int
    stddev: float = 0.0
    minimum: int = 1

    def __post_init__(self) -> None:
        if self.mean < self.minimum:
            raise WorkloadError(f"a mean length of {self.mean} is below the minimum {self.minimum}")
        if self.stddev < 0:
            raise WorkloadError("a length's standard deviation cannot be negative")

    def draw(self, rng: random.Random) -> int:
        """One length."""
        if self.stddev == 0:
            return self.mean
        return max(self.minimum, round(rng.gauss(self.mean, self.stddev)))

    def __str__(self) -> str:
        return f"{self.mean}±{self.stddev:g}" if self.stddev else str(self.mean)


class FixedPrompt:
    """The same prompt every time (the tutorials' ``"What is machine learning?"``)."""

    def __init__(self, text: str, max_tokens: int, tokenizer: TokenCounter | None = None) -> None:
        if not text:
            raise WorkloadError("the prompt is empty")
        if max_tokens < 1:
            raise WorkloadError("max tokens must be at least 1")
        self._prompt = Prompt("0", text, max_tokens, tokenizer.count(text) if tokenizer else None)
        self.description = f"fixed prompt {text!r}, max_tokens {max_tokens}"

    def prompts(self) -> Iterator[Prompt]:
        while True:
            yield self._prompt


class SyntheticPrompts:
    """Prompts of an exact token length (by the client's tokenizer) drawn from ``source_text``.

    Each prompt is a window of the source's tokens starting at a random place, trimmed or extended
    until its text re-encodes to the drawn length. Without a source text, tokens are drawn from the
    vocabulary at random.
    """

    def __init__(
        self,
        tokenizer: TokenCounter,
        input_length: Length,
        output_length: Length,
        *,
        seed: int = 0,
        source_text: str | None = None,
    ) -> None:
        self._tok = tokenizer
        self._input = input_length
        self._output = output_length
        self._seed = seed
        pool = tokenizer.encode(source_text) if source_text else []
        if not pool:
            pool = _printable_token_pool(tokenizer, random.Random(seed))
        self._pool = pool
        self.description = f"synthetic prompts, input {input_length} tokens, output {output_length} tokens"

    def _window(self, start: int, n: int) -> list[int]:
        pool = self._pool
        return [pool[(start + i) % len(pool)] for i in range(n)]

    def build(self, n: int, rng: random.Random) -> str:
        """A text of exactly ``n`` tokens (raises :class:`WorkloadError` when none is found)."""
        for _ in range(20):
            start = rng.randrange(len(self._pool))
            take = n
            for _ in range(12):
                text = self._tok.decode(self._window(start, take)).strip()
                got = self._tok.count(text)
                if got == n:
                    return text
                take = max(1, take + (n - got))
        raise WorkloadError(f"could not build a prompt of exactly {n} tokens with this tokenizer")

    def prompts(self) -> Iterator[Prompt]:
        rng = random.Random(self._seed)
        number = 0
        while True:
            n = self._input.draw(rng)
            text = self.build(n, rng)
            yield Prompt(f"synthetic-{number}", text, self._output.draw(rng), n)
            number += 1


def _printable_token_pool(tokenizer: TokenCounter, rng: random.Random, size: int = 4096) -> list[int]:
    """Random ids of tokens that decode to printable ASCII (no special or partial-byte tokens)."""
    usable = []
    for i in range(tokenizer.vocab_size()):
        piece = tokenizer.decode([i])
        if piece.strip() and piece.isascii() and piece.isprintable():
            usable.append(i)
    if not usable:
        raise WorkloadError("the tokenizer has no printable tokens to build prompts from")
    return [rng.choice(usable) for _ in range(size)]


def _cycle(items: Sequence[Prompt], seed: int, shuffle: bool) -> Iterator[Prompt]:
    rng = random.Random(seed)
    while True:
        order = list(items)
        if shuffle:
            rng.shuffle(order)
        yield from order


_TEXT_KEYS = ("text_input", "prompt", "text")
_LENGTH_KEYS = ("max_tokens", "output_tokens", "output_len")


class JsonlPrompts:
    """One JSON object per line: ``text_input`` (or ``prompt``/``text``) and optionally ``max_tokens``.

    An optional ``prefix`` (a system prompt, a document) goes before the text, separated by a newline:
    the JSONL form of shared prefixes, where lines with the same ``prefix`` share its KV-cache blocks.
    """

    def __init__(
        self,
        path: str | Path,
        default_max_tokens: int,
        *,
        tokenizer: TokenCounter | None = None,
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        #: What the report says about the file: lines skipped and where the output lengths come from.
        self.notes: list[str] = []
        self._items = self._load(Path(path), default_max_tokens, tokenizer, self.notes)
        self._seed = seed
        self._shuffle = shuffle
        self.description = f"{len(self._items)} prompts from {path}" + (" (shuffled)" if shuffle else "")

    @staticmethod
    def _load(
        path: Path, default_max_tokens: int, tokenizer: TokenCounter | None, notes: list[str]
    ) -> list[Prompt]:
        items: list[Prompt] = []
        blank = own_length = 0
        for number, line in enumerate(_read_lines(path), start=1):
            if not line.strip():
                blank += 1
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WorkloadError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            text = next((obj[k] for k in _TEXT_KEYS if isinstance(obj, dict) and k in obj), None)
            if not isinstance(text, str) or not text:
                raise WorkloadError(f"{path}:{number}: needs a non-empty string under one of {_TEXT_KEYS}")
            prefix = obj.get("prefix")
            if prefix is not None:
                if not isinstance(prefix, str) or not prefix:
                    raise WorkloadError(f"{path}:{number}: prefix must be a non-empty string")
                text = f"{prefix}\n{text}"
            own_length += any(k in obj for k in _LENGTH_KEYS)
            length = next((obj[k] for k in _LENGTH_KEYS if k in obj), default_max_tokens)
            if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                raise WorkloadError(f"{path}:{number}: max_tokens must be a positive integer")
            ident = str(obj.get("id", number))
            items.append(Prompt(ident, text, length, tokenizer.count(text) if tokenizer else None))
        if not items:
            raise WorkloadError(f"{path} holds no prompts")
        if blank:
            notes.append(f"{path.name}: {len(items)} prompts used, {blank} blank lines skipped")
        notes.append(f"{path.name}: {_jsonl_lengths(own_length, len(items), default_max_tokens)}")
        return items

    def prompts(self) -> Iterator[Prompt]:
        return _cycle(self._items, self._seed, self._shuffle)


class ShareGptPrompts:
    """A ShareGPT-format JSON file: each conversation's first human turn is the prompt.

    The reply's length in tokens (by the client's tokenizer) becomes ``max_tokens``, capped at
    ``max_output_tokens``; without a tokenizer every request asks for ``default_max_tokens``.
    Conversations without a human turn followed by a reply are skipped. Shuffled by the seed.
    """

    def __init__(
        self,
        path: str | Path,
        default_max_tokens: int,
        *,
        tokenizer: TokenCounter | None = None,
        max_output_tokens: int = 1024,
        seed: int = 0,
        limit: int | None = None,
        max_input_len: int | None = None,
    ) -> None:
        #: What the report says about the file: conversations skipped (how many, why) and where the
        #: output lengths come from.
        self.notes: list[str] = []
        self._items = self._load(
            Path(path),
            default_max_tokens,
            tokenizer,
            max_output_tokens,
            seed,
            limit,
            max_input_len,
            self.notes,
        )
        self._seed = seed
        self.description = f"{len(self._items)} ShareGPT conversations from {path}"

    @staticmethod
    def _load(
        path: Path,
        default_max_tokens: int,
        tokenizer: TokenCounter | None,
        cap: int,
        seed: int,
        limit: int | None,
        max_input_len: int | None,
        notes: list[str],
    ) -> list[Prompt]:
        try:
            data = json.loads("\n".join(_read_lines(path)))
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{path}: not a JSON file ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, list):
            raise WorkloadError(f"{path}: expected a JSON list of conversations (ShareGPT format)")
        order = list(range(len(data)))
        random.Random(seed).shuffle(order)
        items: list[Prompt] = []
        skipped: collections.Counter[str] = collections.Counter()
        capped = 0
        for i in order:
            pair = _first_exchange(data[i])
            if isinstance(pair, str):
                skipped[pair] += 1
                continue
            question, answer = pair
            if tokenizer is not None:
                counted: int | None = tokenizer.count(question)
                if max_input_len is not None and counted is not None and counted > max_input_len:
                    skipped[f"prompt longer than the model's max_input_len ({max_input_len} tokens)"] += 1
                    continue
                answer_tokens = tokenizer.count(answer)
                capped += answer_tokens > cap
                length = max(1, min(cap, answer_tokens))
            else:
                length, counted = default_max_tokens, None
            ident = data[i].get("id", i) if isinstance(data[i], dict) else i
            items.append(Prompt(str(ident), question, length, counted))
            if limit is not None and len(items) >= limit:
                break
        if skipped:
            why = ", ".join(
                f"{n} {reason}" for reason, n in sorted(skipped.items(), key=lambda i: (-i[1], i[0]))
            )
            notes.append(
                f"{path.name}: {len(items)} conversations used, {sum(skipped.values())} skipped: {why}"
            )
        if tokenizer is not None:
            notes.append(
                f"{path.name}: output lengths are each reply's length by the tokenizer, "
                f"capped at {cap} tokens" + (f" ({capped} replies capped)" if capped else "")
            )
        else:
            notes.append(
                f"{path.name}: output lengths are max_tokens {default_max_tokens} for every request "
                "(no tokenizer to count the replies)"
            )
        if not items:
            raise WorkloadError(f"{path}: no conversation with a human turn followed by a reply")
        return items

    def prompts(self) -> Iterator[Prompt]:
        return _cycle(self._items, self._seed, shuffle=False)


NO_CONVERSATION = "not a conversation"
NO_HUMAN_TURN = "without a human turn followed by a reply"
EMPTY_TURN = "with an empty prompt or reply"


def _jsonl_lengths(own: int, total: int, default_max_tokens: int) -> str:
    if own == total:
        return "output lengths are each line's max_tokens"
    if own == 0:
        return (
            f"output lengths are max_tokens {default_max_tokens} for every request (no line sets max_tokens)"
        )
    return (
        f"output lengths are the line's max_tokens for {own} lines, "
        f"max_tokens {default_max_tokens} for {total - own}"
    )


def _first_exchange(entry: Any) -> tuple[str, str] | str:
    """The first human turn and its reply, or the reason there is none."""
    if not isinstance(entry, dict):
        return NO_CONVERSATION
    turns = entry.get("conversations", entry.get("conversation"))
    if not isinstance(turns, list):
        return NO_CONVERSATION
    reason = NO_HUMAN_TURN
    for a, b in zip(turns, turns[1:], strict=False):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            continue
        if a.get("from") in ("human", "user") and b.get("from") in ("gpt", "assistant", "chatgpt"):
            question, answer = a.get("value"), b.get("value")
            if isinstance(question, str) and question.strip() and isinstance(answer, str) and answer.strip():
                return question, answer
            reason = EMPTY_TURN
    return reason


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: cannot read it ({exc})") from exc
