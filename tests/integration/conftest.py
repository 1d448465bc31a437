"""Shared helpers of the integration suite."""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil
import pytest
from processes import SERVER_PROCESS_NAMES  # noqa: E402

from trtclient.server.launcher import SHM_DIR


def server_things() -> set[str]:
    """Server processes descended from this test process, and its shared-memory regions."""
    processes = {
        f"{p.name()}:{p.pid}"
        for p in psutil.Process().children(recursive=True)
        if p.name() in SERVER_PROCESS_NAMES
    }
    return processes | {p.name for p in SHM_DIR.glob(f"trtclient_{os.getpid()}_*")}


@pytest.fixture()
def leftovers() -> Callable[[], set[str]]:
    """What a test left running, ignoring servers that were already there (such as the session's own)."""
    before = server_things()
    return lambda: server_things() - before
