"""``trtclient serve --engine-dir``: render the repository for a TensorRT-LLM engine and start Triton on it.

The command follows TensorRT-LLM's ``scripts/launch_triton_server.py`` where that script is right and
departs from it where it is not:

* world size 1 runs ``tritonserver`` directly; above 1, one ``mpirun`` with a ``-n 1 tritonserver ...``
  block per rank, separated by ``:`` — rank 0 serves every model, the other ranks load only the
  ``tensorrt_llm`` model in explicit model-control mode, each rank with its own python-backend
  shared-memory prefix (as the script does since 0.9);
* it binds 127.0.0.1 unless told otherwise (the script has no bind-address option, so Triton's default
  0.0.0.0 applies there), never looks for running servers with ``pgrep``, and waits until every model
  is READY instead of returning at once — the lifecycle is :class:`trtclient.server.launcher.TritonProcess`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtclient.errors import SetupError
from trtclient.server.engine_config import EngineConfig, read_engine_config
from trtclient.server.lifecycle import LOG_NAME, ServerLifecycle
from trtclient.server.paths import TEMPLATES_DIR, cache_dir
from trtclient.server.process import (
    ServerHandle,
    TritonProcess,
    ensure_port_free,
    exposure_warning,
    free_port,
    local_host,
    url_host,
)
from trtclient.server.render import RenderResult, render_repository
from trtclient.server.repository_options import RepositoryOptions

__all__ = [
    "DEFAULT_TRITONSERVER",
    "FIVE_MODELS",
    "GpuTriton",
    "LaunchPlan",
    "Ports",
    "embedded_binary_setup",
    "launch_argv",
    "rank_argv",
]

DEFAULT_TRITONSERVER = "/opt/tritonserver/bin/tritonserver"
"""Where the Triton containers install the server (launch_triton_server.py's ``--tritonserver`` default)."""

FIVE_MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")

log = logging.getLogger("trtclient.server")


def embedded_binary_setup(tritonserver: str) -> tuple[Path, dict[str, str]] | None:
    """For the embedded ``tritonserver`` (the nvidia-pytriton wheel's): its backend directory and environment.

    That binary finds neither its libraries nor a Python for the python backend's stubs on its own; a
    system ``tritonserver`` (the Triton containers') needs nothing, so other paths give None.
    """
    found = shutil.which(tritonserver)
    if found is None:
        return None
    try:
        from trtclient.server.toolchain import locate_pytriton, prepare

        root, _, _ = locate_pytriton()
    except SetupError:
        return None
    if Path(found).resolve() != (root / "bin" / "tritonserver").resolve():
        return None
    toolchain = prepare()
    return toolchain.backend_dir, toolchain.env()


@dataclass(frozen=True)
class Ports:
    """The three ports a Triton server listens on."""

    http: int
    grpc: int
    metrics: int


def rank_argv(
    tritonserver: str,
    rank: int,
    *,
    model_repository: Path,
    address: str,
    ports: Ports,
    shm_prefix: str,
    tensorrt_llm_model: str = "tensorrt_llm",
    log_verbose: int = 0,
    backend_dir: Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``tritonserver`` command line of one rank."""
    argv = [tritonserver, f"--model-repository={model_repository}"]
    if backend_dir is not None:
        argv.append(f"--backend-directory={backend_dir}")
    argv += [
        f"--http-address={address}",
        f"--http-port={ports.http}",
        f"--grpc-address={address}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-address={address}",
        f"--metrics-port={ports.metrics}",
    ]
    if log_verbose:
        argv.append(f"--log-verbose={log_verbose}")
    if rank > 0:
        # Ranks above 0 only join the engine; they load the tensorrt_llm model and never finish loading it
        # (TensorRT-LLM's leader mode keeps them in the worker loop), so they never bind the ports above.
        argv += ["--model-control-mode=explicit", f"--load-model={tensorrt_llm_model}"]
    argv += [
        "--disable-auto-complete-config",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}r{rank}_",
    ]
    return argv + list(extra)


def launch_argv(
    tritonserver: str,
    *,
    world_size: int,
    mpirun: str = "mpirun",
    **rank_options: Any,
) -> list[str]:
    """``tritonserver ...`` for one rank, ``mpirun --allow-run-as-root -n 1 ... : -n 1 ...`` for several."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if world_size == 1:
        return rank_argv(tritonserver, 0, **rank_options)
    argv = [mpirun, "--allow-run-as-root"]
    for rank in range(world_size):
        if rank:
            argv.append(":")
        argv += ["-n", "1", *rank_argv(tritonserver, rank, **rank_options)]
    return argv


@dataclass(frozen=True)
class LaunchPlan:
    """A rendered repository and the command that serves it."""

    argv: tuple[str, ...]
    world_size: int
    render: RenderResult
    address: str
    ports: Ports
    shm_prefix: str

    @property
    def http_url(self) -> str:
        """Base URL of rank 0's HTTP endpoint, as this machine reaches it."""
        return f"http://{url_host(local_host(self.address))}:{self.ports.http}"


@dataclass
class GpuTriton(ServerLifecycle):
    """Triton serving a TensorRT-LLM engine directory, started like the embedded server.

    ``repository`` holds :class:`~trtclient.server.repository_options.RepositoryOptions` fields (e.g.
    ``{"kv_cache_free_gpu_mem_fraction": 0.85}``); the engine decides ``triton_max_batch_size``,
    ``max_beam_width`` and the world size.
    """

    engine_dir: Path
    tokenizer_dir: Path
    repository: Mapping[str, Any] = field(default_factory=dict)
    world_size: int | None = None
    tritonserver: str = DEFAULT_TRITONSERVER
    mpirun: str | None = None
    backend_dir: Path | None = None
    template_dir: Path = TEMPLATES_DIR
    models: Sequence[str] | None = None
    model_repo_out: Path | None = None
    address: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    log_verbose: int = 0
    startup_timeout: float = 600.0
    server_args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    keep_logs: bool = False
    progress: Callable[[str], None] | None = None
    _process: TritonProcess | None = field(default=None, init=False, repr=False)
    _handle: ServerHandle | None = field(default=None, init=False, repr=False)
    _embedded_env: dict[str, str] | None = field(default=None, init=False, repr=False)
    run_dir: Path | None = field(default=None, init=False)

    def engine(self) -> EngineConfig:
        """The engine's ``config.json``, checked against the requested world size."""
        config = read_engine_config(self.engine_dir)
        if self.world_size is not None and self.world_size != config.world_size:
            raise SetupError(
                f"{config.config_path} is built for world size {config.world_size} "
                f"(tp {config.tp_size} × pp {config.pp_size}), not {self.world_size}; omit --world-size "
                "or rebuild the engine with a matching tp_size × pp_size"
            )
        return config

    def plan(self, repository_dir: Path, *, check_tools: bool = True) -> LaunchPlan:
        """Render into ``repository_dir`` and build the command; ``check_tools`` probes binaries and ports."""
        config = self.engine()
        options = RepositoryOptions.for_engine(
            config, tokenizer_dir=str(self.tokenizer_dir), **self.repository
        )
        if check_tools:
            self._check_inputs(config, options)
        models = list(self.models) if self.models else _default_models(self.template_dir)
        render = render_repository(self.template_dir, repository_dir, options.to_values(), models=models)
        world_size = config.world_size
        mpirun = self.mpirun or "mpirun"
        if check_tools:
            _require_executable(self.tritonserver, "tritonserver", "--tritonserver PATH")
            if world_size > 1:
                found = shutil.which(mpirun)
                if found is None:
                    raise SetupError(
                        f"world size {world_size} needs mpirun (Open MPI, shipped in the Triton TensorRT-LLM "
                        f"container) and {mpirun} was not found; install it or pass --mpirun PATH"
                    )
                mpirun = found
        ports = self._ports(check_free=check_tools)
        backend_dir = self.backend_dir
        if backend_dir is None and check_tools:
            setup = embedded_binary_setup(self.tritonserver)
            if setup is not None:
                backend_dir, self._embedded_env = setup
        shm_prefix = f"trtclient_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        argv = launch_argv(
            self.tritonserver,
            world_size=world_size,
            mpirun=mpirun,
            model_repository=render.out_dir,
            address=self.address,
            ports=ports,
            shm_prefix=shm_prefix,
            tensorrt_llm_model=options.tensorrt_llm_model_name,
            log_verbose=self.log_verbose,
            backend_dir=backend_dir,
            extra=self.server_args,
        )
        return LaunchPlan(tuple(argv), world_size, render, self.address, ports, shm_prefix)

    def _check_inputs(self, config: EngineConfig, options: RepositoryOptions) -> None:
        if not self.tokenizer_dir.is_dir():
            raise SetupError(
                f"tokenizer directory {self.tokenizer_dir} does not exist; pass --tokenizer-dir with the "
                "Hugging Face folder holding the tokenizer files (usually the model's own folder)"
            )
        if options.triton_backend == "tensorrtllm":
            missing = [
                r for r in range(config.world_size) if not (config.engine_dir / f"rank{r}.engine").is_file()
            ]
            if missing:
                names = ", ".join(f"rank{r}.engine" for r in missing)
                raise SetupError(
                    f"engine directory {config.engine_dir} lacks {names}; was the build complete?"
                )

    def _ports(self, *, check_free: bool) -> Ports:
        # A real start takes free ports; a dry run shows Triton's own defaults for the ports not given.
        chosen: dict[str, int] = {}
        requested = (
            ("http", self.http_port, 8000),
            ("grpc", self.grpc_port, 8001),
            ("metrics", self.metrics_port, 8002),
        )
        for name, port, triton_default in requested:
            if port is None:
                chosen[name] = free_port(self.address) if check_free else triton_default
            else:
                if check_free:
                    ensure_port_free(port, self.address)
                chosen[name] = port
        return Ports(**chosen)

    def start(self) -> ServerHandle:
        """Render, start and wait until rank 0 serves every model."""
        warning = exposure_warning(self.address)
        if warning:
            self._warn(warning)
        runs = cache_dir() / "runs"
        runs.mkdir(exist_ok=True)
        self._failed = False
        self.run_dir = Path(tempfile.mkdtemp(prefix="engine-", dir=runs))
        try:
            plan = self.plan(self.model_repo_out or self.run_dir / "models")
            log_path = self.run_dir / LOG_NAME
            env = self.env if self.env is not None else self._embedded_env
            self._process = TritonProcess(
                plan.argv,
                http_url=plan.http_url,
                log_path=log_path,
                env=env,
                startup_timeout=self.startup_timeout,
                expected_models=plan.render.model_names,
                shm_prefix=plan.shm_prefix,
            )
            self._process.start()
        except BaseException:
            self._start_failed()
            raise
        host = url_host(local_host(plan.address))
        self._handle = ServerHandle(
            url=plan.http_url,
            grpc_url=f"{host}:{plan.ports.grpc}",
            metrics_url=f"http://{host}:{plan.ports.metrics}/metrics",
            log_path=log_path,
            pid=self._process.pid,
        )
        return self._handle


def _default_models(template_dir: Path) -> list[str] | None:
    present = [name for name in FIVE_MODELS if (template_dir / name / "config.pbtxt").is_file()]
    return present or None  # a differently shaped template set: render all of its models


def _require_executable(path: str, name: str, flag: str) -> None:
    if shutil.which(path) is None:
        raise SetupError(
            f"{name} not found at {path}: pass {flag} (inside the Triton TensorRT-LLM container it is "
            f"{DEFAULT_TRITONSERVER})"
        )
