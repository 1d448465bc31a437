"""The BLS's text search for stop words (``tensorrt_llm_bls/1/stop_words.py``), as upstream's BLS does it.

The module runs inside Triton's python backend, so it is loaded from its file; it needs no Triton. The
same behaviour through the real server: ``tests/integration/test_engine_contract.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from trtclient.server.paths import TEMPLATES_DIR


def _load() -> Any:
    path = TEMPLATES_DIR / "tensorrt_llm_bls" / "1" / "stop_words.py"
    spec = importlib.util.spec_from_file_location("bls_stop_words_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.StopWordWatch


StopWordWatch = _load()


def test_whole_answer_is_cut_after_the_first_stop_word_of_the_generated_text() -> None:
    watch = StopWordWatch(words=[["the"]], prompts=["Is the sky"], streaming=False, exclude_input=False)
    # the prompt's own "the" is skipped; the one inside "other" counts, as in a plain text search
    assert watch.check(0, 0, "Is the sky blue? Yes, other days") == "Is the sky blue? Yes, othe"
    assert watch.is_stopped(0, 0) and watch.every_row_stopped


def test_without_the_prompt_the_search_starts_at_the_beginning() -> None:
    watch = StopWordWatch(words=[["", "blue"]], prompts=["Is the sky"], streaming=False, exclude_input=True)
    assert watch.check(0, 0, " blue and grey") == " blue"
    assert watch.is_stopped(0, 0)


def test_streamed_deltas_must_add_up_to_the_word() -> None:
    watch = StopWordWatch(words=[[" end here"]], prompts=["x"], streaming=True, exclude_input=False)
    for delta in (" the", " end", " there"):  # " end" starts the word, " there" breaks it
        assert watch.check(0, 0, delta) == delta
    assert not watch.is_stopped(0, 0)
    for delta in (" end", " here"):
        watch.check(0, 0, delta)
    assert watch.is_stopped(0, 0)


def test_a_word_inside_one_delta_does_not_stop_a_stream() -> None:
    watch = StopWordWatch(words=[["end"]], prompts=["x"], streaming=True, exclude_input=False)
    watch.check(0, 0, " the end")
    assert not watch.is_stopped(0, 0)


def test_every_row_needs_a_stopped_sequence() -> None:
    watch = StopWordWatch(words=[["a"], ["b"]], prompts=["x", "y"], streaming=False, exclude_input=True)
    watch.check(0, 0, "a")
    assert not watch.every_row_stopped
    watch.check(1, 1, "cb")
    assert watch.every_row_stopped and watch.is_stopped(1, 1) and not watch.is_stopped(1, 0)


def test_rows_without_stop_words_pass_through() -> None:
    watch = StopWordWatch(words=[], prompts=["x"], streaming=False, exclude_input=True)
    assert watch.check(0, 0, "anything") == "anything"
    assert not watch.stopped
