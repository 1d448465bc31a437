"""``trtclient build``: a Hugging Face checkpoint → a TensorRT-LLM engine directory.

Runs ``convert_checkpoint.py`` then ``trtllm-build`` with the flags the installed TensorRT-LLM release
spells, from a build spec (``--spec FILE``), an LMI ``serving.properties``, flags, or all three (flags win
over the spec file, which wins over serving.properties). ``--dry-run`` prints the commands and needs no
TensorRT-LLM at all.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

_SWITCH = ("enable", "disable")

# (spec field, argparse options) for every spec option settable by a flag.
_SPEC_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("model_dir", {"type": Path, "metavar": "DIR", "help": "Hugging Face checkpoint directory"}),
    (
        "engine_dir",
        {"type": Path, "metavar": "DIR", "help": "where the engine goes (config.json, rank*.engine)"},
    ),
    (
        "checkpoint_dir",
        {"type": Path, "metavar": "DIR", "help": "intermediate checkpoint (<engine-dir>-checkpoint)"},
    ),
    ("model_family", {"metavar": "NAME", "help": "examples folder of convert_checkpoint.py (default llama)"}),
    ("examples_dir", {"type": Path, "metavar": "DIR", "help": "examples/ of a TensorRT-LLM checkout"}),
    ("convert_script", {"type": Path, "metavar": "PATH", "help": "convert_checkpoint.py to use"}),
    (
        "dtype",
        {"choices": ("float16", "bfloat16", "float32", "auto"), "help": "weights dtype (default float16)"},
    ),
    ("tp_size", {"type": int, "metavar": "N", "help": "tensor parallelism (GPUs per pipeline stage)"}),
    ("pp_size", {"type": int, "metavar": "N", "help": "pipeline parallelism"}),
    ("use_weight_only", {"action": "store_const", "const": True, "help": "weight-only quantization"}),
    (
        "weight_only_precision",
        {
            "choices": ("int8", "int4", "int8_gptq", "int4_gptq", "int4_awq"),
            "help": "implies --use-weight-only",
        },
    ),
    ("per_group", {"action": "store_const", "const": True, "help": "group-wise scales (GPTQ/AWQ)"}),
    ("group_size", {"type": int, "metavar": "N", "help": "quantization group size"}),
    (
        "quant_ckpt_path",
        {"type": Path, "metavar": "PATH", "help": "pre-quantized weights (GPTQ safetensors)"},
    ),
    ("convert_workers", {"type": int, "metavar": "N", "help": "convert_checkpoint.py --workers"}),
    ("gemm_plugin", {"metavar": "DTYPE", "help": "e.g. float16, auto, disable"}),
    ("gpt_attention_plugin", {"metavar": "DTYPE", "help": "e.g. float16, auto, disable"}),
    ("remove_input_padding", {"choices": _SWITCH}),
    ("paged_kv_cache", {"choices": _SWITCH, "help": "spelled --kv_cache_type paged from 0.14"}),
    ("context_fmha", {"choices": _SWITCH}),
    ("use_paged_context_fmha", {"choices": _SWITCH, "help": "needed for KV-cache reuse"}),
    ("tokens_per_block", {"type": int, "metavar": "N"}),
    ("max_batch_size", {"type": int, "metavar": "N"}),
    ("max_input_len", {"type": int, "metavar": "N"}),
    ("max_seq_len", {"type": int, "metavar": "N", "help": "prompt + output tokens"}),
    ("max_output_len", {"type": int, "metavar": "N", "help": "output tokens (max_seq_len = input + output)"}),
    ("max_num_tokens", {"type": int, "metavar": "N"}),
    ("max_beam_width", {"type": int, "metavar": "N"}),
    ("logits_dtype", {"choices": ("float16", "float32")}),
    (
        "workers",
        {"type": int, "metavar": "N", "help": "trtllm-build --workers (parallel build, e.g. = tp size)"},
    ),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build`` subcommand."""
    parser = subparsers.add_parser(
        "build",
        help="build a TensorRT-LLM engine from a Hugging Face checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = parser.add_argument_group("where the options come from")
    sources.add_argument(
        "--spec", type=Path, metavar="FILE", help="build spec (.toml or .json); flags override it"
    )
    sources.add_argument(
        "--serving-properties", type=Path, metavar="FILE", help="take options from an LMI serving.properties"
    )
    options = parser.add_argument_group("build spec options")
    for name, kwargs in _SPEC_FLAGS:
        options.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **kwargs)
    options.add_argument(
        "--convert-args", metavar="ARGS", help="more convert_checkpoint.py arguments (one string)"
    )
    options.add_argument("--build-args", metavar="ARGS", help="more trtllm-build arguments (one string)")
    tools = parser.add_argument_group("tools")
    tools.add_argument(
        "--trtllm-version", metavar="X.Y.Z", help="spell flags for this release (default: installed)"
    )
    tools.add_argument(
        "--python", metavar="PATH", help="Python that runs convert_checkpoint.py (default: this one)"
    )
    tools.add_argument("--trtllm-build", metavar="PATH", help="trtllm-build to run (default: from PATH)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Plan the build, then print it (``--dry-run``) or run it."""
    from trtclient.server.deploy.build import locate_tools, plan_build, resolve_version, run_build
    from trtclient.server.deploy.spec import load_spec_file, make_spec
    from trtclient.server.deploy.versions import spelling_for

    layers: list[dict[str, Any]] = []
    sources = []
    if args.serving_properties is not None:
        from trtclient.server.deploy.serving_properties import read_serving_properties

        lmi = read_serving_properties(args.serving_properties)
        layers.append(lmi.build)
        sources.append(str(args.serving_properties))
        if lmi.ignored:
            _note(f"{args.serving_properties}: not used for the build: {', '.join(lmi.ignored)}")
    if args.spec is not None:
        layers.append(load_spec_file(args.spec))
        sources.append(str(args.spec))
    flags: dict[str, Any] = {name: getattr(args, name) for name, _ in _SPEC_FLAGS}
    for name in ("remove_input_padding", "paged_kv_cache", "context_fmha", "use_paged_context_fmha"):
        if flags[name] is not None:
            flags[name] = flags[name] == "enable"
    if args.convert_args:
        flags["extra_convert_args"] = tuple(shlex.split(args.convert_args))
    if args.build_args:
        flags["extra_build_args"] = tuple(shlex.split(args.build_args))
    layers.append(flags)
    spec = make_spec(*layers, source=" + ".join([*sources, "flags"]))

    version, note = resolve_version(args.trtllm_version, dry_run=args.dry_run)
    tools = locate_tools(
        spec,
        spelling_for(version),
        python=args.python,
        trtllm_build=args.trtllm_build,
        check=not args.dry_run,
    )
    plan = plan_build(spec, version, tools, version_note=note)
    if args.dry_run:
        print(plan.shell())
        return 0
    _note(f"building {spec.engine_dir} with {note}")
    engine_dir = run_build(plan, spec, progress=_note)
    print(f"engine ready: {engine_dir}")
    print(
        f"serve it with: trtclient serve --engine-dir {shlex.quote(str(engine_dir))} "
        f"--tokenizer-dir {shlex.quote(str(spec.model_dir))}"
    )
    return 0


def _note(message: str) -> None:
    print(f"trtclient: {message}", file=sys.stderr)
