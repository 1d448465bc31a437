"""Start, watch and stop one ``tritonserver`` process group, and the address helpers around it.

:class:`TritonProcess` is the lifecycle shared by the embedded server and the GPU deployment path: the
server runs in its own process group with its output in a log file; start-up waits until the process is
alive, ``/v2/health/ready`` answers 200 and every expected model is READY, and fails fast — with the exit
code and the log's last lines — when the process dies or the deadline passes. Stopping sends SIGTERM to the
group, then SIGKILL, and removes the python backend's shared-memory regions, also after a failed start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from trtclient.errors import PortInUseError, ServerStartError, ServerTimeoutError, SetupError

__all__ = [
    "EMBEDDED_MODELS",
    "SHM_DIR",
    "ServerHandle",
    "TritonProcess",
    "ensure_port_free",
    "exposure_warning",
    "free_port",
    "is_loopback",
    "is_wildcard",
    "local_host",
    "reachable_hosts",
    "url_host",
]

log = logging.getLogger("trtclient.server")

EMBEDDED_MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")
SHM_DIR = Path("/dev/shm")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, address: str = "127.0.0.1") -> None:
    """Raise :class:`PortInUseError` if ``port`` is taken on ``address``.

    Connections of a stopped or crashed server linger in TIME_WAIT for a minute; they do not stop
    tritonserver from binding again, so they do not count as taken (``SO_REUSEADDR``; a listening
    socket still does).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            raise PortInUseError(port, address) from None


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    return address in ("localhost", "::1") or address.startswith("127.")


def url_host(address: str) -> str:
    """An address as it stands in a URL: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def is_wildcard(address: str) -> bool:
    """True for the bind-everything addresses ``0.0.0.0`` and ``::``."""
    return address in ("0.0.0.0", "::", "")


def local_host(address: str) -> str:
    """The host this machine's own clients use for a server bound to ``address`` (loopback for a wildcard)."""
    if is_wildcard(address):
        return "::1" if ":" in address else "127.0.0.1"
    return address


def reachable_hosts(address: str) -> list[str]:
    """Hosts other machines can use for a server bound to ``address``: its own, or every interface's."""
    if is_loopback(address):
        return []
    if not is_wildcard(address):
        return [address]
    import psutil

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    hosts: list[str] = []
    for addresses in psutil.net_if_addrs().values():
        for item in addresses:
            host = item.address.split("%")[0]
            if item.family == family and not is_loopback(host) and not host.startswith("fe80:"):
                hosts.append(host)
    return sorted(set(hosts))


def exposure_warning(address: str) -> str | None:
    """The one warning a non-loopback bind address deserves, or None for loopback."""
    if is_loopback(address):
        return None
    return f"binding to {address} exposes the server beyond this machine; the default is 127.0.0.1"


@dataclass(frozen=True)
class ServerHandle:
    """Where a running server answers."""

    url: str
    grpc_url: str
    metrics_url: str
    log_path: Path
    pid: int


class TritonProcess:
    """One ``tritonserver`` (or ``mpirun``) process group: start, wait until ready, stop."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        http_url: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        expected_models: Sequence[str] | None = None,
        shm_prefix: str | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.http_url = http_url.rstrip("/")
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.startup_timeout = startup_timeout
        self.expected_models = list(expected_models or [])
        self.shm_prefix = shm_prefix
        self.on_stop = on_stop
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        if self.process is None:
            raise RuntimeError("the server is not started")
        return self.process.pid

    def exit_code(self) -> int | None:
        """The exit code once the process has ended (by itself or stopped), else None."""
        return None if self.process is None else self.process.poll()

    def start(self) -> TritonProcess:
        """Launch and wait until the server and every expected model are ready."""
        if self.process is not None:
            raise RuntimeError("the server is already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        executable = self.argv[0]
        if shutil.which(executable, path=(self.env or os.environ).get("PATH")) is None and not os.access(
            executable, os.X_OK
        ):
            raise SetupError(f"{executable} not found or not executable")
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                tail = self.log_tail()
                if "address already in use" in tail.lower() or "failed to bind" in tail.lower():
                    raise ServerStartError(
                        "tritonserver could not bind its ports (already in use); pick other ports",
                        returncode=code,
                        log_tail=tail,
                    )
                raise ServerStartError(
                    f"tritonserver exited with code {code} during start-up (log: {self.log_path})",
                    returncode=code,
                    log_tail=tail,
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise ServerTimeoutError(
                    f"tritonserver was not ready after {self.startup_timeout:.0f} s (log: {self.log_path})",
                    log_tail=self.log_tail(),
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        if not _http_ok(f"{self.http_url}/v2/health/ready"):
            return False
        if not self.expected_models:
            return True
        index = _http_json(f"{self.http_url}/v2/repository/index", body=b"{}")
        if not isinstance(index, list):
            return False
        ready = {m.get("name") for m in index if m.get("state") == "READY"}
        return all(name in ready for name in self.expected_models)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``timeout``; clean up shared memory."""
        process = self.process
        code: int | None = None
        if process is not None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    code = process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Children (python backend stubs) may outlive the leader for a moment.
            _wait_group_gone(process.pid, 5.0)
        if self.shm_prefix:
            for region in SHM_DIR.glob(f"{self.shm_prefix}*"):
                with contextlib.suppress(OSError):
                    region.unlink()
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None
        return code

    def __enter__(self) -> TritonProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the server when the launching process dies.

    Cleanup handlers cannot run when the launcher is killed with SIGKILL (or crashes hard); this keeps
    such a death from leaving an orphaned server behind. Linux ties the signal to the launching
    *thread*, so it is only armed when launching from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the hook was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


_PR_SET_PDEATHSIG = 1


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # pragma: no cover - not our group any more
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _http_json(url: str, body: bytes | None = None) -> object:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
