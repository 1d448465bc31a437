"""The default tokenizer: built offline from the bundled corpus, loadable by other tools."""

from __future__ import annotations

from tokenizers import Tokenizer

from trtclient.server.tokenizer import BOS, EOS, UNK, default_tokenizer_dir


def test_special_tokens_take_llamas_ids() -> None:
    tokenizer = Tokenizer.from_file(str(default_tokenizer_dir() / "tokenizer.json"))
    assert [tokenizer.token_to_id(t) for t in (UNK, BOS, EOS)] == [0, 1, 2]


def test_transformers_autotokenizer_loads_the_directory_and_agrees() -> None:
    from transformers import AutoTokenizer

    directory = default_tokenizer_dir()
    fast = Tokenizer.from_file(str(directory / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(directory))
    text = "What is machine learning? Serving a model means running it behind an endpoint."
    assert auto(text)["input_ids"] == fast.encode(text).ids
    assert auto.eos_token_id == 2
    assert auto.decode(fast.encode(text).ids) == text
