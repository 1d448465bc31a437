"""The ``trtclient serve --engine-dir`` options (the GPU deployment path) and what runs them.

The serving itself is :class:`trtclient.server.deploy.launch.GpuTriton`; this module only turns flags
into its settings, prints ``--dry-run`` plans and hands the server to the foreground loop of ``serve``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError
from trtclient.server.deploy.launch import DEFAULT_TRITONSERVER
from trtclient.server.paths import TEMPLATES_DIR

__all__ = ["add_gpu_arguments", "repository_changes", "run_gpu_serve"]


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
    rep.add_argument(
        "--kv-cache-free-gpu-mem-fraction",
        type=float,
        metavar="F",
        help="share of free device memory after the weights for the KV cache (default 0.9); "
        "the embedded server sizes its KV pool from it too",
    )
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
    from trtclient.server.deploy.build import format_command
    from trtclient.server.deploy.launch import GpuTriton

    if args.tokenizer_dir is None:
        raise UsageError(
            "--engine-dir needs --tokenizer-dir (the Hugging Face folder with the tokenizer files)"
        )
    if args.world_size is not None and args.world_size < 1:
        raise UsageError(f"--world-size must be at least 1, got {args.world_size}")
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
        keep_logs=bool(getattr(args, "keep_logs", False)),
        progress=lambda message: print(message, file=sys.stderr, flush=True),
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
    from trtclient.cli.foreground import serve_foreground

    return serve_foreground(server)
