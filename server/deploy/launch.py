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

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtclient.errors import SetupError
from trtclient.server.engine_config import EngineConfig, read_engine_config
from trtclient.server.launcher import (
    ServerHandle,
    ServerLifecycle,
    TritonProcess,
    ensure_port_free,
    free_port,
    is_loopback,
    url_host,
)
from trtclient.server.paths import TEMPLATES_DIR, cache_dir
from trtclient.server.render import RenderResult, RepositoryOptions, render_repository

__all__ = [
    "DEFAULT_TRITONSERVER",
    "FIVE_MODELS",
    "GpuTriton",
    "LaunchPlan",
    "Ports",
    "add_gpu_arguments",
    "launch_argv",
    "rank_argv",
    "repository_changes",
    "run_gpu_serve",
]

DEFAULT_TRITONSERVER = "/opt/tritonserver/bin/tritonserver"
"""Where the Triton containers install the server (launch_triton_server.py's ``--tritonserver`` default)."""

FIVE_MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")


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
        """Base URL of rank 0's HTTP endpoint."""
        return f"http://{url_host(self.address)}:{self.ports.http}"


@dataclass
class GpuTriton(ServerLifecycle):
    """Triton serving a TensorRT-LLM engine directory, started like the embedded server.

    ``repository`` holds :class:`~trtclient.server.render.RepositoryOptions` fields (e.g.
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
    _process: TritonProcess | None = field(default=None, init=False, repr=False)
    _handle: ServerHandle | None = field(default=None, init=False, repr=False)
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
            backend_dir=self.backend_dir,
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
        runs = cache_dir() / "runs"
        runs.mkdir(exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix="engine-", dir=runs))
        try:
            plan = self.plan(self.model_repo_out or self.run_dir / "models")
            log_path = self.run_dir / "tritonserver.log"
            self._process = TritonProcess(
                plan.argv,
                http_url=plan.http_url,
                log_path=log_path,
                env=self.env,
                startup_timeout=self.startup_timeout,
                expected_models=plan.render.model_names,
                shm_prefix=plan.shm_prefix,
            )
            self._process.start()
        except BaseException:
            self._process = None
            raise
        host = url_host(plan.address)
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


# --- the command line ---------------------------------------------------------------------------------

_BOOL = ("true", "false")


def add_gpu_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--engine-dir`` options to ``trtclient serve`` (which has the network and log options)."""
    gpu = parser.add_argument_group("TensorRT-LLM engine (GPU hosts)")
    gpu.add_argument(
        "--engine-dir", type=Path, metavar="DIR", help="serve this engine instead of the embedded one"
    )
    gpu.add_argument(
        "--tokenizer-dir", type=Path, metavar="DIR", help="Hugging Face folder with the tokenizer"
    )
    gpu.add_argument(
        "--world-size", type=int, metavar="N", help="ranks (default and check: the engine's tp × pp)"
    )
    gpu.add_argument(
        "--tritonserver", default=DEFAULT_TRITONSERVER, metavar="PATH", help="tritonserver binary"
    )
    gpu.add_argument("--mpirun", metavar="PATH", help="mpirun for world size > 1 (default: from PATH)")
    gpu.add_argument("--backend-directory", type=Path, metavar="DIR", help="tritonserver --backend-directory")
    gpu.add_argument("--template-dir", type=Path, metavar="DIR", help="model templates (default: bundled)")
    gpu.add_argument(
        "--models", metavar="A,B", help="models of the template dir to render (default: the five)"
    )
    gpu.add_argument(
        "--model-repo-out", type=Path, metavar="DIR", help="render the repository here and keep it"
    )
    gpu.add_argument("--serving-properties", type=Path, metavar="FILE", help="repository options from LMI")
    gpu.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG", help="extra tritonserver argument"
    )
    gpu.add_argument("--dry-run", action="store_true", help="check and print the command, start nothing")
    rep = parser.add_argument_group("model repository options (engine path)")
    rep.add_argument("--triton-backend", choices=("tensorrtllm", "python"), help="tensorrt_llm model backend")
    rep.add_argument("--decoupled", choices=_BOOL, help="decoupled (streaming) mode (default true)")
    rep.add_argument("--batching-strategy", choices=("inflight_fused_batching", "inflight_batching", "V1"))
    rep.add_argument("--batch-scheduler-policy", choices=("max_utilization", "guaranteed_no_evict"))
    rep.add_argument("--kv-cache-free-gpu-mem-fraction", type=float, metavar="F")
    rep.add_argument("--enable-kv-cache-reuse", choices=_BOOL)
    rep.add_argument("--enable-chunked-context", choices=_BOOL)
    rep.add_argument("--exclude-input-in-output", choices=_BOOL)
    rep.add_argument("--max-queue-delay-microseconds", type=int, metavar="N")
    rep.add_argument("--logits-datatype", choices=("TYPE_FP32", "TYPE_FP16", "TYPE_BF16"))
    rep.add_argument("--tensorrt-llm-model-name", metavar="NAME")
    rep.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="fill any other placeholder"
    )


def repository_changes(args: argparse.Namespace) -> dict[str, Any]:
    """RepositoryOptions fields from the serve flags (over ``--serving-properties``)."""
    from trtclient.cli.common import UsageError

    changes: dict[str, Any] = {}
    if args.serving_properties is not None:
        from trtclient.server.deploy.serving_properties import read_serving_properties

        changes.update(read_serving_properties(args.serving_properties).repository)
    flags = {
        "triton_backend": args.triton_backend,
        "decoupled_mode": _as_bool(args.decoupled),
        "batching_strategy": args.batching_strategy,
        "batch_scheduler_policy": args.batch_scheduler_policy,
        "kv_cache_free_gpu_mem_fraction": args.kv_cache_free_gpu_mem_fraction,
        "enable_kv_cache_reuse": _as_bool(args.enable_kv_cache_reuse),
        "enable_chunked_context": _as_bool(args.enable_chunked_context),
        "exclude_input_in_output": _as_bool(args.exclude_input_in_output),
        "max_queue_delay_microseconds": args.max_queue_delay_microseconds,
        "logits_datatype": args.logits_datatype,
        "tensorrt_llm_model_name": args.tensorrt_llm_model_name,
    }
    # Options the serve command shares with the embedded server.
    for name, field_name in (
        ("max_queue_size", "max_queue_size"),
        ("preprocessing_instances", "preprocessing_instance_count"),
        ("postprocessing_instances", "postprocessing_instance_count"),
        ("bls_instances", "bls_instance_count"),
    ):
        flags[field_name] = getattr(args, name, None)
    if getattr(args, "accumulate_tokens", False):
        flags["accumulate_tokens"] = True
    changes.update({key: value for key, value in flags.items() if value is not None})
    extra: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        extra[key.strip()] = value
    if extra:
        changes["extra"] = extra
    return changes


def _as_bool(value: str | None) -> bool | None:
    return None if value is None else value == "true"


def run_gpu_serve(args: argparse.Namespace) -> int:
    """``trtclient serve --engine-dir ...``: print the command (``--dry-run``) or serve until Ctrl-C."""
    from trtclient.cli.common import UsageError
    from trtclient.server.deploy.build import format_command

    if args.tokenizer_dir is None:
        raise UsageError(
            "--engine-dir needs --tokenizer-dir (the Hugging Face folder with the tokenizer files)"
        )
    if args.world_size is not None and args.world_size < 1:
        raise UsageError(f"--world-size must be at least 1, got {args.world_size}")
    if not is_loopback(args.address):
        sys.stderr.write(f"warning: binding to {args.address} exposes the server beyond this machine\n")
    timeout = getattr(args, "startup_timeout", None)
    server = GpuTriton(
        engine_dir=args.engine_dir,
        tokenizer_dir=args.tokenizer_dir,
        repository=repository_changes(args),
        world_size=args.world_size,
        tritonserver=args.tritonserver,
        mpirun=args.mpirun,
        backend_dir=args.backend_directory,
        template_dir=args.template_dir or TEMPLATES_DIR,
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        model_repo_out=args.model_repo_out,
        address=args.address,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=getattr(args, "log_verbose", 0) or 0,
        startup_timeout=float(timeout) if timeout else 600.0,
        server_args=tuple(args.server_arg),
    )
    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="trtclient-repo-") as scratch:
            repository = args.model_repo_out or Path(scratch) / "models"
            plan = server.plan(repository, check_tools=False)
        argv = list(plan.argv)
        if args.model_repo_out is None:  # rendered only to check the templates: show a placeholder
            argv = [arg.replace(str(repository), "<model-repository>") for arg in argv]
        where = (
            str(args.model_repo_out)
            if args.model_repo_out
            else "<model-repository> (--model-repo-out keeps it)"
        )
        models = ", ".join(plan.render.model_names)
        sys.stdout.write(f"# rendered {models} into {where}; world size {plan.world_size}\n")
        if None in (args.http_port, args.grpc_port, args.metrics_port):
            sys.stdout.write("# ports not given are picked free at start (Triton's defaults shown)\n")
        sys.stdout.write(format_command(argv) + "\n")
        return 0
    from trtclient.cli.serve_cmd import serve_foreground

    return serve_foreground(server)
