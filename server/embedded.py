"""The embedded default: a real ``tritonserver`` with the CPU engine in the ``tensorrt_llm`` slot.

:class:`EmbeddedTriton` prepares everything it needs (toolchain, tokenizer, CPU engine, rendered
repository) and runs it on loopback. With ``template_dir`` it serves the user's own model repository
instead of the bundled one, the CPU engine standing in for its ``tensorrt_llm`` model only, and
``requirements`` adds what the user's python models import to a cached model environment.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trtclient.errors import ServerStartError, SetupError
from trtclient.server.engine import build_cpu_engine
from trtclient.server.lifecycle import LOG_NAME, ServerLifecycle
from trtclient.server.load_errors import explain_load_failure
from trtclient.server.paths import TEMPLATES_DIR, cache_dir
from trtclient.server.process import (
    EMBEDDED_MODELS,
    ServerHandle,
    TritonProcess,
    ensure_port_free,
    exposure_warning,
    free_port,
    local_host,
    url_host,
)
from trtclient.server.profiles import get_profile
from trtclient.server.stand_in import render_with_stand_in, require_template_folder
from trtclient.server.tokenizer import default_tokenizer_dir
from trtclient.server.toolchain import Toolchain, prepare, requirements_env

__all__ = ["EmbeddedTriton"]

log = logging.getLogger("trtclient.server")


@dataclass
class EmbeddedTriton(ServerLifecycle):
    """The embedded default: a real Triton with the CPU engine behind TRT-LLM's five models.

    ``with EmbeddedTriton(profile="instant") as server: server.url`` starts it on free loopback ports and
    stops it on exit. ``profile`` is a name from :data:`trtclient.server.profiles.PROFILES`.
    ``template_dir`` serves a user's own repository (TensorRT-LLM's ``inflight_batcher_llm`` layout) with
    the CPU engine in its ``tensorrt_llm`` slot; ``requirements`` is a pip requirements file of what its
    python models import. ``keep_logs`` keeps the server log after a stop (it is always kept on failure).
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
    """KV pool in tokens; unset: derived from ``kv_cache_free_gpu_mem_fraction`` for a profile with memory
    figures (the Orin ones), else max batch x max_seq_len / 2."""
    kv_cache_free_gpu_mem_fraction: float | None = None
    """Share of the profile's memory left after the weights that the KV pool takes (unset: 0.9)."""
    kv_cache_reuse: bool = True
    """``enable_kv_cache_reuse``: prompts that start like an earlier one reuse its cached KV blocks."""
    eos_probability: float = 0.0
    accumulate_tokens: bool = False
    startup_timeout: float = 60.0
    keep_run_dir: bool = False
    keep_logs: bool = False
    template_dir: Path | None = None
    requirements: Path | None = None
    progress: Callable[[str], None] | None = None
    extra_args: Sequence[str] = ()
    _process: TritonProcess | None = field(default=None, init=False, repr=False)
    _handle: ServerHandle | None = field(default=None, init=False, repr=False)
    run_dir: Path | None = field(default=None, init=False)
    models: tuple[str, ...] = field(default=EMBEDDED_MODELS, init=False)
    """The models served (known once started)."""

    def start(self) -> ServerHandle:
        """Prepare what is missing, start the server and wait until every model is READY."""
        warning = exposure_warning(self.address)
        if warning:  # once, before anything else can fail
            self._warn(warning)
        if self.template_dir is not None:
            self.template_dir = Path(self.template_dir).expanduser()
        if self.requirements is not None:
            self.requirements = Path(self.requirements).expanduser()
        get_profile(self.profile)  # unknown profile: fail before any work
        fraction = self.kv_cache_free_gpu_mem_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise SetupError(f"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {fraction}")
        if self.kv_cache_tokens is not None and self.kv_cache_tokens < 1:
            raise SetupError(f"kv_cache_tokens must be at least 1, got {self.kv_cache_tokens}")
        if self.max_batch_size < 1:
            raise SetupError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.template_dir is not None:
            require_template_folder(self.template_dir)
        if self.requirements is not None and not self.requirements.is_file():
            raise SetupError(f"requirements file {self.requirements} does not exist")
        ports = self._ports()
        toolchain = prepare(self.progress)
        if self.requirements is not None:
            toolchain = requirements_env(toolchain, Path(self.requirements), self.progress)
        self._failed = False
        runs = cache_dir() / "runs"
        runs.mkdir(exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
        try:
            return self._launch(toolchain, ports)
        except BaseException:
            self._start_failed()
            raise

    def _ports(self) -> dict[str, int]:
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
        return ports

    def _launch(self, toolchain: Toolchain, ports: dict[str, int]) -> ServerHandle:
        assert self.run_dir is not None
        tokenizer_dir = default_tokenizer_dir()
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
        values = self.repository_values(engine_dir, tokenizer_dir)
        if self.template_dir is not None:
            self.models = render_with_stand_in(self.template_dir, repository, values).model_names
        else:
            from trtclient.server.render import render_repository

            render_repository(TEMPLATES_DIR, repository, values)
            self.models = EMBEDDED_MODELS
        shm_prefix = f"trtclient_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        host = url_host(local_host(self.address))
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
        log_path = self.run_dir / LOG_NAME
        self._process = TritonProcess(
            argv,
            http_url=f"http://{host}:{ports['http']}",
            log_path=log_path,
            env=toolchain.env(),
            startup_timeout=self.startup_timeout,
            expected_models=self.models,
            shm_prefix=shm_prefix,
        )
        try:
            self._process.start()
        except ServerStartError as exc:
            explained = explain_load_failure(
                self._process.log_tail(400), self.template_dir or TEMPLATES_DIR, self.requirements
            )
            if explained is None:
                raise
            raise ServerStartError(
                f"{explained} (log: {log_path})", returncode=exc.returncode, log_tail=exc.log_tail
            ) from None
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
            "enable_kv_cache_reuse": "true" if self.kv_cache_reuse else "false",
            **(
                {"kv_cache_free_gpu_mem_fraction": str(self.kv_cache_free_gpu_mem_fraction)}
                if self.kv_cache_free_gpu_mem_fraction is not None
                else {}
            ),
            "tensorrt_llm_model_name": "tensorrt_llm",
            "tensorrt_llm_draft_model_name": "",
            "logits_datatype": "TYPE_FP32",
            "encoder_input_features_data_type": "TYPE_FP16",
            "prompt_embedding_table_data_type": "TYPE_FP16",
            "exclude_input_in_output": "false",
            "add_special_tokens": "false",
            "skip_special_tokens": "true",
        }
