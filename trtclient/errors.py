"""Every error trtclient raises.

::

    TritonError                      root: ``except TritonError`` catches everything below
    └── LauncherError                starting or preparing a server failed
        ├── SetupError               a prerequisite is missing (binary, python3.11, cache dir, template)
        ├── PortInUseError           a requested port is taken
        ├── ServerStartError         the server exited during start-up (exit code + log tail)
        └── ServerTimeoutError       the server did not become ready in time (log tail)
"""

from __future__ import annotations

__all__ = [
    "LauncherError",
    "PortInUseError",
    "ServerStartError",
    "ServerTimeoutError",
    "SetupError",
    "TritonError",
]


class TritonError(Exception):
    """Root of every error raised by trtclient."""


class LauncherError(TritonError):
    """Preparing or starting a Triton server failed."""


class SetupError(LauncherError):
    """A prerequisite of the server is missing or unusable; the message says what to do."""


class PortInUseError(LauncherError):
    """A port the server was asked to use is already taken."""

    def __init__(self, port: int, address: str) -> None:
        self.port = port
        self.address = address
        super().__init__(
            f"port {port} on {address} is already in use; pick another one or omit the flag "
            "to let trtclient choose a free port"
        )


class ServerStartError(LauncherError):
    """The server process exited before it was ready."""

    def __init__(self, message: str, *, returncode: int | None, log_tail: str) -> None:
        self.returncode = returncode
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the server log ---\n{log_tail}".rstrip())


class ServerTimeoutError(LauncherError):
    """The server did not become ready before the deadline."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the server log ---\n{log_tail}".rstrip())
