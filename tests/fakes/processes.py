"""Helpers for tests that watch server processes come and go (no server of its own)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

SERVER_PROCESS_NAMES = {"tritonserver", "triton_python_backend_stub"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def server_processes(parent: psutil.Process) -> list[psutil.Process]:
    """Triton server processes (the server and its python-backend stubs) descended from ``parent``."""
    found = []
    for child in parent.children(recursive=True):
        try:
            if child.name() in SERVER_PROCESS_NAMES:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (zombies waiting for their parent count as gone)."""
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out
