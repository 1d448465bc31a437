"""The default tokenizer: a byte-level BPE trained offline on the bundled corpus.

The result is an ordinary Hugging Face tokenizer directory (``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``): the embedded server's pre/postprocessing load it, and so can
``transformers.AutoTokenizer.from_pretrained(DIR)`` or other tools' ``--tokenizer DIR``. Special tokens
take Llama's ids (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2), so the tutorials' ``"end_id": 2, "pad_id": 2`` mean
end-of-sequence here too. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from trtclient.server.paths import CORPUS_DIR, cache_dir

__all__ = ["BOS", "EOS", "SPECIAL_TOKENS", "UNK", "VOCAB_SIZE", "corpus_text", "default_tokenizer_dir"]

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (UNK, BOS, EOS)
VOCAB_SIZE = 2048
_RECIPE_VERSION = "1"


def corpus_text() -> str:
    """The bundled training text."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(CORPUS_DIR.glob("*.txt")))


def _recipe_digest() -> str:
    digest = hashlib.sha256()
    digest.update(f"{_RECIPE_VERSION}|{VOCAB_SIZE}|{SPECIAL_TOKENS}".encode())
    digest.update(corpus_text().encode())
    return digest.hexdigest()[:12]


def train_tokenizer(target: Path) -> None:
    """Train the byte-level BPE on the corpus and write a tokenizer directory to ``target``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_text().splitlines(), trainer=trainer)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": EOS}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (target / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def default_tokenizer_dir() -> Path:
    """The default tokenizer directory in the cache, trained on first use."""
    target = cache_dir() / f"tokenizer-{_recipe_digest()}"
    if not (target / "tokenizer.json").exists():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        train_tokenizer(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target
