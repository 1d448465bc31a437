"""Start, watch and stop ``tritonserver`` processes.

:class:`TritonProcess` is the lifecycle shared by the embedded server and the GPU deployment path: the
server runs in its own process group with its output in a log file; start-up waits until the process is
alive, ``/v2/health/ready`` answers 200 and every expected model is READY, and fails fast — with the exit
code and the log's last lines — when the process dies or the deadline passes. Stopping sends SIGTERM to the
group, then SIGKILL, and removes the python backend's shared-memory regions, also after a failed start.

:class:`EmbeddedTriton` prepares everything the embedded default needs (toolchain, tokenizer, CPU engine,
rendered repository) and runs it on loopback.
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
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from trtclient.errors import PortInUseError, ServerStartError, ServerTimeoutError, SetupError
from trtclient.server.engine import build_cpu_engine
from trtclient.server.paths import TEMPLATES_DIR, cache_dir
from trtclient.server.profiles import get_profile
from trtclient.server.tokenizer import default_tokenizer_dir
from trtclient.server.toolchain import prepare

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedTriton",
    "ServerHandle",
    "ServerLifecycle",
    "TritonProcess",
    "ensure_port_free",
    "free_port",
    "is_loopback",
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


_S = TypeVar("_S", bound="ServerLifecycle")


class ServerLifecycle:
    """What every launcher shares once started: where it answers, its log, a clean stop.

    A subclass's ``start()`` sets ``_process``, ``_handle`` and ``run_dir``; ``stop()`` stops the process
    group and removes the run directory unless ``keep_run_dir``.
    """

    _process: TritonProcess | None
    _handle: ServerHandle | None
    run_dir: Path | None
    keep_run_dir: bool = False

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

    def stop(self) -> None:
        """Stop the process group and remove the run directory (kept when ``keep_run_dir``)."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        self._handle = None
        if self.run_dir is not None and not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class EmbeddedTriton(ServerLifecycle):
    """The embedded default: a real Triton with the CPU engine behind TRT-LLM's five models.

    ``with EmbeddedTriton(profile="instant") as server: server.url`` starts it on free loopback ports and
    stops it on exit. ``profile`` is a name from :data:`trtclient.server.profiles.PROFILES`.
    """

    profile: str = "instant"
    max_batch_size: int = 64
    address: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    log_verbose: int = 0
    preprocessing_instances: int = 1
    postprocessing_instances: int = 1
    bls_instances: int = 1
    max_queue_size: int = 0
    max_input_len: int = 1024
    max_seq_len: int = 2048
    kv_cache_tokens: int | None = None
    eos_probability: float = 0.0
    accumulate_tokens: bool = False
    startup_timeout: float = 60.0
    keep_run_dir: bool = False
    progress: Callable[[str], None] | None = None
    extra_args: Sequence[str] = ()
    _process: TritonProcess | None = field(default=None, init=False, repr=False)
    _handle: ServerHandle | None = field(default=None, init=False, repr=False)
    run_dir: Path | None = field(default=None, init=False)

    def start(self) -> ServerHandle:
        """Prepare what is missing, start the server and wait until every model is READY."""
        get_profile(self.profile)  # unknown profile: fail before any work
        if self.max_batch_size < 1:
            raise SetupError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if not is_loopback(self.address):
            log.warning(
                "binding to %s exposes the server beyond this machine; the default is 127.0.0.1",
                self.address,
            )
        ports = {}
        for name, port in (
            ("http", self.http_port),
            ("grpc", self.grpc_port),
            ("metrics", self.metrics_port),
        ):
            if port is not None:
                ensure_port_free(port, self.address)
                ports[name] = port
        for name in ("http", "grpc", "metrics"):
            ports.setdefault(name, free_port(self.address))
        toolchain = prepare(self.progress)
        tokenizer_dir = default_tokenizer_dir()
        runs = cache_dir() / "runs"
        runs.mkdir(exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
        engine_dir = build_cpu_engine(
            self.run_dir / "engine",
            tokenizer_dir=tokenizer_dir,
            profile=self.profile,
            max_batch_size=self.max_batch_size,
            max_input_len=self.max_input_len,
            max_seq_len=self.max_seq_len,
            kv_cache_tokens=self.kv_cache_tokens,
            eos_probability=self.eos_probability,
        )
        repository = self.run_dir / "models"
        from trtclient.server.render import render_repository

        render_repository(TEMPLATES_DIR, repository, self.repository_values(engine_dir, tokenizer_dir))
        shm_prefix = f"trtclient_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        host = url_host(self.address)
        argv = [
            str(toolchain.tritonserver),
            f"--model-repository={repository}",
            f"--backend-directory={toolchain.backend_dir}",
            f"--http-address={self.address}",
            f"--http-port={ports['http']}",
            f"--grpc-address={self.address}",
            f"--grpc-port={ports['grpc']}",
            f"--metrics-address={self.address}",
            f"--metrics-port={ports['metrics']}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--metrics-interval-ms=1000",
            f"--log-verbose={self.log_verbose}",
            "--disable-auto-complete-config",
            "--exit-timeout-secs=5",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
            *self.extra_args,
        ]
        log_path = self.run_dir / "tritonserver.log"
        self._process = TritonProcess(
            argv,
            http_url=f"http://{host}:{ports['http']}",
            log_path=log_path,
            env=toolchain.env(),
            startup_timeout=self.startup_timeout,
            expected_models=EMBEDDED_MODELS,
            shm_prefix=shm_prefix,
        )
        try:
            self._process.start()
        except BaseException:
            self._process = None
            # Keep the run directory so the log stays readable.
            raise
        self._handle = ServerHandle(
            url=f"http://{host}:{ports['http']}",
            grpc_url=f"{host}:{ports['grpc']}",
            metrics_url=f"http://{host}:{ports['metrics']}/metrics",
            log_path=log_path,
            pid=self._process.pid,
        )
        return self._handle

    def repository_values(self, engine_dir: Path, tokenizer_dir: Path) -> dict[str, str]:
        """Template values of the embedded repository."""
        return {
            "triton_max_batch_size": str(self.max_batch_size),
            "decoupled_mode": "true",
            "triton_backend": "python",
            "engine_dir": str(engine_dir),
            "tokenizer_dir": str(tokenizer_dir),
            "batching_strategy": "inflight_fused_batching",
            "max_beam_width": "1",
            "max_queue_delay_microseconds": "0",
            "max_queue_size": str(self.max_queue_size),
            "preprocessing_instance_count": str(self.preprocessing_instances),
            "postprocessing_instance_count": str(self.postprocessing_instances),
            "bls_instance_count": str(self.bls_instances),
            "accumulate_tokens": "true" if self.accumulate_tokens else "false",
            "tensorrt_llm_model_name": "tensorrt_llm",
            "tensorrt_llm_draft_model_name": "",
            "logits_datatype": "TYPE_FP32",
            "encoder_input_features_data_type": "TYPE_FP16",
            "prompt_embedding_table_data_type": "TYPE_FP16",
            "exclude_input_in_output": "false",
            "add_special_tokens": "false",
            "skip_special_tokens": "true",
        }
