"""``trtclient serve``: run a Triton server in the foreground until Ctrl-C.

With no ``--engine-dir`` it runs the embedded default (CPU engine behind the TRT-LLM ensemble);
``--template-dir DIR`` serves your own model repository (TensorRT-LLM's inflight_batcher_llm layout) with
the CPU engine standing in for its tensorrt_llm model, ``--requirements FILE`` installing what its python
models import. With ``--engine-dir`` it launches tritonserver for a TensorRT-LLM engine (the GPU path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trtclient.cli.common import UsageError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    from trtclient.server.profiles import PROFILES

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a Triton server (the embedded CPU default, or a TensorRT-LLM engine)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--address", default="127.0.0.1", help="bind address (default: 127.0.0.1, loopback only)"
    )
    net.add_argument("--http-port", type=int, help="HTTP port (default: 8000 if free, else a free port)")
    net.add_argument("--grpc-port", type=int, help="gRPC port (default: 8001 if free, else a free port)")
    net.add_argument(
        "--metrics-port", type=int, help="Prometheus metrics port (default: 8002 if free, else a free port)"
    )
    emb = parser.add_argument_group("embedded server")
    emb.add_argument("--profile", default="orin-int4", help=f"timing profile: {', '.join(PROFILES)}")
    emb.add_argument("--max-batch-size", type=int, default=64, help="engine max batch size (default: 64)")
    emb.add_argument("--max-queue-size", type=int, default=0, help="tensorrt_llm queue limit, 0 = unbounded")
    emb.add_argument(
        "--kv-cache-tokens",
        type=int,
        help="KV-cache capacity in tokens (default: --kv-cache-free-gpu-mem-fraction of the profile's "
        "memory after the weights for the Orin profiles, else max batch x max_seq_len / 2)",
    )
    emb.add_argument(
        "--no-kv-cache-reuse",
        dest="kv_cache_reuse",
        action="store_false",
        help="turn off enable_kv_cache_reuse (on by default: shared prompt prefixes reuse cached KV blocks)",
    )
    emb.add_argument("--eos-probability", type=float, default=0.0, help="chance per token of ending early")
    emb.add_argument("--preprocessing-instances", type=int, default=1)
    emb.add_argument("--postprocessing-instances", type=int, default=1)
    emb.add_argument("--bls-instances", type=int, default=1)
    emb.add_argument("--accumulate-tokens", action="store_true", help="BLS streams cumulative text")
    emb.add_argument("--log-verbose", type=int, default=0, help="tritonserver log verbosity")
    emb.add_argument(
        "--requirements",
        type=Path,
        metavar="FILE",
        help="pip requirements of the template dir's python models (model environment cached by its hash)",
    )
    parser.add_argument(
        "--template-dir",
        type=Path,
        metavar="DIR",
        help="model repository templates: with --engine-dir instead of the bundled ones; without it, your "
        "own repository served with the CPU engine standing in for its tensorrt_llm model",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the server log after a stop (always kept on failure)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        help="seconds to wait until every model is READY (default: 60 embedded, 180 with --template-dir, "
        "600 with --engine-dir)",
    )
    from trtclient.cli.serve_gpu_args import add_gpu_arguments

    before = len(parser._actions)
    add_gpu_arguments(parser)
    engine_only = [
        (a.dest, a.default, a.option_strings[0])
        for a in parser._actions[before:]
        if a.option_strings and a.dest not in _SHARED_WITH_EMBEDDED
    ]
    parser.set_defaults(handler=run, engine_only_flags=engine_only)


_SHARED_WITH_EMBEDDED = frozenset({"kv_cache_free_gpu_mem_fraction"})
"""Engine-path flags the embedded server takes too."""


def _validate(args: argparse.Namespace) -> None:
    for dest, default, flag in getattr(args, "engine_only_flags", []):
        if getattr(args, dest, default) != default:
            raise UsageError(f"{flag} applies only with --engine-dir (the GPU deployment path)")
    for name in ("http_port", "grpc_port", "metrics_port"):
        port = getattr(args, name)
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"--{name.replace('_', '-')} must be between 1 and 65535, got {port}")
    if args.max_batch_size < 1:
        raise UsageError(f"--max-batch-size must be at least 1, got {args.max_batch_size}")
    if not 0.0 <= args.eos_probability < 1.0:
        raise UsageError(f"--eos-probability must be in [0, 1), got {args.eos_probability}")
    fraction = args.kv_cache_free_gpu_mem_fraction
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise UsageError(
            "--kv-cache-free-gpu-mem-fraction: "
            f"kv_cache_free_gpu_mem_fraction must be in (0, 1], got {fraction}"
        )
    if args.kv_cache_tokens is not None and args.kv_cache_tokens < 1:
        raise UsageError(f"--kv-cache-tokens must be at least 1, got {args.kv_cache_tokens}")
    for name in ("preprocessing_instances", "postprocessing_instances", "bls_instances"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")


def triton_default_ports(args: argparse.Namespace) -> list[str]:
    """Fill the ports not given with Triton's own (8000, 8001, 8002) where free; a note for each that
    was taken, so the printed addresses are the ones to use."""
    from trtclient.constants import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT
    from trtclient.errors import PortInUseError
    from trtclient.server.process import ensure_port_free

    notes = []
    for name, port in (("http_port", DEFAULT_HTTP_PORT), ("grpc_port", DEFAULT_GRPC_PORT),
                       ("metrics_port", DEFAULT_METRICS_PORT)):  # fmt: skip
        if getattr(args, name) is not None:
            continue
        try:
            ensure_port_free(port, args.address)
        except PortInUseError:
            flag = "--" + name.replace("_", "-")
            notes.append(f"port {port} is taken: {flag} is a free port instead (see the addresses below)")
            continue
        setattr(args, name, port)
    return notes


def run(args: argparse.Namespace) -> int:
    """Start the server, print where it answers, and wait for Ctrl-C or SIGTERM."""
    if getattr(args, "engine_dir", None):
        if args.requirements is not None:
            raise UsageError("--requirements applies to the embedded server (without --engine-dir)")
        from trtclient.cli.serve_gpu_args import run_gpu_serve

        return int(run_gpu_serve(args))
    _validate(args)
    from trtclient.cli.foreground import serve_foreground
    from trtclient.server.launcher import EmbeddedTriton

    if args.requirements is not None and args.template_dir is None:
        raise UsageError("--requirements goes with --template-dir (the bundled models need nothing more)")
    notes = triton_default_ports(args)

    def progress(message: str) -> None:
        # The ports' notes come with the start's first line, so a start refused earlier stays one line.
        while notes:
            print(notes.pop(0), file=sys.stderr, flush=True)
        print(message, file=sys.stderr, flush=True)

    server = EmbeddedTriton(
        profile=args.profile,
        max_batch_size=args.max_batch_size,
        address=args.address,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        preprocessing_instances=args.preprocessing_instances,
        postprocessing_instances=args.postprocessing_instances,
        bls_instances=args.bls_instances,
        max_queue_size=args.max_queue_size,
        kv_cache_tokens=args.kv_cache_tokens,
        kv_cache_free_gpu_mem_fraction=args.kv_cache_free_gpu_mem_fraction,
        kv_cache_reuse=args.kv_cache_reuse,
        eos_probability=args.eos_probability,
        accumulate_tokens=args.accumulate_tokens,
        startup_timeout=args.startup_timeout or (60.0 if args.template_dir is None else 180.0),
        keep_logs=args.keep_logs,
        template_dir=args.template_dir,
        requirements=args.requirements,
        progress=progress,
    )
    return serve_foreground(server)
