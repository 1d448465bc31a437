"""The cache directory check: writable or one clear error, and safe when processes check it at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from trtclient.errors import SetupError
from trtclient.server.paths import CACHE_ENV, cache_dir


def _check_many(path: str, times: int) -> None:
    import os

    os.environ[CACHE_ENV] = path
    for _ in range(times):
        cache_dir()


def test_processes_checking_one_cache_at_once_never_trip_over_each_others_probe(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_check_many, args=(str(tmp_path), 300)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert list(tmp_path.iterdir()) == []  # no probe left behind


def test_an_unwritable_cache_is_one_message_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(SetupError, match=f"set {CACHE_ENV} to a writable directory"):
        cache_dir()
