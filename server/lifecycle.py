"""What every launcher shares once started: where it answers, its log, a clean stop that keeps the log."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from trtclient.server.process import ServerHandle, TritonProcess

__all__ = ["LOG_NAME", "ServerLifecycle"]

LOG_NAME = "tritonserver.log"
"""The server log's file name inside a run directory."""

_S = TypeVar("_S", bound="ServerLifecycle")

log = logging.getLogger("trtclient.server")


class ServerLifecycle:
    """Start, answer, stop; the log survives a failure, and a stop when ``keep_logs``.

    A subclass's ``start()`` sets ``_process``, ``_handle`` and ``run_dir``, and calls
    :meth:`_start_failed` when it fails. ``stop()`` stops the process group and removes the run directory —
    all of it unless ``keep_run_dir``; everything but the log when ``keep_logs``, when the start failed or
    when the server died by itself, so the log an error message points to is still there to read.
    """

    _process: TritonProcess | None
    _handle: ServerHandle | None
    run_dir: Path | None
    keep_run_dir: bool = False
    keep_logs: bool = False
    _failed: bool = False
    kept_log: Path | None = None
    """After :meth:`stop`, the log left on disk (None when it was removed)."""
    progress: Callable[[str], None] | None = None

    def _warn(self, message: str) -> None:
        """One warning: through ``progress`` (the command line prints it) or else the logger."""
        if self.progress is not None:
            self.progress(f"warning: {message}")
        else:
            log.warning("%s", message)

    def start(self) -> ServerHandle:
        """Start the server and wait until it is ready."""
        raise NotImplementedError

    @property
    def handle(self) -> ServerHandle:
        """Where the running server answers."""
        if self._handle is None:
            raise RuntimeError("the server is not running")
        return self._handle

    @property
    def url(self) -> str:
        """The HTTP base URL, e.g. ``http://127.0.0.1:8000``."""
        return self.handle.url

    @property
    def grpc_url(self) -> str:
        """The gRPC address, ``host:port``."""
        return self.handle.grpc_url

    @property
    def metrics_url(self) -> str:
        """The Prometheus metrics URL."""
        return self.handle.metrics_url

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.handle.log_path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log."""
        return self._process.log_tail(lines) if self._process else "(not running)"

    def exit_code(self) -> int | None:
        """The server's exit code if it has ended by itself since it started, else None."""
        return self._process.exit_code() if self._process is not None else None

    def _start_failed(self) -> None:
        """After a failed start (its process already stopped): clean up, keeping the log if there is one."""
        self._process = None
        self._failed = True
        self.stop()

    def stop(self) -> None:
        """Stop the process group and remove the run directory (see the class notes for what stays)."""
        if self._process is not None:
            if self._process.exit_code() is not None:
                self._failed = True  # it died by itself: its log explains why
            self._process.stop()
            self._process = None
        self._handle = None
        if self.run_dir is None:
            return
        log = self.run_dir / LOG_NAME
        if self.keep_run_dir:
            self.kept_log = log if log.exists() else None
        elif (self.keep_logs or self._failed) and log.exists():
            for entry in self.run_dir.iterdir():
                if entry != log:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            self.kept_log = log
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.kept_log = None
        self.run_dir = None

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
