"""Crash an embedded Triton the hard way and bring it back on the same ports, while a load test runs.

:class:`CrashAndRestart` sends SIGKILL to the server's process group (nothing gets to clean up, as in a
real crash), and restarts a new :class:`~trtclient.server.launcher.EmbeddedTriton` with the same ports in a
thread once every killed process is gone, so the load test keeps running meanwhile: requests in flight
see the connection drop, requests sent while it is down are refused, later ones succeed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from urllib.parse import urlsplit

import psutil

from trtclient.errors import PortInUseError, ServerStartError
from trtclient.server.launcher import EmbeddedTriton

__all__ = ["CrashAndRestart"]


def _port(address: str) -> int:
    port = urlsplit(address if "://" in address else f"tcp://{address}").port
    if port is None:
        raise ValueError(f"no port in {address!r}")
    return port


def _gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


class CrashAndRestart:
    """See the module docstring. ``crash()`` kills, ``restart_in_background()`` brings the server back."""

    def __init__(self, server: EmbeddedTriton) -> None:
        self.server = server
        self.replacement: EmbeddedTriton | None = None
        self.error: BaseException | None = None
        self.restarted = threading.Event()
        self._killed: list[psutil.Process] = []
        self._thread: threading.Thread | None = None

    def crash(self) -> None:
        """SIGKILL the server and every process of its group (no wait)."""
        leader = psutil.Process(self.server.handle.pid)
        self._killed = [leader, *leader.children(recursive=True)]
        os.killpg(leader.pid, signal.SIGKILL)

    def restart_in_background(self) -> None:
        """Start a new server on the same ports, in a thread, once the killed processes are gone."""
        self._thread = threading.Thread(target=self._restart, name="restart-triton", daemon=True)
        self._thread.start()

    def crash_and_restart(self) -> None:
        """Both, back to back."""
        self.crash()
        self.restart_in_background()

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the restart to finish (successfully or not)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Stop whatever runs: the replacement, and the remains of the crashed server."""
        self.wait()
        if self.replacement is not None:
            self.replacement.stop()
        self.server.stop()

    def _restart(self) -> None:
        try:
            deadline = time.monotonic() + 30.0
            while not _gone(self._killed):
                if time.monotonic() > deadline:
                    raise TimeoutError("the killed server's processes did not exit")
                time.sleep(0.02)
            old = self.server.handle
            while True:
                replacement = EmbeddedTriton(
                    profile=self.server.profile,
                    max_batch_size=self.server.max_batch_size,
                    http_port=_port(old.url),
                    grpc_port=_port(old.grpc_url),
                    metrics_port=_port(old.metrics_url),
                )
                try:
                    replacement.start()
                except (PortInUseError, ServerStartError) as exc:
                    # The freed ports lie in the ephemeral range: a client reconnecting meanwhile can
                    # be given one of them as its own port for a moment. Try again until it lets go.
                    if "in use" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                    continue
                self.replacement = replacement
                break
        except BaseException as exc:
            self.error = exc
        finally:
            self.restarted.set()
